//! `veza import DIR`: bulk import of a folder tree. Safe beside a running `serve` on the same
//! data dir (SQLite WAL with a busy timeout; the unique SHA-256 settles races), idempotent
//! (a second run finds only duplicates), with a progress bar on a terminal and plain lines
//! otherwise.

use std::collections::HashSet;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use futures_util::StreamExt;
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

/// How one file went.
enum FileOutcome {
    Imported,
    Duplicate,
    Failed(String),
}

/// Imports every audio file under `dir`, `jobs` files at a time (at least one); with `dry_run`,
/// only hashes and checks for duplicates.
///
/// Files are hashed in scan order and a file whose bytes an earlier file of the same run has
/// is a duplicate of it, so the same tree always yields the same tracks (titles come from
/// file names) however the work interleaves.
pub async fn run(
    ingest: &Ingest,
    dir: &Path,
    visibility: Visibility,
    dry_run: bool,
    jobs: usize,
) -> Result<Summary, LibraryError> {
    let jobs = jobs.max(1);
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
    let mut seen: HashSet<String> = HashSet::new();
    // Each file is its own task, so hashing and storing use every core; hashing runs ahead
    // in scan order (`buffered`), ingestion takes whatever is ready.
    let mut done = futures_util::stream::iter(files.iter())
        .map(|(path, size)| {
            let owned = path.clone();
            let hashing = tokio::spawn(async move { hash_file(&owned).await });
            async move { (path, *size, joined(path, hashing.await)) }
        })
        .buffered(jobs)
        .map(|(path, size, hashed)| {
            let outcome = match hashed {
                Err(e) => Err(FileOutcome::Failed(e.to_string())),
                Ok((sha, _)) if !seen.insert(sha.clone()) => Err(FileOutcome::Duplicate),
                Ok((sha, hashed_size)) => Ok(tokio::spawn(import_one(
                    ingest.clone(),
                    path.clone(),
                    sha,
                    hashed_size,
                    over.clone(),
                    dry_run,
                ))),
            };
            async move {
                let outcome = match outcome {
                    Err(settled) => settled,
                    Ok(task) => match joined(path, task.await) {
                        Ok(true) => FileOutcome::Imported,
                        Ok(false) => FileOutcome::Duplicate,
                        Err(e) => FileOutcome::Failed(e.to_string()),
                    },
                };
                (path, size, outcome)
            }
        })
        .buffer_unordered(jobs);
    let mut finished = 0;
    while let Some((path, size, outcome)) = done.next().await {
        finished += 1;
        bar.set_message(format!("{finished}/{} files", files.len()));
        let rel = path.strip_prefix(dir).unwrap_or(path).display().to_string();
        let line = match outcome {
            FileOutcome::Imported => {
                sum.imported += 1;
                format!(
                    "{} {rel}",
                    if dry_run { "would import" } else { "imported" }
                )
            }
            FileOutcome::Duplicate => {
                sum.duplicates += 1;
                format!("duplicate {rel}")
            }
            FileOutcome::Failed(reason) => {
                let line = format!("failed {rel}: {reason}");
                sum.failed.push((path.clone(), reason));
                line
            }
        };
        if tty {
            bar.println(line);
        } else {
            println!("{line}");
        }
        bar.inc(size);
    }
    // Lines print as files finish; the summary lists failures in scan order.
    sum.failed.sort();
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

/// A task's result; a task that panicked is that file's failure, not the import's.
fn joined<T>(
    path: &Path,
    r: Result<Result<T, LibraryError>, tokio::task::JoinError>,
) -> Result<T, LibraryError> {
    r.unwrap_or_else(|e| {
        Err(LibraryError::Io {
            op: "import",
            path: path.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })
    })
}

/// Ingests one hashed file: `true` when it is new (or, dry, would be).
async fn import_one(
    ingest: Ingest,
    path: PathBuf,
    sha: String,
    size: u64,
    over: Overrides,
    dry_run: bool,
) -> Result<bool, LibraryError> {
    if dry_run {
        let dup = ingest
            .db
            .call(move |c| super::store::find_by_sha(c, &sha))
            .await?;
        return Ok(dup.is_none());
    }
    let title = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("Untitled")
        .to_owned();
    Ok(matches!(
        ingest.file(&path, &sha, size, &over, &title, None).await?,
        Outcome::Created(_)
    ))
}
