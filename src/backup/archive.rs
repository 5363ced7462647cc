//! `veza backup` and `veza restore`: one tar, `veza-backup/` at its root holding `veza.db`
//! (the snapshot), `veza.toml` (the effective config), `blobs/<key>` (local store only) and
//! `manifest.json` last, so a truncated archive is refused rather than half restored.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::inventory::{self, Expected};
use super::{BackupError, io};
use crate::config::{Config, StorageBackend};
use crate::storage::{BlobKey, BlobStore, ByteStream, StoreError};

const ROOT: &str = "veza-backup";
const FORMAT: &str = "veza-backup/1";
const MANIFEST: &str = "manifest.json";
const CONFIG: &str = "veza.toml";
/// Where `restore` puts the archived config: beside the data, never over /etc.
pub const RESTORED_CONFIG: &str = "veza.toml.from-backup";

/// What `veza backup` was asked for.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// The archive to write (replaced atomically when it exists).
    pub out: PathBuf,
    /// Leave the blobs out; list their keys, sizes and hashes instead.
    pub db_only: bool,
    /// The effective config as TOML (secrets masked unless the caller chose otherwise).
    pub config_toml: String,
}

/// What a backup holds.
#[derive(Debug, Clone, Serialize)]
pub struct BackupSummary {
    /// Tracks in the snapshot.
    pub tracks: u64,
    /// Objects the snapshot references.
    pub blobs: u64,
    /// Of those, copied into the archive.
    pub blobs_included: u64,
    /// Bytes of blobs copied.
    pub blob_bytes: u64,
    /// Size of the database snapshot.
    pub database_bytes: u64,
    /// Referenced objects missing from the store or not matching their hash (key, problem).
    pub damaged: Vec<(String, String)>,
}

/// What a restore wrote.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreSummary {
    /// Tracks in the restored database.
    pub tracks: u64,
    /// Blobs restored into `{data_dir}/blobs`.
    pub blobs: u64,
    /// True when the archive held only a manifest of the blobs (they stay in their store).
    pub db_only: bool,
    /// The archived config, written beside the data.
    pub config: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: String,
    veza_version: String,
    created_at: i64,
    storage_backend: String,
    blobs_included: bool,
    database: Entry,
    blobs: Vec<BlobEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    size: u64,
    sha256: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct BlobEntry {
    key: String,
    size: Option<u64>,
    sha256: Option<String>,
    /// In the archive (false: db-only, or damaged in the store at backup time).
    included: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
}

