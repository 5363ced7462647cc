//! Log subscriber set-up: text or JSON lines on stderr, filter from `log.level` (or `RUST_LOG`),
//! with an injectable writer so tests can capture and search what was logged.

use std::io::{self, Write};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::{LogConfig, LogFormat};

/// Colour only for a person at a terminal: never in journald, pipes or files, nor with
/// `NO_COLOR` set (https://no-color.org).
fn use_colour() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

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
        )
        // refinery logs a line per migration; Veza says one line of its own instead.
        .add_directive("refinery_core=warn".parse().expect("static directive"))
        .add_directive("refinery=warn".parse().expect("static directive"));
    let colour = use_colour();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Escaping {
            inner: writer,
            keep_esc: colour,
        })
        .with_ansi(colour)
        .with_target(false);
    let _ = match log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Writes each formatted event with control characters inside it escaped (`\x0a`), so a
/// value a client sent (a header, a name) can never forge a log line or drive a terminal.
/// The event's final newline stays; so does ESC while the formatter itself colours.
struct Escaping<M> {
    inner: M,
    keep_esc: bool,
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Escaping<M> {
    type Writer = EscapingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        EscapingWriter {
            inner: self.inner.make_writer(),
            keep_esc: self.keep_esc,
        }
    }
}

/// One event's writer (see [`Escaping`]).
pub struct EscapingWriter<W> {
    inner: W,
    keep_esc: bool,
}

impl<W: Write> Write for EscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write_all(&escape_line(buf, self.keep_esc))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `buf` with every control byte but tab (and ESC when kept) escaped, a trailing newline kept.
fn escape_line(buf: &[u8], keep_esc: bool) -> std::borrow::Cow<'_, [u8]> {
    let (body, newline) = match buf.split_last() {
        Some((b'\n', body)) => (body, true),
        _ => (buf, false),
    };
    let bad = |b: u8| (b < 0x20 && b != b'\t' && !(keep_esc && b == 0x1b)) || b == 0x7f;
    if !body.iter().any(|&b| bad(b)) {
        return std::borrow::Cow::Borrowed(buf);
    }
    let mut out = Vec::with_capacity(buf.len() + 16);
    for &b in body {
        if bad(b) {
            out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
        } else {
            out.push(b);
        }
    }
    if newline {
        out.push(b'\n');
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_inside_an_event_are_escaped() {
        let line = b"INFO login failed username=eve\nINFO forged\r\x1b[31m\n";
        let out = escape_line(line, false);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "INFO login failed username=eve\\x0aINFO forged\\x0d\\x1b[31m\n"
        );
        assert_eq!(
            escape_line(b"plain\tline\n", false).as_ref(),
            b"plain\tline\n"
        );
        assert_eq!(
            escape_line(b"\x1b[2mdim\x1b[0m\n", true).as_ref(),
            b"\x1b[2mdim\x1b[0m\n"
        );
    }
}
