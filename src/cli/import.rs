//! `veza import`: a folder of audio files into the library.

use std::sync::Arc;

use super::error::CliError;
use super::open_db;
use crate::config;
use crate::tracks::TrackService;

/// `veza import`: exit 0 when nothing failed, 1 otherwise.
pub(super) fn import(
    cfg: &config::Config,
    dir: &std::path::Path,
    visibility: &str,
    dry_run: bool,
    jobs: Option<u16>,
) -> Result<(), CliError> {
    if !dir.is_dir() {
        return Err(CliError::Input(format!(
            "{} is not a folder",
            dir.display()
        )));
    }
    let visibility = visibility.parse().map_err(CliError::Input)?;
    let db = open_db(cfg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let summary = rt.block_on(async {
        let store = crate::storage::BlobStore::open(&cfg.storage)
            .await
            .map_err(|e| CliError::Import(e.to_string()))?;
        let tracks = TrackService::for_command(Arc::new(cfg.clone()), db, store);
        let jobs = jobs.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            usize::from,
        );
        crate::library::import::run(&tracks.ingest(), dir, visibility, dry_run, jobs)
            .await
            .map_err(|e| CliError::Import(e.to_string()))
    })?;
    if summary.failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Import(format!(
            "{} files failed",
            summary.failed.len()
        )))
    }
}