/// Writes the archive. Damaged referenced objects are listed in the summary (the archive is
/// still written: a backup of a damaged install beats none); the caller decides the exit.
pub fn backup(
    cfg: &Config,
    opts: &BackupOptions,
    rt: &tokio::runtime::Runtime,
) -> Result<BackupSummary, BackupError> {
    let db_path = cfg.data_dir.join(crate::datadir::DB_FILE);
    if !db_path.is_file() {
        return Err(BackupError::NoDatabase(db_path));
    }
    let partial = sibling(&opts.out, "partial");
    let snapshot = sibling(&opts.out, "db");
    let _cleanup = Cleanup(vec![partial.clone(), snapshot.clone()]);
    let _ = std::fs::remove_file(&snapshot);
    snapshot_db(&db_path, &snapshot)?;
    let snap = Connection::open(&snapshot)?;
    let rows = inventory::load(&snap)?;
    drop(snap);

    let store = rt.block_on(BlobStore::open(&cfg.storage))?;
    let inv = rt.block_on(inventory::build(&rows, &store))?;
    let include = cfg.storage.backend == StorageBackend::Local && !opts.db_only;
    let sizes: BTreeMap<String, u64> = if include {
        BTreeMap::new()
    } else {
        rt.block_on(listed_sizes(&store))?
    };

    let file = File::create(&partial).map_err(io("create", &partial))?;
    let mut tar = tar::Builder::new(BufWriter::new(file));
    let (db_size, db_sha) = append_file(&mut tar, &snapshot, "veza.db")?;
    append_bytes(&mut tar, CONFIG, opts.config_toml.as_bytes()).map_err(io("write", &partial))?;

    let mut summary = BackupSummary {
        tracks: rows.tracks.len() as u64,
        blobs: inv.expected.len() as u64,
        blobs_included: 0,
        blob_bytes: 0,
        database_bytes: db_size,
        damaged: inv.unreadable.clone(),
    };
    let mut entries = Vec::with_capacity(inv.expected.len());
    for (key, want) in &inv.expected {
        let mut e = BlobEntry {
            key: key.clone(),
            size: want.size.or_else(|| sizes.get(key).copied()),
            sha256: want.sha256.clone(),
            included: false,
            problem: None,
        };
        if include {
            match append_blob(&mut tar, rt, &store, key, want) {
                Ok(size) => {
                    e.included = true;
                    e.size = Some(size);
                    summary.blobs_included += 1;
                    summary.blob_bytes += size;
                }
                Err(Skip::Damaged(why)) => e.problem = Some(why),
                Err(Skip::Fatal(err)) => return Err(err),
            }
        } else if !sizes.contains_key(key) {
            e.problem = Some("missing".into());
        }
        if let Some(p) = &e.problem {
            summary.damaged.push((key.clone(), p.clone()));
        }
        entries.push(e);
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        veza_version: crate::version::VERSION.into(),
        created_at: crate::clock::now(),
        storage_backend: store.backend().into(),
        blobs_included: include,
        database: Entry {
            size: db_size,
            sha256: db_sha,
        },
        blobs: entries,
    };
    let json = serde_json::to_vec_pretty(&manifest).expect("a manifest serialises");
    append_bytes(&mut tar, MANIFEST, &json).map_err(io("write", &partial))?;
    let file = tar
        .into_inner()
        .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
        .map_err(io("write", &partial))?;
    file.sync_all().map_err(io("sync", &partial))?;
    drop(file);
    std::fs::rename(&partial, &opts.out).map_err(io("rename", &opts.out))?;
    Ok(summary)
}

/// `VACUUM INTO`: a consistent copy while another process writes (it reads inside one
/// transaction; WAL readers never block the writer).
fn snapshot_db(db: &Path, out: &Path) -> Result<(), BackupError> {
    let c = Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    c.busy_timeout(std::time::Duration::from_secs(30))?;
    c.execute("VACUUM INTO ?1", [out.to_string_lossy()])?;
    Ok(())
}

async fn listed_sizes(store: &BlobStore) -> Result<BTreeMap<String, u64>, StoreError> {
    let mut out = BTreeMap::new();
    for p in inventory::OWN_PREFIXES {
        for m in store.list(p).await? {
            out.insert(m.key.to_string(), m.size);
        }
    }
    Ok(out)
}

enum Skip {
    Damaged(String),
    Fatal(BackupError),
}

fn append_blob(
    tar: &mut tar::Builder<BufWriter<File>>,
    rt: &tokio::runtime::Runtime,
    store: &BlobStore,
    key: &str,
    want: &Expected,
) -> Result<u64, Skip> {
    let parsed = BlobKey::parse(key).map_err(|e| Skip::Damaged(e.to_string()))?;
    let obj = match rt.block_on(store.get(&parsed, None)) {
        Ok(o) => o,
        Err(StoreError::NotFound(_)) => return Err(Skip::Damaged("missing".into())),
        Err(e) => return Err(Skip::Fatal(e.into())),
    };
    if want.size.is_some_and(|s| s != obj.size) {
        return Err(Skip::Damaged(format!(
            "size {} where {} is recorded",
            obj.size,
            want.size.unwrap_or(0)
        )));
    }
    let mut reader = StreamReader {
        rt,
        body: obj.body,
        buf: bytes::Bytes::new(),
        hash: Sha256::new(),
    };
    let mut header = tar::Header::new_gnu();
    header.set_size(obj.size);
    header.set_mode(0o600);
    header.set_mtime(0);
    tar.append_data(&mut header, format!("{ROOT}/blobs/{key}"), &mut reader)
        .map_err(|e| Skip::Fatal(io("write", Path::new(key))(e)))?;
    let sha = crate::encoding::hex(&reader.hash.finalize());
    // The bytes are in the archive already; a mismatch is reported, and restore skips it.
    if want.sha256.as_ref().is_some_and(|w| *w != sha) {
        return Err(Skip::Damaged("content does not match its SHA-256".into()));
    }
    Ok(obj.size)
}

