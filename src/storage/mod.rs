//! Blob storage. This module owns bytes, never tracks: objects are named by a validated
//! [`BlobKey`], written by streaming (hashed with SHA-256 and size-limited on the way, never
//! buffered whole), and never visible under their final key until complete.
//!
//! Two backends behind one enum (no trait objects, so every call is a plain match):
//! [`local::LocalStore`] (temp file, fsync, rename, fsync the directory) and [`s3::S3Store`]
//! (any S3-compatible store through the `object_store` crate). Both keep their in-flight work
//! under the reserved `.tmp/` prefix, which [`BlobKey`] refuses and listings skip.

pub mod key;
pub mod local;
pub mod s3;

use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use prometheus::{HistogramVec, IntCounterVec};
use sha2::{Digest, Sha256};

use crate::config::{StorageBackend, StorageConfig};
use crate::metrics::Metrics;

pub use key::{BlobKey, KeyError};

/// A stream of bytes in or out of the store.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// Where in-flight objects live on every backend (the first segment; `BlobKey` refuses it).
pub const TEMP_PREFIX: &str = ".tmp";

/// Temp objects older than this are leftovers of a crash; younger ones may belong to another
/// process on the same store (`veza import` beside `veza serve`) and are left alone.
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);

/// A byte range of an object, as in an HTTP `Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// From an offset to the end (`bytes=N-`).
    From(u64),
    /// Both ends included (`bytes=A-B`); an end past the object is cut to its last byte.
    Inclusive(u64, u64),
    /// The last N bytes (`bytes=-N`).
    Suffix(u64),
}

impl ByteRange {
    /// The inclusive `(start, end)` this range selects in an object of `size` bytes, or `None`
    /// when it selects nothing (HTTP 416).
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        let last = size.checked_sub(1)?;
        match self {
            ByteRange::From(start) if start <= last => Some((start, last)),
            ByteRange::Inclusive(start, end) if start <= end && start <= last => {
                Some((start, end.min(last)))
            }
            ByteRange::Suffix(n) if n > 0 => Some((size.saturating_sub(n), last)),
            _ => None,
        }
    }
}

/// What a listing or `head` knows about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Its key.
    pub key: BlobKey,
    /// Size in bytes.
    pub size: u64,
    /// A strong validator, quoted as in HTTP (`"…"`), when the backend has one.
    pub etag: Option<String>,
    /// Last write, when the backend reports it (`veza check --repair` spares young orphans).
    pub modified: Option<std::time::SystemTime>,
}

/// The result of a completed put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Where the object is.
    pub key: BlobKey,
    /// Bytes written.
    pub size: u64,
    /// SHA-256 of the bytes, lower-case hex.
    pub sha256: String,
    /// An object was already at `key` (content-addressed: the upload was a duplicate and was
    /// dropped; plain `put`: it was replaced).
    pub existed: bool,
}

/// A (possibly ranged) read.
pub struct GetObject {
    /// Size of the whole object.
    pub size: u64,
    /// First byte served.
    pub start: u64,
    /// Last byte served, inclusive (0 for an empty object, whose body is empty).
    pub end: u64,
    /// Strong validator, quoted, when known.
    pub etag: Option<String>,
    /// The bytes `start..=end`.
    pub body: ByteStream,
}

impl std::fmt::Debug for GetObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetObject")
            .field("size", &self.size)
            .field("start", &self.start)
            .field("end", &self.end)
            .field("etag", &self.etag)
            .finish_non_exhaustive()
    }
}

/// Errors from the blob store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No object at that key.
    #[error("no object at {0}")]
    NotFound(String),
    /// The body passed the size limit; nothing was kept.
    #[error("object is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The range selects no byte of the object.
    #[error("range not satisfiable for an object of {size} bytes")]
    RangeNotSatisfiable {
        /// Size of the whole object.
        size: u64,
    },
    /// A key or prefix that [`BlobKey`] refuses.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// Where.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The S3 store answered with an error (or could not be reached: status 0).
    #[error("s3 {op}: {status} {code}: {message}")]
    S3 {
        /// What was attempted.
        op: &'static str,
        /// HTTP status, 0 when no response arrived.
        status: u16,
        /// The store's error code (`NoSuchBucket`, `AccessDenied`…), or a short tag of ours.
        code: String,
        /// The store's message.
        message: String,
    },
    /// The upload stream failed; nothing was kept.
    #[error("upload body: {0}")]
    Body(String),
    /// `[storage]` cannot be used as configured.
    #[error("{0}")]
    Config(String),
}

impl From<KeyError> for StoreError {
    fn from(e: KeyError) -> Self {
        StoreError::InvalidKey(e.to_string())
    }
}

