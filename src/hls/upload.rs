//! Uploading a packaged tree. Order is what keeps players safe: segments first, then media
//! playlists, then the master LAST, so an edge that fetches a playlist at any moment never
//! finds it naming a missing object (spec §6). Objects of an older tree that the new one does
//! not name are removed only after the new master is in place.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};

use super::{FileKind, HlsError, OutFile, Packaged, io_err};
use crate::storage::{BlobKey, BlobStore, ByteStream, StoreError};

/// Segment puts in flight at once: hides S3 round trips; a local put is an fsync each.
const PARALLEL_PUTS: usize = 8;
/// Read size when streaming a segment to the store.
const READ_CHUNK: usize = 256 * 1024;

/// What an [`upload`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadReport {
    /// Objects written.
    pub uploaded: usize,
    /// Objects already stored as they are (same size for content-addressed segments, same
    /// bytes for playlists).
    pub skipped: usize,
    /// Objects under the prefix the new tree does not name, deleted.
    pub removed: usize,
    /// Bytes written.
    pub bytes: u64,
}

enum Put {
    Uploaded(u64),
    Skipped,
}

/// Uploads `p` under `prefix` (e.g. `tracks/{id}/hls`): init and media segments first (those
/// already stored with the same size are skipped: their names are their hashes, so a re-run
/// uploads none), then media playlists, then the master (each skipped when the stored bytes
/// are identical); then deletes objects under the prefix the new tree does not name.
pub async fn upload(
    store: &BlobStore,
    prefix: &str,
    p: &Packaged,
) -> Result<UploadReport, HlsError> {
    let prefix = prefix.trim_end_matches('/');
    BlobKey::parse(prefix).map_err(StoreError::from)?;
    let dir = format!("{prefix}/");
    // One listing instead of a HEAD per segment: on S3 that is one request, not hundreds.
    let stored: BTreeMap<String, u64> = store
        .list(&dir)
        .await?
        .into_iter()
        .map(|m| (m.key.as_str().to_owned(), m.size))
        .collect();
    let key_of = |f: &OutFile| {
        BlobKey::parse(&format!("{dir}{}", f.name)).map_err(|e| HlsError::from(StoreError::from(e)))
    };

    let mut report = UploadReport::default();
    let mut tally = |put: Put| match put {
        Put::Uploaded(n) => {
            report.uploaded += 1;
            report.bytes += n;
        }
        Put::Skipped => report.skipped += 1,
    };

    // Keys and owned file handles are resolved first: the futures below must not borrow
    // through closures, or the whole upload stops being `Send` for a spawned job worker.
    let mut blobs: Vec<(BlobKey, OutFile, Option<u64>)> = Vec::new();
    for f in &p.files {
        if matches!(
            f.kind,
            FileKind::Init | FileKind::Segment | FileKind::Progressive | FileKind::Peaks
        ) {
            let key = key_of(f)?;
            let known = stored.get(key.as_str()).copied();
            blobs.push((key, f.clone(), known));
        }
    }
    let puts: Vec<Put> = stream::iter(blobs.into_iter().map(|(key, f, known)| {
        let store = store.clone();
        async move { put_blob(&store, &key, &f, known).await }
    }))
    .buffer_unordered(PARALLEL_PUTS)
    .try_collect()
    .await?;
    puts.into_iter().for_each(&mut tally);

    for kind in [FileKind::MediaPlaylist, FileKind::Master] {
        for f in p.files.iter().filter(|f| f.kind == kind) {
            let key = key_of(f)?;
            tally(put_playlist(store, &key, &f.path, stored.get(key.as_str()).copied()).await?);
        }
    }

    let wanted: HashSet<String> = p.files.iter().map(|f| format!("{dir}{}", f.name)).collect();
    for key in stored.keys().filter(|k| !wanted.contains(*k)) {
        store
            .delete(&BlobKey::parse(key).map_err(StoreError::from)?)
            .await?;
        report.removed += 1;
    }
    Ok(report)
}

/// Puts one content-addressed segment unless an object of its size is there already.
async fn put_blob(
    store: &BlobStore,
    key: &BlobKey,
    f: &OutFile,
    stored_size: Option<u64>,
) -> Result<Put, HlsError> {
    let file = tokio::fs::File::open(&f.path)
        .await
        .map_err(io_err("open", &f.path))?;
    let size = file
        .metadata()
        .await
        .map_err(io_err("stat", &f.path))?
        .len();
    if stored_size == Some(size) {
        return Ok(Put::Skipped);
    }
    let body: ByteStream = Box::pin(tokio_util::io::ReaderStream::with_capacity(
        file, READ_CHUNK,
    ));
    let put = store.put(key, body, size).await?;
    // The name promises these bytes: a file changed since packaging must not go out under it.
    let named = f.name.rsplit('/').next().and_then(|n| n.split('.').next());
    if named != Some(put.sha256.as_str()) {
        let _ = store.delete(key).await;
        return Err(io_err("upload", &f.path)(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("content changed since packaging (SHA-256 {})", put.sha256),
        )));
    }
    Ok(Put::Uploaded(size))
}

/// Puts a playlist unless the stored one has the same bytes.
async fn put_playlist(
    store: &BlobStore,
    key: &BlobKey,
    path: &Path,
    stored_size: Option<u64>,
) -> Result<Put, HlsError> {
    let bytes = Bytes::from(tokio::fs::read(path).await.map_err(io_err("read", path))?);
    let size = bytes.len() as u64;
    if stored_size == Some(size) && read_all(store, key).await?.as_deref() == Some(&bytes[..]) {
        return Ok(Put::Skipped);
    }
    let body: ByteStream = Box::pin(stream::once(async move { Ok(bytes) }));
    store.put(key, body, size).await?;
    Ok(Put::Uploaded(size))
}

/// A small object's bytes, `None` when it is gone.
async fn read_all(store: &BlobStore, key: &BlobKey) -> Result<Option<Vec<u8>>, HlsError> {
    let mut got = match store.get(key, None).await {
        Ok(g) => g,
        Err(StoreError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::with_capacity(got.size as usize);
    while let Some(chunk) = got.body.next().await {
        let chunk = chunk.map_err(|e| StoreError::Body(e.to_string()))?;
        out.extend_from_slice(&chunk);
    }
    Ok(Some(out))
}