/// Blocks on the store's stream from this (non-runtime) thread, hashing what passes.
struct StreamReader<'a> {
    rt: &'a tokio::runtime::Runtime,
    body: ByteStream,
    buf: bytes::Bytes,
    hash: Sha256,
}

impl Read for StreamReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.buf.is_empty() {
            match self.rt.block_on(self.body.next()) {
                Some(chunk) => self.buf = chunk?,
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len());
        let part = self.buf.split_to(n);
        self.hash.update(&part);
        out[..n].copy_from_slice(&part);
        Ok(n)
    }
}

/// Copies a file into the archive under `name`; (size, sha256).
fn append_file(
    tar: &mut tar::Builder<BufWriter<File>>,
    path: &Path,
    name: &str,
) -> Result<(u64, String), BackupError> {
    let bytes = std::fs::read(path).map_err(io("read", path))?;
    append_bytes(tar, name, &bytes).map_err(io("write", path))?;
    Ok((
        bytes.len() as u64,
        crate::encoding::hex(&Sha256::digest(&bytes)),
    ))
}

fn append_bytes(
    tar: &mut tar::Builder<BufWriter<File>>,
    name: &str,
    bytes: &[u8],
) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o600);
    header.set_mtime(crate::clock::now().max(0) as u64);
    tar.append_data(&mut header, format!("{ROOT}/{name}"), bytes)
}

/// `OUT.<what>`: scratch files beside the archive, on the same filesystem for the rename.
fn sibling(out: &Path, what: &str) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(format!(".{what}"));
    PathBuf::from(s)
}

/// Removes scratch files and folders however the command ends.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            if p.is_dir() {
                let _ = std::fs::remove_dir_all(p);
            } else {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// Restores an archive into `data_dir`: everything is unpacked into a staging folder and
/// checked against the manifest (hashes, sizes, SQLite integrity) before anything in
/// `data_dir` is touched.
pub fn restore(input: &Path, data_dir: &Path, force: bool) -> Result<RestoreSummary, BackupError> {
    let file = File::open(input).map_err(|source| BackupError::NoInput {
        path: input.to_owned(),
        source,
    })?;
    let occupied = std::fs::read_dir(data_dir).is_ok_and(|mut d| d.next().is_some());
    if occupied && !force {
        return Err(BackupError::TargetNotEmpty(data_dir.to_owned()));
    }
    crate::datadir::private_dir(data_dir).map_err(io("create", data_dir))?;
    let staging = data_dir.join(format!(".restore-{}", uuid::Uuid::now_v7().simple()));
    let _cleanup = Cleanup(vec![staging.clone()]);
    crate::datadir::private_dir(&staging).map_err(io("create", &staging))?;

    let (manifest, got) = unpack(file, &staging)?;
    let manifest = manifest.ok_or_else(|| {
        BackupError::BadArchive("no manifest.json: not a Veza backup, or truncated".into())
    })?;
    if manifest.format != FORMAT {
        return Err(BackupError::BadArchive(format!(
            "format {:?}; this veza reads {FORMAT:?}",
            manifest.format
        )));
    }
    let db = got
        .get("veza.db")
        .ok_or_else(|| BackupError::BadArchive("no veza.db".into()))?;
    if (db.0, db.1.as_str()) != (manifest.database.size, manifest.database.sha256.as_str()) {
        return Err(BackupError::BadArchive(
            "veza.db does not match its recorded size and SHA-256".into(),
        ));
    }
    let mut blobs = 0u64;
    for b in &manifest.blobs {
        let name = format!("blobs/{}", b.key);
        match (b.included, got.get(&name)) {
            (false, None) => {}
            (true, Some((size, sha))) => {
                if b.size.is_some_and(|s| s != *size) || b.sha256.as_ref().is_some_and(|s| s != sha)
                {
                    return Err(BackupError::BadArchive(format!(
                        "{} does not match its recorded size and SHA-256",
                        b.key
                    )));
                }
                blobs += 1;
            }
            (true, None) => {
                return Err(BackupError::BadArchive(format!("{} is missing", b.key)));
            }
            (false, Some(_)) => {
                return Err(BackupError::BadArchive(format!(
                    "{} is not in the manifest",
                    b.key
                )));
            }
        }
    }
    let listed = manifest.blobs.iter().filter(|b| b.included).count();
    let unpacked = got.keys().filter(|k| k.starts_with("blobs/")).count();
    if unpacked != listed {
        return Err(BackupError::BadArchive(format!(
            "{unpacked} blobs in the archive, {listed} in its manifest"
        )));
    }
    let staged_db = staging.join("veza.db");
    let tracks = {
        let c = Connection::open(&staged_db)?;
        let ok: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if ok != "ok" {
            return Err(BackupError::BadArchive(format!("veza.db integrity: {ok}")));
        }
        c.query_row("SELECT COUNT(*) FROM tracks", [], |r| r.get::<_, i64>(0))? as u64
    };

    // Verified: now replace.
    let db_path = data_dir.join(crate::datadir::DB_FILE);
    for suffix in ["-wal", "-shm", ""] {
        let p = PathBuf::from(format!("{}{suffix}", db_path.display()));
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("remove", &p)(e)),
        }
    }
    let blob_dir = data_dir.join("blobs");
    if manifest.blobs_included {
        if blob_dir.exists() {
            std::fs::remove_dir_all(&blob_dir).map_err(io("remove", &blob_dir))?;
        }
        let staged = staging.join("blobs");
        if staged.exists() {
            std::fs::rename(&staged, &blob_dir).map_err(io("rename", &blob_dir))?;
        }
    }
    std::fs::rename(&staged_db, &db_path).map_err(io("rename", &db_path))?;
    let config = data_dir.join(RESTORED_CONFIG);
    std::fs::rename(staging.join(CONFIG), &config).map_err(io("rename", &config))?;
    crate::datadir::prepare(data_dir).map_err(io("prepare", data_dir))?;
    sync_dir(data_dir)?;
    Ok(RestoreSummary {
        tracks,
        blobs,
        db_only: !manifest.blobs_included,
        config,
    })
}