/// What kind of trouble a failure is, for the callers that answer it (HTTP status, job retry).
/// Decided here only: [`StoreError::fault`] and [`io_fault`] (SQLite's `SQLITE_FULL`:
/// `db::is_full`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The store cannot be reached or answers 5xx: retry later, nothing is wrong with the request.
    Unavailable,
    /// No space left (ENOSPC, EDQUOT, or a store's "storage full"): retry once space is freed.
    Full,
    /// Anything else.
    Other,
}

/// Classifies a filesystem or socket error: full disk or quota, an unreachable peer, or other.
pub fn io_fault(e: &std::io::Error) -> Fault {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::StorageFull | K::QuotaExceeded | K::FileTooLarge => Fault::Full,
        K::ConnectionRefused
        | K::ConnectionReset
        | K::ConnectionAborted
        | K::NotConnected
        | K::BrokenPipe
        | K::TimedOut
        | K::HostUnreachable
        | K::NetworkUnreachable
        | K::NetworkDown => Fault::Unavailable,
        _ => Fault::Other,
    }
}

impl StoreError {
    /// How to answer this failure: [`Fault::Unavailable`] for an S3 store that did not answer
    /// (status 0) or answered 5xx, [`Fault::Full`] for a local disk or quota that is full (or
    /// an S3 store saying so), else [`Fault::Other`].
    pub fn fault(&self) -> Fault {
        match self {
            StoreError::Io { source, .. } => io_fault(source),
            StoreError::S3 { status: 507, .. } => Fault::Full,
            StoreError::S3 { code, .. } if code.contains("StorageFull") => Fault::Full,
            StoreError::S3 { status, code, .. }
                if *status == 0
                    || *status >= 500
                    || code == "SlowDown"
                    || code == "RequestTimeout" =>
            {
                Fault::Unavailable
            }
            _ => Fault::Other,
        }
    }

    /// True when the backend itself failed (I/O, S3), as opposed to a missing key, a refused
    /// range or a bad upload: only these count as `outcome="error"` in metrics.
    pub fn is_backend_failure(&self) -> bool {
        matches!(
            self,
            StoreError::Io { .. } | StoreError::S3 { .. } | StoreError::Config(_)
        )
    }
}

/// The blob store: one backend, chosen by `storage.backend`. Cheap to clone.
#[derive(Clone)]
pub enum BlobStore {
    /// A directory on this machine.
    Local(local::LocalStore),
    /// An S3-compatible bucket.
    S3(s3::S3Store),
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlobStore::Local(s) => f.debug_tuple("Local").field(&s.root()).finish(),
            BlobStore::S3(s) => f.debug_tuple("S3").field(&s.bucket()).finish(),
        }
    }
}

/// Operation names used as the `operation` metric label.
pub const OPERATIONS: [&str; 6] = ["put", "get", "head", "delete", "list", "copy"];

impl BlobStore {
    /// Opens the configured backend (creates the local root; builds the S3 client without
    /// touching the network).
    pub async fn open(cfg: &StorageConfig) -> Result<BlobStore, StoreError> {
        Ok(match cfg.backend {
            StorageBackend::Local => {
                BlobStore::Local(local::LocalStore::open(&cfg.local_root).await?)
            }
            StorageBackend::S3 => BlobStore::S3(s3::S3Store::open(&cfg.s3)?),
        })
    }

    /// Counts and times every operation in `veza_storage_operations_total` and
    /// `veza_storage_operation_duration_seconds` of `metrics` from now on.
    pub fn with_metrics(self, metrics: &Metrics) -> BlobStore {
        let m = StoreMetrics {
            ops: metrics.storage_operations.clone(),
            duration: metrics.storage_duration.clone(),
        };
        // Zero series up front, so alert rules see them before the first failure.
        for op in OPERATIONS {
            for outcome in ["ok", "error"] {
                m.ops.with_label_values(&[self.backend(), op, outcome]);
            }
        }
        match self {
            BlobStore::Local(s) => BlobStore::Local(s.with_metrics(m)),
            BlobStore::S3(s) => BlobStore::S3(s.with_metrics(m)),
        }
    }

