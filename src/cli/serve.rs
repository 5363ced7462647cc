//! `veza serve` and `veza migrate`: the server's lifecycle.

use super::error::CliError;
use crate::app::{App, shutdown_signal};
use crate::config;
use crate::db::Db;
use crate::{telemetry, version};

pub(super) fn serve(cfg: config::Config, masked: String) -> Result<(), CliError> {
    telemetry::init(&cfg.log, std::io::stderr);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("veza")
        .build()?;
    rt.block_on(async {
        let public = cfg.server.public_url.clone();
        let app = App::build(cfg).await?;
        app.set_effective_config(masked);
        let applied: Vec<_> = app.migrations().iter().filter(|m| m.now).collect();
        if !applied.is_empty() {
            tracing::info!(count = applied.len(), "applied database migrations");
        }
        tracing::info!(
            version = version::VERSION,
            commit = version::COMMIT,
            public_url = %public,
            "veza {} listening on http://{}",
            version::VERSION,
            app.local_addr()
        );
        app.announce_setup_link();
        crate::systemd::ready();
        let watchdog = crate::systemd::start_watchdog(app.state().db.clone());
        app.run_until(async {
            shutdown_signal().await;
            crate::systemd::stopping();
        })
        .await;
        if let Some(w) = watchdog {
            w.abort();
        }
        Ok(())
    })
}

pub(super) fn migrate(cfg: &config::Config) -> Result<(), CliError> {
    telemetry::init(&cfg.log, std::io::stderr);
    crate::datadir::prepare(&cfg.data_dir)?;
    let (db, applied) = Db::open_and_migrate(&cfg.data_dir)?;
    for m in &applied {
        let what = if m.now { "applied" } else { "already applied" };
        println!("V{} {}: {what}", m.version, m.name);
    }
    println!(
        "{}: schema version {}",
        db.path().display(),
        applied.last().map_or(0, |m| m.version)
    );
    Ok(())
}
