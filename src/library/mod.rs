//! The music library: tracks, their metadata and visibility. Types here; the file probe in
//! `probe.rs`; ingestion (hash, probe, store, insert) in `ingest.rs`; SQL in `store.rs`;
//! the bulk importer in `import.rs`. HTTP lives in `http::api::tracks`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::storage::BlobKey;

pub mod analysis;
pub mod blobs;
pub mod catalog;
pub mod import;
pub mod ingest;
pub mod lifecycle;
pub mod playlists;
pub mod probe;
pub mod store;

/// What serving and signing need to know about a track: a narrow read of `tracks` (no tags,
/// no metadata) made on every origin pull and stream-URL request, so it is cached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackAccess {
    /// Canonical track id.
    pub id: TrackId,
    /// Who may stream it.
    pub visibility: Visibility,
    /// Lifecycle state.
    pub status: Status,
    /// MIME type of the original.
    pub content_type: String,
    /// Blob key of the original.
    pub original_key: BlobKey,
    /// Blob key of the HLS master playlist, once packaged.
    pub hls_key: Option<BlobKey>,
    /// Blob key of the cover, if any.
    pub cover_key: Option<BlobKey>,
    /// Blob key of the waveform peaks, once analysed.
    pub peaks_key: Option<BlobKey>,
}

/// Which tracks own an object: the key of a [`store::owners`] lookup (and of its cache).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OwnerKey {
    /// `tracks/{id}/…`: the one track.
    Track(String),
    /// `originals/…`: the track(s) with this hash and key.
    Original {
        /// SHA-256 hex of the bytes.
        sha256: String,
        /// The blob key.
        key: String,
    },
    /// `covers/…`: every track sharing the image.
    Cover(String),
}

/// Why a library operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    /// SQLite failed.
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    /// The database task failed.
    #[error(transparent)]
    Task(#[from] crate::db::DbError),
    /// The blob store failed.
    #[error("storage: {0}")]
    Store(#[from] crate::storage::StoreError),
    /// The file is not audio Veza can read.
    #[error("not an audio file Veza can read: {0}")]
    NotAudio(String),
    /// The upload is over `storage.max_upload_bytes`.
    #[error("file is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The upload body could not be read (client gone, malformed multipart).
    #[error("the upload was cut off or malformed: {0}")]
    Body(String),
    /// Local file I/O failed (temp files, import sources).
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// Where.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A field value is not acceptable.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What to fix.
        message: String,
    },
    /// No such track (or playlist).
    #[error("not found")]
    NotFound,
    /// Someone else's (a playlist only its owner may change).
    #[error("only its owner may change it")]
    Forbidden,
    /// A job could not be queued with the change (the change was rolled back).
    #[error("could not queue a job: {0}")]
    Enqueue(crate::jobs::JobError),
}

/// A track id: a UUID (v7 when Veza made it). Parsing rejects anything else, so a bad id in a
/// path is a 404 before any handler runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct TrackId(String);

impl TrackId {
    /// A new time-ordered id.
    pub fn new() -> TrackId {
        TrackId(uuid::Uuid::now_v7().to_string())
    }

    /// The canonical hyphenated lowercase form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TrackId {
    fn default() -> Self {
        Self::new()
    }
}

impl FromStr for TrackId {
    type Err = String;
    fn from_str(s: &str) -> Result<TrackId, String> {
        uuid::Uuid::try_parse(s)
            .map(|u| TrackId(u.hyphenated().to_string()))
            .map_err(|_| format!("{s:?} is not a track id"))
    }
}

impl fmt::Display for TrackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who may see a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Listed and streamable by anyone.
    Public,
    /// Not listed; anyone with the id.
    Unlisted,
    /// Signed-in users only.
    Private,
}

impl Visibility {
    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Unlisted => "unlisted",
            Visibility::Private => "private",
        }
    }
}

impl FromStr for Visibility {
    type Err = String;
    fn from_str(s: &str) -> Result<Visibility, String> {
        match s {
            "public" => Ok(Visibility::Public),
            "unlisted" => Ok(Visibility::Unlisted),
            "private" => Ok(Visibility::Private),
            other => Err(format!(
                "visibility {other:?} is not public, unlisted or private"
            )),
        }
    }
}

/// Where a track is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// HLS packaging not done yet (the original streams meanwhile).
    Processing,
    /// Streamable.
    Ready,
    /// Packaging failed; the original still streams.
    Failed,
    /// Hidden everywhere by an admin.
    TakenDown,
}