    /// `"local"` or `"s3"`.
    pub fn backend(&self) -> &'static str {
        match self {
            BlobStore::Local(_) => "local",
            BlobStore::S3(_) => "s3",
        }
    }

    fn metrics(&self) -> Option<&StoreMetrics> {
        match self {
            BlobStore::Local(s) => s.metrics(),
            BlobStore::S3(s) => s.metrics(),
        }
    }

    fn count<T>(
        &self,
        op: &str,
        started: Instant,
        r: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        count(self.metrics(), self.backend(), op, started, &r);
        r
    }

    /// Streams `body` to `key` (replacing any object there), hashing it; fails with
    /// [`StoreError::TooLarge`] as soon as more than `max_bytes` arrive, keeping nothing.
    pub async fn put(
        &self,
        key: &BlobKey,
        body: ByteStream,
        max_bytes: u64,
    ) -> Result<Stored, StoreError> {
        let started = Instant::now();
        let r = match self {
            BlobStore::Local(s) => s.put(key, body, max_bytes).await,
            BlobStore::S3(s) => s.put(key, body, max_bytes).await,
        };
        self.count("put", started, r)
    }

    /// Streams `body` to a temp object while hashing it, then moves it to
    /// `BlobKey::content_addressed(prefix, sha256, ext)`. When that key exists already the temp
    /// object is dropped and `existed` is true.
    pub async fn put_content_addressed(
        &self,
        prefix: &str,
        ext: &str,
        body: ByteStream,
        max_bytes: u64,
    ) -> Result<Stored, StoreError> {
        let prefix = prefix.trim_end_matches('/');
        BlobKey::parse(prefix)?;
        let started = Instant::now();
        let r = match self {
            BlobStore::Local(s) => s.put_content_addressed(prefix, ext, body, max_bytes).await,
            BlobStore::S3(s) => s.put_content_addressed(prefix, ext, body, max_bytes).await,
        };
        self.count("put", started, r)
    }

    /// Reads an object, or the part `range` selects.
    pub async fn get(
        &self,
        key: &BlobKey,
        range: Option<ByteRange>,
    ) -> Result<GetObject, StoreError> {
        let started = Instant::now();
        let r = match self {
            BlobStore::Local(s) => s.get(key, range).await,
            BlobStore::S3(s) => s.get(key, range).await,
        };
        self.count("get", started, r)
    }

    /// Size and validator of an object, `None` when there is none.
    pub async fn head(&self, key: &BlobKey) -> Result<Option<ObjectMeta>, StoreError> {
        let started = Instant::now();
        let r = match self {
            BlobStore::Local(s) => s.head(key).await,
            BlobStore::S3(s) => s.head(key).await,
        };
        self.count("head", started, r)
    }

    /// Removes an object; a missing one is fine.
    pub async fn delete(&self, key: &BlobKey) -> Result<(), StoreError> {
        let started = Instant::now();
        let r = match self {
            BlobStore::Local(s) => s.delete(key).await,
            BlobStore::S3(s) => s.delete(key).await,
        };
        self.count("delete", started, r)
    }

    /// Every object whose key starts with `prefix` (a plain string prefix, as in S3; `""` for
    /// all), sorted by key. Temp objects are never listed.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        key::check_prefix(prefix)?;
        let started = Instant::now();
        let r = match self {
            BlobStore::Local(s) => s.list(prefix).await,
            BlobStore::S3(s) => s.list(prefix).await,
        };
        self.count("list", started, r)
    }

    /// Proves the store takes writes: writes, reads back and removes a small temp object.
    pub async fn probe_writable(&self) -> Result<(), StoreError> {
        match self {
            BlobStore::Local(s) => s.probe_writable().await,
            BlobStore::S3(s) => s.probe_writable().await,
        }
    }

    /// Removes temp objects older than [`STALE_TEMP_AGE`] (what a crash or kill -9 left);
    /// returns how many. Called at start.
    pub async fn sweep_temp(&self) -> Result<usize, StoreError> {
        self.sweep_temp_older_than(STALE_TEMP_AGE).await
    }

    /// Removes temp objects not modified for `age` (zero: all of them); returns how many.
    pub async fn sweep_temp_older_than(&self, age: Duration) -> Result<usize, StoreError> {
        match self {
            BlobStore::Local(s) => s.sweep_temp(age).await,
            BlobStore::S3(s) => s.sweep_temp(age).await,
        }
    }
}

/// The storage series of the app's registry, shared by every clone of a store.
#[derive(Clone)]
pub(crate) struct StoreMetrics {
    ops: IntCounterVec,
    duration: HistogramVec,
}

fn count<T>(
    m: Option<&StoreMetrics>,
    backend: &str,
    op: &str,
    started: Instant,
    r: &Result<T, StoreError>,
) {
    if let Some(m) = m {
        let outcome = match r {
            Err(e) if e.is_backend_failure() => "error",
            _ => "ok",
        };
        m.ops.with_label_values(&[backend, op, outcome]).inc();
        m.duration
            .with_label_values(&[backend, op])
            .observe(started.elapsed().as_secs_f64());
    }
}

/// Counts bytes against the limit and hashes them, chunk by chunk.
pub(crate) struct Meter {
    hasher: Sha256,
    size: u64,
    limit: u64,
}

