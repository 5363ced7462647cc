//! systemd's `Type=notify` protocol: READY=1 once migrations ran and the socket is bound,
//! STOPPING=1 when the drain starts, and watchdog pings while the runtime and the database
//! answer. Outside systemd (no `NOTIFY_SOCKET`) every call is a no-op.

use std::time::Duration;

use sd_notify::NotifyState;

use crate::db::Db;

/// Tells systemd the service is up (after migrations and bind).
pub fn ready() {
    send(&[NotifyState::Ready, NotifyState::Status("serving")]);
}

/// Tells systemd the service is draining and will exit.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("draining")]);
}

/// When the unit sets `WatchdogSec`, pings at half that interval, but only while a trivial
/// query gets through the database door in time: a wedged runtime or a stuck database lets
/// the watchdog fire and systemd restarts the service.
pub fn start_watchdog(db: Db) -> Option<tokio::task::JoinHandle<()>> {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return None;
    }
    let every = Duration::from_micros(usec / 2);
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let probe = db.call(|c| -> Result<i64, crate::db::DbError> {
                Ok(c.query_row("SELECT 1", [], |r| r.get(0))?)
            });
            match tokio::time::timeout(every, probe).await {
                Ok(Ok(_)) => send(&[NotifyState::Watchdog]),
                Ok(Err(e)) => tracing::error!(error = %e, "watchdog: the database does not answer"),
                Err(_) => tracing::error!("watchdog: the database did not answer in time"),
            }
        }
    }))
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "could not notify systemd");
    }
}
