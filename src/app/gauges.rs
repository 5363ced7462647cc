//! Gauges read from the database and the blob store in the background, never per scrape, so a
//! scrape stays cheap however large the library grows.

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::config::Config;
use crate::db::Db;
use crate::http::state::AppState;
use crate::metrics::{BLOB_AREAS, Metrics};
use crate::storage::BlobStore;

/// What the gauges read and write.
#[derive(Clone)]
pub struct Deps {
    /// `metrics.store_scan_secs`.
    pub config: std::sync::Arc<Config>,
    /// Track counts and the database size.
    pub db: Db,
    /// The scanned store.
    pub store: BlobStore,
    /// Where the figures go.
    pub metrics: Metrics,
    /// The dashboard's per-minute samples.
    pub stats: std::sync::Arc<crate::metrics::stats::Stats>,
}

impl Deps {
    /// The handles of a running app.
    pub fn of(s: &AppState) -> Deps {
        Deps {
            config: s.config.clone(),
            db: s.db.clone(),
            store: s.store.clone(),
            metrics: s.metrics.clone(),
            stats: s.stats.clone(),
        }
    }
}

/// How often track counts and the database size are read.
const LIBRARY_EVERY: Duration = Duration::from_secs(15);

/// Starts the refresh loops (a first pass at once); abort the handle to stop them.
pub fn start(s: Deps) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut library = tokio::time::interval(LIBRARY_EVERY);
        let mut store =
            tokio::time::interval(Duration::from_secs(s.config.metrics.store_scan_secs));
        // A slow scan of a big bucket must not queue up scans behind it.
        store.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        library.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut minute = tokio::time::interval_at(
            tokio::time::Instant::now()
                + Duration::from_secs(crate::metrics::stats::STEP_SECS as u64),
            Duration::from_secs(crate::metrics::stats::STEP_SECS as u64),
        );
        loop {
            tokio::select! {
                _ = minute.tick() => s.stats.tick(&s.metrics, crate::clock::now()),
                _ = library.tick() => refresh_library(&s).await,
                _ = store.tick() => scan_store(&s).await,
            }
        }
    })
}

/// Updates `veza_tracks{status}` and `veza_db_size_bytes`.
pub async fn refresh_library(s: &Deps) {
    match s
        .db
        .call(|c| crate::library::lifecycle::status_counts(c))
        .await
    {
        Ok(counts) => {
            for (status, n) in counts {
                s.metrics
                    .tracks
                    .with_label_values(&[status.as_str()])
                    .set(n);
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not count tracks for metrics"),
    }
    let path = s.db.path().to_owned();
    let mut wal = path.clone().into_os_string();
    wal.push("-wal");
    let size = [path.into_os_string(), wal]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum::<u64>();
    s.metrics
        .db_size_bytes
        .set(i64::try_from(size).unwrap_or(i64::MAX));
}

/// The `area` label of a blob key.
pub fn area_of(key: &str) -> &'static str {
    let mut parts = key.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("originals"), ..) => "originals",
        (Some("covers"), ..) => "covers",
        (Some("tracks"), Some(_), Some("hls")) => "hls",
        _ => "other",
    }
}

/// Lists the whole store and updates `veza_blob_store_bytes` / `_objects` by area; a failed
/// listing leaves the last figures (and their timestamp) in place.
pub async fn scan_store(s: &Deps) {
    let objects = match s.store.list("").await {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(error = %e, "blob store scan for metrics failed");
            return;
        }
    };
    let mut bytes = [0u64; BLOB_AREAS.len()];
    let mut count = [0u64; BLOB_AREAS.len()];
    for o in &objects {
        let area = area_of(o.key.as_str());
        let i = BLOB_AREAS.iter().position(|a| *a == area).unwrap_or(3);
        bytes[i] += o.size;
        count[i] += 1;
    }
    for (i, area) in BLOB_AREAS.iter().enumerate() {
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        s.metrics
            .blob_bytes
            .with_label_values(&[area])
            .set(as_i64(bytes[i]));
        s.metrics
            .blob_objects
            .with_label_values(&[area])
            .set(as_i64(count[i]));
    }
    #[allow(clippy::cast_precision_loss)] // Unix seconds fit an f64 exactly.
    s.metrics
        .blob_scan_timestamp
        .set(crate::clock::now() as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tracks_gauge_labels_are_the_statuses() {
        let statuses = crate::library::Status::ALL.map(|s| s.as_str());
        assert_eq!(statuses, crate::metrics::TRACK_STATUSES);
    }

    #[test]
    fn keys_fall_in_their_area() {
        assert_eq!(area_of("originals/ab/cd/x.flac"), "originals");
        assert_eq!(area_of("covers/ab/cd/x.jpg"), "covers");
        assert_eq!(area_of("tracks/0192/hls/seg/x.m4s"), "hls");
        assert_eq!(area_of("tracks/0192/hls/master.m3u8"), "hls");
        assert_eq!(area_of("tracks/0192/other"), "other");
        assert_eq!(area_of("misc"), "other");
    }
}