impl Meter {
    pub(crate) fn new(limit: u64) -> Self {
        Meter {
            hasher: Sha256::new(),
            size: 0,
            limit,
        }
    }

    /// Accounts for a chunk; `TooLarge` the moment the total passes the limit.
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Result<(), StoreError> {
        let size = self.size + chunk.len() as u64;
        if size > self.limit {
            return Err(StoreError::TooLarge { limit: self.limit });
        }
        self.hasher.update(chunk);
        self.size = size;
        Ok(())
    }

    /// Size and lower-case hex SHA-256.
    pub(crate) fn finish(self) -> (u64, String) {
        (self.size, crate::encoding::hex(&self.hasher.finalize()))
    }
}

/// The next chunk of an upload body; a stream error becomes [`StoreError::Body`].
pub(crate) async fn next_chunk(body: &mut ByteStream) -> Result<Option<Bytes>, StoreError> {
    match body.next().await {
        Some(Ok(b)) => Ok(Some(b)),
        Some(Err(e)) => Err(StoreError::Body(e.to_string())),
        None => Ok(None),
    }
}

/// A fresh temp name: time-ordered, unique across processes.
pub(crate) fn temp_name() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_like_http() {
        use ByteRange::*;
        assert_eq!(From(0).resolve(10), Some((0, 9)));
        assert_eq!(From(9).resolve(10), Some((9, 9)));
        assert_eq!(From(10).resolve(10), None);
        assert_eq!(Inclusive(2, 4).resolve(10), Some((2, 4)));
        assert_eq!(Inclusive(2, 400).resolve(10), Some((2, 9)));
        assert_eq!(Inclusive(4, 2).resolve(10), None);
        assert_eq!(Inclusive(10, 12).resolve(10), None);
        assert_eq!(Suffix(3).resolve(10), Some((7, 9)));
        assert_eq!(Suffix(30).resolve(10), Some((0, 9)));
        assert_eq!(Suffix(0).resolve(10), None);
        for r in [From(0), Inclusive(0, 0), Suffix(1)] {
            assert_eq!(r.resolve(0), None, "{r:?} of an empty object");
        }
    }

    #[test]
    fn the_meter_stops_at_the_first_byte_over_the_limit() {
        let mut m = Meter::new(5);
        m.feed(b"abc").unwrap();
        m.feed(b"de").unwrap();
        assert!(matches!(
            m.feed(b"f"),
            Err(StoreError::TooLarge { limit: 5 })
        ));
        let (size, sha) = m.finish();
        assert_eq!(size, 5);
        assert_eq!(
            sha,
            "36bbe50ed96841d10443bcb670d6554f0a34b761be67ec9c4a8ad2c0c44ca42c"
        );
    }

    #[test]
    fn faults_are_classified_once() {
        let s3 = |status: u16, code: &str| StoreError::S3 {
            op: "put",
            status,
            code: code.into(),
            message: String::new(),
        };
        let io = |kind: std::io::ErrorKind| StoreError::Io {
            op: "write",
            path: "/x".into(),
            source: kind.into(),
        };
        use std::io::ErrorKind as K;
        assert_eq!(s3(0, "Unreachable").fault(), Fault::Unavailable);
        assert_eq!(s3(503, "ServiceUnavailable").fault(), Fault::Unavailable);
        assert_eq!(s3(500, "InternalError").fault(), Fault::Unavailable);
        assert_eq!(s3(403, "AccessDenied").fault(), Fault::Other);
        assert_eq!(s3(404, "NoSuchBucket").fault(), Fault::Other);
        assert_eq!(s3(507, "XMinioStorageFull").fault(), Fault::Full);
        assert_eq!(io(K::StorageFull).fault(), Fault::Full);
        assert_eq!(io(K::QuotaExceeded).fault(), Fault::Full);
        assert_eq!(io(K::PermissionDenied).fault(), Fault::Other);
        let enospc = StoreError::Io {
            op: "write",
            path: "/x".into(),
            source: std::io::Error::from_raw_os_error(28),
        };
        assert_eq!(enospc.fault(), Fault::Full);
        assert_eq!(StoreError::TooLarge { limit: 1 }.fault(), Fault::Other);
    }

    #[test]
    fn only_backend_failures_count_as_errors() {
        assert!(!StoreError::NotFound("a".into()).is_backend_failure());
        assert!(!StoreError::TooLarge { limit: 1 }.is_backend_failure());
        assert!(!StoreError::Body("x".into()).is_backend_failure());
        assert!(
            StoreError::S3 {
                op: "put",
                status: 500,
                code: "InternalError".into(),
                message: "m".into()
            }
            .is_backend_failure()
        );
    }
}
