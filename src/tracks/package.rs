//! The `package_hls` job: fetch a track's original into a work dir, run the HLS packager, upload
//! the content-addressed tree under `tracks/{id}/hls/`, then record the renditions and mark the
//! track ready. Idempotent: a re-run produces the same segment names and uploads nothing new.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::Inner as Service;
use crate::datadir::work_dir as work_root;
use crate::hls::{self, HlsError};
use crate::jobs::{Job, JobCtx, JobFailure};
use crate::library::{LibraryError, TrackId, analysis, lifecycle, store as tracks};
use crate::storage::{BlobKey, Fault, StoreError, io_fault};

/// The blob prefix of a track's HLS tree.
pub fn hls_prefix(id: &TrackId) -> String {
    format!("tracks/{id}/hls")
}

fn failed(e: impl std::fmt::Display) -> JobFailure {
    JobFailure::Failed(e.to_string())
}

/// An outage (store down, disk full) waits it out without spending an attempt; the rest fails.
fn by_fault(fault: Fault, e: impl std::fmt::Display) -> JobFailure {
    match fault {
        Fault::Unavailable => JobFailure::Outage(format!("storage unavailable: {e}")),
        Fault::Full => JobFailure::Outage(format!("no space left: {e}")),
        Fault::Other => failed(e),
    }
}

fn store_failure(e: StoreError) -> JobFailure {
    by_fault(e.fault(), e)
}

fn io_failure(e: std::io::Error) -> JobFailure {
    by_fault(io_fault(&e), e)
}

fn library_failure(e: LibraryError) -> JobFailure {
    let full = match &e {
        LibraryError::Db(d) => crate::db::is_full(d),
        LibraryError::Task(d) => d.is_full(),
        _ => false,
    };
    match e {
        LibraryError::Store(e) => store_failure(e),
        e if full => by_fault(Fault::Full, e),
        e => failed(e),
    }
}

/// Runs one attempt.
pub async fn run(s: &Service, job: &Job, ctx: &JobCtx) -> Result<(), JobFailure> {
    let id: TrackId = job
        .track_id
        .as_deref()
        .unwrap_or_default()
        .parse()
        .map_err(failed)?;
    let lookup = id.clone();
    let Some(track) =
        s.db.call(move |c| tracks::get(c, &lookup))
            .await
            .map_err(library_failure)?
    else {
        tracing::info!(track = %id, "track was deleted before packaging; nothing to do");
        return Ok(());
    };
    let hls = s.jobs.hls();
    if !hls.available {
        return Err(JobFailure::Unavailable(
            hls.reason.unwrap_or_else(|| "HLS is unavailable".into()),
        ));
    }

    let work = work_root(&s.config.data_dir).join(format!("job-{}", job.id));
    let _ = tokio::fs::remove_dir_all(&work).await;
    let out = work.join("out");
    tokio::fs::create_dir_all(&out).await.map_err(io_failure)?;
    let result = package_into(s, &id, &track, &work, &out, ctx).await;
    if let Err(e) = tokio::fs::remove_dir_all(&work).await {
        tracing::warn!(error = %e, dir = %work.display(), "could not remove a job work dir");
    }
    // The error becomes the job's last error and the track's status_detail: no server paths.
    result.map_err(|f| {
        if let JobFailure::Failed(m) | JobFailure::Unavailable(m) | JobFailure::Outage(m) = &f {
            tracing::debug!(track = %id, error = %m, "packaging attempt failed");
        }
        let scrub = |m: String| scrub_paths(&m, &server_paths(s, job));
        match f {
            JobFailure::Failed(m) => JobFailure::Failed(scrub(m)),
            JobFailure::Unavailable(m) => JobFailure::Unavailable(scrub(m)),
            JobFailure::Outage(m) => JobFailure::Outage(scrub(m)),
            other => other,
        }
    })
}

/// The server's paths a packaging error may quote, with what each becomes: the job's work
/// dir disappears (ffmpeg's `file:/…/work/job-7/original.mp3` reads `file:original.mp3`), the
/// data dir and the local blob root get placeholders.
fn server_paths(s: &Service, job: &Job) -> Vec<(PathBuf, &'static str)> {
    let data = &s.config.data_dir;
    let work = work_root(data).join(format!("job-{}", job.id));
    vec![
        (work, ""),
        (data.clone(), "<data_dir>"),
        (s.config.storage.local_root.clone(), "<blobs>"),
    ]
}

