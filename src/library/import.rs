//! `veza import DIR`: bulk import of a folder tree. Safe beside a running `serve` on the same
//! data dir (SQLite WAL with a busy timeout; the unique SHA-256 settles races), idempotent
//! (a second run finds only duplicates), with a progress bar on a terminal and plain lines
//! otherwise.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use super::ingest::{Ingest, Outcome, Overrides, hash_file};
use super::{LibraryError, Visibility};

/// Extensions imported; everything else is skipped.
pub const AUDIO_EXTENSIONS: [&str; 9] = [
    "mp3", "flac", "m4a", "aac", "ogg", "oga", "opus", "wav", "mp4",
];

/// What an import did.
#[derive(Debug, Default)]
pub struct Summary {
    /// New tracks.
    pub imported: usize,
    /// Files whose bytes were already in the library.
    pub duplicates: usize,
    /// Files that are not audio by extension.
    pub skipped: usize,
    /// Files that failed, with the reason.
    pub failed: Vec<(PathBuf, String)>,
    /// Bytes of the audio files considered.
    pub bytes: u64,
}

/// Lists audio files under `dir` (sorted, so runs are reproducible) and counts the rest.
pub fn scan(dir: &Path) -> Result<(Vec<(PathBuf, u64)>, usize), LibraryError> {
    let mut files = Vec::new();
    let mut skipped = 0;
    for entry in walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|e| LibraryError::Io {
            op: "walk",
            path: e
                .path()
                .map_or_else(|| dir.display().to_string(), |p| p.display().to_string()),
            source: std::io::Error::other(e.to_string()),
        })?;
        if !entry.file_type().is_file() {
            continue;
        }
        let ext = entry
            .path()
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        if AUDIO_EXTENSIONS.contains(&ext.as_str()) {
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            files.push((entry.into_path(), size));
        } else {
            skipped += 1;
        }
    }
    Ok((files, skipped))
}

/// Imports every audio file under `dir`; with `dry_run`, only hashes and checks for duplicates.
pub async fn run(
    ingest: &Ingest,
    dir: &Path,
    visibility: Visibility,
    dry_run: bool,
) -> Result<Summary, LibraryError> {
    let (files, skipped) = scan(dir)?;
    let total_bytes: u64 = files.iter().map(|(_, s)| s).sum();
    let mut sum = Summary {
        skipped,
        bytes: total_bytes,
        ..Summary::default()
    };
    let tty = std::io::stderr().is_terminal();
    let bar = if tty {
        let b = ProgressBar::new(total_bytes);
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
            )
            .expect("static template"),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    let started = Instant::now();
    let over = Overrides {
        visibility: Some(visibility),
        ..Overrides::default()
    };
    for (i, (path, size)) in files.iter().enumerate() {
        bar.set_message(format!("{}/{} files", i + 1, files.len()));
        let rel = path.strip_prefix(dir).unwrap_or(path).display().to_string();
        let result = async {
            let (sha, hashed_size) = hash_file(path).await?;
            if dry_run {
                let dup = ingest
                    .db
                    .call(move |c| super::store::find_by_sha(c, &sha))
                    .await?;
                return Ok::<_, LibraryError>(if dup.is_some() {
                    "duplicate"
                } else {
                    "would import"
                });
            }
            let title = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("Untitled")
                .to_owned();
            match ingest
                .file(path, &sha, hashed_size, &over, &title, None)
                .await?
            {
                Outcome::Created(_) => Ok("imported"),
                Outcome::Duplicate(_) => Ok("duplicate"),
            }
        }
        .await;
        let line = match result {
            Ok("imported") | Ok("would import") => {
                sum.imported += 1;
                format!(
                    "{} {rel}",
                    if dry_run { "would import" } else { "imported" }
                )
            }
            Ok(_) => {
                sum.duplicates += 1;
                format!("duplicate {rel}")
            }
            Err(e) => {
                let reason = e.to_string();
                sum.failed.push((path.clone(), reason.clone()));
                format!("failed {rel}: {reason}")
            }
        };
        if tty {
            bar.println(line);
        } else {
            println!("{line}");
        }
        bar.inc(*size);
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64().max(0.001);
    eprintln!(
        "{} imported, {} duplicates, {} skipped (not audio), {} failed; {:.1} MB in {:.1} s ({:.0} files/min)",
        sum.imported,
        sum.duplicates,
        sum.skipped,
        sum.failed.len(),
        sum.bytes as f64 / 1e6,
        secs,
        files.len() as f64 * 60.0 / secs,
    );
    for (path, reason) in &sum.failed {
        eprintln!("  failed: {}: {reason}", path.display());
    }
    Ok(sum)
}
