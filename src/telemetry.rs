//! Log subscriber set-up: text or JSON lines on stderr, filter from `log.level` (or `RUST_LOG`),
//! with an injectable writer so tests can capture and search what was logged.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber once; later calls (tests) are no-ops.
pub fn init<W>(log: &LogConfig, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    // RUST_LOG wins so an operator can raise verbosity without editing the config.
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::builder().parse(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"))
        // warp's own per-request events repeat the one line `http` logs per request.
        .add_directive(
            "warp::filters::trace=warn"
                .parse()
                .expect("static directive"),
        );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false);
    let _ = match log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