/// `text` with each path of `paths` replaced: as configured, made absolute and resolved
/// (ffmpeg sees the absolute form; a symlinked data dir may show up resolved), longest first.
/// A path replaced by `""` takes its trailing `/` with it.
fn scrub_paths(text: &str, paths: &[(PathBuf, &str)]) -> String {
    let mut forms: Vec<(String, &str)> = Vec::new();
    for (path, with) in paths {
        let candidates = [
            Some(path.clone()),
            std::path::absolute(path).ok(),
            std::fs::canonicalize(path).ok(),
        ];
        for p in candidates.into_iter().flatten() {
            let shown = p.display().to_string();
            let shown = shown.trim_end_matches('/');
            // "." or "" would match everywhere; a bare relative name could match a word.
            if shown.len() < 2 || !shown.contains('/') {
                continue;
            }
            let form = if with.is_empty() {
                format!("{shown}/")
            } else {
                shown.to_owned()
            };
            if !forms.iter().any(|(f, _)| *f == form) {
                forms.push((form, with));
            }
        }
    }
    forms.sort_by_key(|(f, _)| std::cmp::Reverse(f.len()));
    let mut out = text.to_owned();
    for (form, with) in forms {
        out = out.replace(&form, with);
    }
    out
}

async fn package_into(
    s: &Service,
    id: &TrackId,
    track: &crate::library::Track,
    work: &Path,
    out: &Path,
    ctx: &JobCtx,
) -> Result<(), JobFailure> {
    let key = track.original_key.clone();
    let ext = key.as_str().rsplit('.').next().unwrap_or("bin").to_owned();
    let input = work.join(format!("original.{ext}"));
    download(s, &key, &input).await?;
    if ctx.cancel.is_cancelled() {
        return Err(JobFailure::Interrupted);
    }

    let cfg = &s.config.hls;
    let mut opts = hls::Options {
        ffmpeg: cfg.ffmpeg.clone(),
        rungs: hls::pick_rungs(&cfg.ladder_kbps, track.bitrate_kbps),
        segment_secs: cfg.segment_secs,
        timeout: Duration::from_secs(cfg.timeout_secs),
        gain_db: None,
        source: hls::Source::default(),
    };
    let hint = track
        .duration_ms
        .and_then(|ms| u64::try_from(ms).ok())
        .map(Duration::from_millis);
    opts.source = hls::Source {
        sample_rate: track.sample_rate,
        channels: track.channels,
        duration: hint,
    };
    // ffmpeg is most of the work; the upload is the last tenth.
    let report = |p: f64| ctx.report(p * 0.9);
    let mut packaged = hls::package(&input, out, &opts, hint, &report, &ctx.cancel)
        .await
        .map_err(hls_failure)?;
    if cfg.normalize {
        // The gain needs the loudness, which only this run measured: encode again with it.
        let m = &packaged.analysis.loudness;
        opts.gain_db = Some(normalize_gain(m.integrated_lufs, m.true_peak_dbtp));
        let again = work.join("normalized");
        tokio::fs::create_dir_all(&again)
            .await
            .map_err(io_failure)?;
        let analysis = packaged.analysis.clone();
        packaged = hls::package(&input, &again, &opts, hint, &report, &ctx.cancel)
            .await
            .map_err(hls_failure)?;
        // What was measured is the original's loudness, not the normalized renditions'.
        packaged.analysis.loudness = analysis.loudness;
    }
    let prefix = hls_prefix(id);
    let up = hls::upload(&s.store, &prefix, &packaged)
        .await
        .map_err(hls_failure)?;
    ctx.report(1.0);
    tracing::info!(
        track = %id,
        rungs = ?opts.rungs,
        uploaded = up.uploaded,
        skipped = up.skipped,
        removed = up.removed,
        bytes = up.bytes,
        "track packaged as HLS"
    );

    let master = format!("{prefix}/{}", packaged.master);
    let renditions = packaged.renditions.clone();
    let track_id = id.clone();
    let now = crate::clock::now();
    let still_there =
        s.db.call(move |c| lifecycle::mark_packaged(c, &track_id, &master, &renditions, now))
            .await
            .map_err(library_failure)?;
    if still_there {
        // After the track is marked: a crash in between reruns the job, which records it.
        let a = packaged.analysis;
        let peaks = format!("{prefix}/{}", a.peaks);
        let track_id = id.clone();
        s.db.call(move |c| analysis::record(c, &track_id, &a.loudness, &a.gapless, &peaks, now))
            .await
            .map_err(library_failure)?;
    }
    s.tracks_changed();
    if !still_there {
        // Deleted while we packaged: what we uploaded belongs to nobody.
        remove_tree(s, &prefix).await;
    }
    Ok(())
}

/// The gain `hls.normalize` applies: to the ReplayGain reference, but never lifting the true
/// peak above −1 dBTP.
fn normalize_gain(integrated_lufs: f64, true_peak_dbtp: f64) -> f64 {
    analysis::gain_db(integrated_lufs).min(-1.0 - true_peak_dbtp)
}

