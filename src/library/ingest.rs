//! From bytes to a track: spool to a local temp file while hashing (size-limited), probe it,
//! store the original and cover content-addressed, insert the row. Shared by the upload API
//! and `veza import`. A crash at any step leaves no row; at worst an unreferenced blob.

use std::path::{Path, PathBuf};

use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::probe::{Probed, probe};
use super::store::{self, NewTrack};
use super::{LibraryError, Status, Track, TrackId, Visibility};
use crate::db::Db;
use crate::storage::{BlobStore, ByteStream};

/// Largest cover image kept.
const MAX_COVER_BYTES: u64 = 16 * 1024 * 1024;

/// What ingestion needs.
#[derive(Clone)]
pub struct Ingest {
    /// Database.
    pub db: Db,
    /// Blob store.
    pub store: BlobStore,
    /// ffprobe program for the fallback probe.
    pub ffprobe: String,
    /// Folder for spooled uploads (`{data_dir}/tmp`), swept at start.
    pub spool_dir: PathBuf,
    /// When HLS is on: new tracks start `processing` with a packaging job of this many
    /// attempts, written in the same transaction as the track.
    pub package_attempts: Option<u32>,
    /// Wakes this process's job workers after an insert (`None` in `veza import`: the
    /// server's workers find the jobs when they next poll).
    pub queue: Option<crate::jobs::Queue>,
}

/// Values that override the file's tags.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Title.
    pub title: Option<String>,
    /// Artist.
    pub artist: Option<String>,
    /// Album.
    pub album: Option<String>,
    /// Visibility (default public).
    pub visibility: Option<Visibility>,
}

/// The result of ingesting one file.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A new track.
    Created(Track),
    /// The same bytes were already in the library: the existing track.
    Duplicate(Track),
}

/// A spooled upload on local disk; removed when dropped.
#[derive(Debug)]
pub struct Spooled {
    /// The temp file.
    pub path: PathBuf,
    /// Bytes written.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

impl Drop for Spooled {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> LibraryError {
    let path = path.display().to_string();
    move |source| LibraryError::Io { op, path, source }
}

/// Removes spool files left by a crash (nothing refers to them).
pub fn sweep_spool(dir: &Path) -> Result<usize, LibraryError> {
    let mut n = 0;
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            for e in entries.flatten() {
                if std::fs::remove_file(e.path()).is_ok() {
                    n += 1;
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("read", dir)(e)),
    }
    Ok(n)
}

/// Writes a body to a temp file in `dir`, hashing as it goes; `TooLarge` past `limit`
/// (the partial file is removed).
pub async fn spool<S, B, E>(body: S, dir: &Path, limit: u64) -> Result<Spooled, LibraryError>
where
    S: Stream<Item = Result<B, E>>,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    crate::datadir::private_dir(dir).map_err(io("create", dir))?;
    let path = dir.join(format!("upload-{}", uuid::Uuid::new_v4().simple()));
    let mut spooled = Spooled {
        path: path.clone(),
        size: 0,
        sha256: String::new(),
    };
    let mut file = tokio::fs::File::create(&path)
        .await
        .map_err(io("create", &path))?;
    let mut hasher = Sha256::new();
    let mut body = std::pin::pin!(body);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| LibraryError::Body(e.to_string()))?;
        let bytes = chunk.as_ref();
        spooled.size += bytes.len() as u64;
        if spooled.size > limit {
            return Err(LibraryError::TooLarge { limit });
        }
        hasher.update(bytes);
        file.write_all(bytes).await.map_err(io("write", &path))?;
    }
    file.flush().await.map_err(io("write", &path))?;
    spooled.sha256 = format!("{:x}", hasher.finalize());
    Ok(spooled)
}

/// SHA-256 of a local file, hex, streamed.
pub async fn hash_file(path: &Path) -> Result<(String, u64), LibraryError> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(io("open", path))?;
    let mut stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024);
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(io("read", path))?;
        size += chunk.len() as u64;
        hasher.update(&chunk);
    }
    Ok((format!("{:x}", hasher.finalize()), size))
}

async fn file_stream(path: &Path) -> Result<ByteStream, LibraryError> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(io("open", path))?;
    Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(
        file,
        256 * 1024,
    )))
}