/// Member name (below `veza-backup/`) → (size, SHA-256) of what was unpacked.
type Unpacked = BTreeMap<String, (u64, String)>;

/// Unpacks the archive's known members into `staging`, hashing each; the manifest parsed.
fn unpack(file: File, staging: &Path) -> Result<(Option<Manifest>, Unpacked), BackupError> {
    let bad = |e: io::Error| BackupError::BadArchive(e.to_string());
    let mut archive = tar::Archive::new(io::BufReader::new(file));
    let mut got = BTreeMap::new();
    let mut manifest = None;
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        let name = path
            .strip_prefix(&format!("{ROOT}/"))
            .ok_or_else(|| BackupError::BadArchive(format!("unexpected member {path:?}")))?
            .to_owned();
        if name == MANIFEST {
            let mut text = Vec::new();
            entry.read_to_end(&mut text).map_err(bad)?;
            manifest = Some(
                serde_json::from_slice(&text)
                    .map_err(|e| BackupError::BadArchive(format!("manifest.json: {e}")))?,
            );
            continue;
        }
        let dest = match name.as_str() {
            "veza.db" | CONFIG => staging.join(&name),
            n => match n.strip_prefix("blobs/") {
                // BlobKey refuses `..`, absolute and reserved names: the join stays inside.
                Some(key) if BlobKey::parse(key).is_ok() => staging.join("blobs").join(key),
                _ => {
                    return Err(BackupError::BadArchive(format!(
                        "unexpected member {path:?}"
                    )));
                }
            },
        };
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io("create", parent))?;
        }
        let out = File::create(&dest).map_err(io("create", &dest))?;
        let mut w = HashingWriter {
            inner: BufWriter::new(out),
            hash: Sha256::new(),
            size: 0,
        };
        io::copy(&mut entry, &mut w).map_err(bad)?;
        let out = w
            .inner
            .into_inner()
            .map_err(|e| io("write", &dest)(e.into_error()))?;
        out.sync_all().map_err(io("sync", &dest))?;
        got.insert(name, (w.size, crate::encoding::hex(&w.hash.finalize())));
    }
    Ok((manifest, got))
}

struct HashingWriter<W> {
    inner: W,
    hash: Sha256,
    size: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync", dir))
}