fn hls_failure(e: HlsError) -> JobFailure {
    match e {
        HlsError::FfmpegMissing(reason) => JobFailure::Unavailable(reason),
        HlsError::Cancelled => JobFailure::Interrupted,
        HlsError::Store(e) => store_failure(e),
        HlsError::Io { source, op, path } => {
            let fault = io_fault(&source);
            by_fault(fault, HlsError::Io { op, path, source })
        }
        // ffmpeg's own writes in the work dir: its words are all there is to go by.
        e @ HlsError::Ffmpeg { .. } if e.to_string().contains("No space left on device") => {
            by_fault(Fault::Full, e)
        }
        other => JobFailure::Failed(other.to_string()),
    }
}

async fn download(s: &Service, key: &BlobKey, to: &Path) -> Result<(), JobFailure> {
    let mut obj = s.store.get(key, None).await.map_err(store_failure)?;
    let mut f = tokio::fs::File::create(to).await.map_err(io_failure)?;
    while let Some(chunk) = obj.body.next().await {
        f.write_all(&chunk.map_err(io_failure)?)
            .await
            .map_err(io_failure)?;
    }
    f.flush().await.map_err(io_failure)?;
    Ok(())
}

/// Deletes every object under a track's HLS prefix (track deleted).
pub async fn remove_tree(s: &Service, prefix: &str) {
    let listed = match s.store.list(&format!("{prefix}/")).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, prefix, "could not list an HLS tree to remove it");
            return;
        }
    };
    for obj in listed {
        if let Err(e) = s.store.delete(&obj.key).await {
            tracing::warn!(error = %e, key = %obj.key, "could not remove an HLS object");
        }
    }
}

/// A failed attempt that will be retried: the track stays `processing`, and says why.
pub async fn failed_attempt(s: &Service, job: &Job, error: &str) {
    let detail = format!(
        "HLS packaging attempt {} of {} failed; retrying: {}",
        job.attempts,
        job.max_attempts,
        tail(error)
    );
    set_detail(s, job, false, detail).await;
}

/// Out of attempts: the track is `failed` with the error (its original still streams).
pub async fn gave_up(s: &Service, job: &Job, error: &str) {
    let detail = format!("HLS packaging failed: {}", tail(error));
    set_detail(s, job, true, detail).await;
}

async fn set_detail(s: &Service, job: &Job, last_attempt: bool, detail: String) {
    let Some(track_id) = job.track_id.clone() else {
        return;
    };
    // Anyone who can see the track sees this (an error recorded before the scrub in `run`
    // may still quote paths).
    let detail = scrub_paths(&detail, &server_paths(s, job));
    let now = crate::clock::now();
    let r =
        s.db.call(move |c| {
            lifecycle::record_packaging_failure(c, &track_id, last_attempt, &detail, now)
        })
        .await;
    match r {
        Ok(()) => s.tracks_changed(),
        Err(e) => tracing::warn!(error = %e, "could not record a packaging failure on its track"),
    }
}

/// The end of an error message, where ffmpeg says what went wrong.
fn tail(s: &str) -> &str {
    const KEEP: usize = 1500;
    if s.len() <= KEEP {
        return s;
    }
    let mut start = s.len() - KEEP;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packaging_errors_lose_the_servers_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir_all(data.join("work/job-7")).unwrap();
        let blobs = tmp.path().join("blobs");
        let paths = [
            (data.join("work/job-7"), ""),
            (data.clone(), "<data_dir>"),
            (blobs.clone(), "<blobs>"),
        ];
        let d = data.display();
        let b = blobs.display();
        let text = format!(
            "ffmpeg failed (exit status: 1): file:{d}/work/job-7/original.mp3: Invalid data \
             found when processing input; open {d}/tmp/x; read {b}/originals/ab.mp3"
        );
        let clean = scrub_paths(&text, &paths);
        assert_eq!(
            clean,
            "ffmpeg failed (exit status: 1): file:original.mp3: Invalid data found when \
             processing input; open <data_dir>/tmp/x; read <blobs>/originals/ab.mp3"
        );
        assert!(
            !clean.contains(&tmp.path().display().to_string()),
            "{clean}"
        );
        // The resolved form too (a temp dir may sit behind a symlink, as /tmp on macOS).
        let real = std::fs::canonicalize(&data).unwrap();
        let text = format!("{}/work/job-7/original.mp3", real.display());
        assert_eq!(scrub_paths(&text, &paths), "original.mp3");
        // A data dir of "." replaces nothing by accident: only its absolute form.
        let dot = [(PathBuf::from("."), "<data_dir>")];
        assert_eq!(scrub_paths("a.b ./c", &dot), "a.b ./c");
    }
}