impl Ingest {
    /// Ingests a local file whose hash and size are known. `fallback_title` names the track
    /// when the file has no title tag.
    pub async fn file(
        &self,
        path: &Path,
        sha256: &str,
        size: u64,
        over: &Overrides,
        fallback_title: &str,
        created_by: Option<String>,
    ) -> Result<Outcome, LibraryError> {
        let sha = sha256.to_owned();
        if let Some(t) = self.db.call(move |c| store::find_by_sha(c, &sha)).await? {
            return Ok(Outcome::Duplicate(t));
        }
        let probed: Probed = probe(path, &self.ffprobe).await?;

        let original = self
            .store
            .put_content_addressed("originals", &probed.ext, file_stream(path).await?, size)
            .await?;
        if original.sha256 != sha256 {
            // The file changed between hashing and storing (an import source being written).
            return Err(LibraryError::Invalid {
                field: "file",
                message: "the file changed while it was being imported".into(),
            });
        }
        let cover_key = match &probed.cover {
            Some((bytes, ext)) if bytes.len() as u64 <= MAX_COVER_BYTES => {
                let body: ByteStream = Box::pin(futures_util::stream::once(std::future::ready(
                    Ok(bytes::Bytes::from(bytes.clone())),
                )));
                Some(
                    self.store
                        .put_content_addressed("covers", ext, body, MAX_COVER_BYTES)
                        .await?
                        .key,
                )
            }
            _ => None,
        };
        let now = crate::clock::now();
        let pick = |o: &Option<String>, tag: &Option<String>| {
            o.clone()
                .filter(|s| !s.trim().is_empty())
                .or_else(|| tag.clone())
        };
        let id = TrackId::new();
        let track = Track {
            id: id.clone(),
            title: pick(&over.title, &probed.title).unwrap_or_else(|| fallback_title.to_owned()),
            artist: pick(&over.artist, &probed.artist).unwrap_or_default(),
            album: pick(&over.album, &probed.album).unwrap_or_default(),
            track_number: probed.track_number,
            album_artist: probed.album_artist.clone().unwrap_or_default(),
            genre: probed.genre.clone().unwrap_or_default(),
            year: probed.year,
            disc_number: probed.disc_number,
            play_count: 0,
            last_played_at: None,
            duration_ms: probed.duration_ms.and_then(|d| i64::try_from(d).ok()),
            codec: probed.codec,
            bitrate_kbps: probed.bitrate_kbps,
            sample_rate: probed.sample_rate,
            channels: probed.channels,
            size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
            sha256: sha256.to_owned(),
            content_type: probed.content_type,
            has_cover: cover_key.is_some(),
            has_hls: false,
            visibility: over.visibility.unwrap_or(Visibility::Public),
            // The original streams meanwhile; the packaging job makes it `ready`.
            status: if self.package_attempts.is_some() {
                Status::Processing
            } else {
                Status::Ready
            },
            status_detail: None,
            tags: Vec::new(),
            created_at: now,
            updated_at: now,
            original_key: original.key.clone(),
            cover_key,
            hls_key: None,
            loudness: None,
            gapless: None,
            peaks_url: None,
            peaks_key: None,
        };
        let new = NewTrack {
            id,
            track,
            created_by,
        };
        let sha = sha256.to_owned();
        let attempts = self.package_attempts;
        let inserted = self
            .db
            .call(move |c| {
                store::insert(c, &new, |tx| {
                    if let Some(max) = attempts {
                        let job = crate::jobs::NewJob::package_hls(new.id.as_str());
                        super::lifecycle::enqueue(tx, &job, max, now)?;
                    }
                    Ok(())
                })
            })
            .await?;
        match inserted {
            Some(t) => {
                if let Some(q) = &self.queue {
                    q.notify();
                }
                Ok(Outcome::Created(t))
            }
            // Lost a race with a concurrent upload or import of the same bytes.
            None => {
                let t = self.db.call(move |c| store::find_by_sha(c, &sha)).await?;
                t.map(Outcome::Duplicate).ok_or(LibraryError::NotFound)
            }
        }
    }
}
