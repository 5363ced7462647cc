//! `veza analyze [--all | TRACK_ID…]`: queue the audio analysis (loudness, ReplayGain, peaks,
//! gapless data) of tracks packaged before it existed. Jobs are queued, never run here: the
//! server's workers pick them up, and a job interrupted by a crash runs again.

use super::error::CliError;
use super::open_db;
use crate::config;
use crate::library::{LibraryError, TrackId, analysis};

/// `veza analyze`: exit 0 once every job is queued (or already pending).
pub(super) fn analyze(cfg: &config::Config, all: bool, ids: &[String]) -> Result<(), CliError> {
    // Exactly one of the two.
    if all != ids.is_empty() {
        return Err(CliError::Input(
            "give --all or one or more track ids (not both)".into(),
        ));
    }
    if !cfg.hls.enabled {
        return Err(CliError::Input(
            "analysis runs in HLS packaging, which is off (hls.enabled = false)".into(),
        ));
    }
    let ids: Vec<TrackId> = ids
        .iter()
        .map(|s| s.parse())
        .collect::<Result<_, String>>()
        .map_err(CliError::Input)?;
    let db = open_db(cfg)?;
    let max_attempts = cfg.jobs.max_attempts;
    let now = crate::clock::now();
    let done = db
        .with(|c| analysis::queue_backfill(c, (!all).then_some(&ids[..]), max_attempts, now))
        .map_err(|e| match e {
            LibraryError::NotFound => CliError::Input("no such track (nothing was queued)".into()),
            e => CliError::Library(e),
        })?;
    for (id, job) in &done.queued {
        println!("{id}: queued as job {job}");
    }
    for id in &done.pending {
        println!("{id}: a packaging job is already pending; it will analyse the track");
    }
    for id in &done.taken_down {
        println!("{id}: taken down, skipped");
    }
    println!(
        "{} queued, {} already pending, {} skipped; `veza jobs list` shows their progress",
        done.queued.len(),
        done.pending.len(),
        done.taken_down.len()
    );
    Ok(())
}