impl Status {
    /// Every status, in life order.
    pub const ALL: [Status; 4] = [
        Status::Processing,
        Status::Ready,
        Status::Failed,
        Status::TakenDown,
    ];

    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Processing => "processing",
            Status::Ready => "ready",
            Status::Failed => "failed",
            Status::TakenDown => "taken_down",
        }
    }
}

impl FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Status, String> {
        match s {
            "processing" => Ok(Status::Processing),
            "ready" => Ok(Status::Ready),
            "failed" => Ok(Status::Failed),
            "taken_down" => Ok(Status::TakenDown),
            other => Err(format!(
                "status {other:?} is not processing, ready, failed or taken_down"
            )),
        }
    }
}

/// A track as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Track {
    /// UUIDv7.
    #[schema(value_type = String)]
    pub id: TrackId,
    /// Title (from the tags, else the file name).
    pub title: String,
    /// Artist ("" when unknown).
    pub artist: String,
    /// Album ("" when unknown).
    pub album: String,
    /// Position on the album.
    pub track_number: Option<u32>,
    /// Album artist from the tags ("" when untagged: the album is filed under `artist`).
    pub album_artist: String,
    /// Genre from the tags ("" when unknown).
    pub genre: String,
    /// Year from the tags.
    pub year: Option<u32>,
    /// Disc number from the tags.
    pub disc_number: Option<u32>,
    /// Plays scrobbled by players, all users together.
    pub play_count: i64,
    /// Unix seconds of the last scrobbled play.
    pub last_played_at: Option<i64>,
    /// Duration in milliseconds.
    pub duration_ms: Option<i64>,
    /// `mp3`, `flac`, `opus`, `vorbis`, `aac`, `alac`, `pcm`, …
    pub codec: String,
    /// Average bitrate.
    pub bitrate_kbps: Option<u32>,
    /// Samples per second.
    pub sample_rate: Option<u32>,
    /// Channel count.
    pub channels: Option<u8>,
    /// Size of the original in bytes.
    pub size_bytes: i64,
    /// SHA-256 of the original, hex.
    pub sha256: String,
    /// MIME type of the original.
    pub content_type: String,
    /// Whether cover art was found.
    pub has_cover: bool,
    /// Whether HLS renditions are ready to stream.
    pub has_hls: bool,
    /// Who may see it.
    pub visibility: Visibility,
    /// Where it is in its life.
    pub status: Status,
    /// Why it failed or was taken down.
    pub status_detail: Option<String>,
    /// Free-form tags.
    pub tags: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// Blob key of the original (internal).
    #[serde(skip)]
    pub original_key: BlobKey,
    /// Blob key of the cover (internal).
    #[serde(skip)]
    pub cover_key: Option<BlobKey>,
    /// Blob key of the HLS master playlist (internal).
    #[serde(skip)]
    pub hls_key: Option<BlobKey>,
    /// Loudness and ReplayGain 2.0 values; null until the track is analysed.
    pub loudness: Option<analysis::Loudness>,
    /// Gapless data of the HLS renditions; null until the track is analysed.
    pub gapless: Option<analysis::Gapless>,
    /// Signed URL of the waveform peaks (audiowaveform JSON v2); null until analysed.
    pub peaks_url: Option<String>,
    /// Blob key of the peaks object (internal).
    #[serde(skip)]
    pub peaks_key: Option<BlobKey>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn track_ids_parse_only_uuids() {
        let id = TrackId::new();
        assert_eq!(id.as_str().parse::<TrackId>().unwrap(), id);
        assert!("../etc".parse::<TrackId>().is_err());
        assert!("12".parse::<TrackId>().is_err());
        let upper = "0192F3C4-5D6E-7F80-9A1B-2C3D4E5F6A7B"
            .parse::<TrackId>()
            .unwrap();
        assert_eq!(upper.as_str(), "0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b");
    }

    #[test]
    fn enums_round_trip() {
        for v in ["public", "unlisted", "private"] {
            assert_eq!(v.parse::<Visibility>().unwrap().as_str(), v);
        }
        for s in ["processing", "ready", "failed", "taken_down"] {
            assert_eq!(s.parse::<Status>().unwrap().as_str(), s);
        }
        assert!("hidden".parse::<Visibility>().is_err());
    }
}
