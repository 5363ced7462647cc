//! The data dir on disk and its file modes: the folder 0750, the database and its WAL/SHM
//! 0600 (they hold password hashes and session ids), the upload spool and the packaging work
//! dir 0700. New installs are created so; existing ones are tightened, never loosened.

use std::io;
use std::path::{Path, PathBuf};

/// The SQLite database file inside the data dir.
pub const DB_FILE: &str = "veza.db";
/// Uploads spool here before they are probed.
pub const SPOOL_DIR: &str = "tmp";
/// HLS packaging writes here.
pub const WORK_DIR: &str = "work";

/// The upload spool of a data dir.
pub fn spool_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(SPOOL_DIR)
}

/// The packaging work root of a data dir.
pub fn work_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(WORK_DIR)
}

const DIR_MODE: u32 = 0o750;
const PRIVATE_DIR_MODE: u32 = 0o700;
const DB_MODE: u32 = 0o600;

/// Creates the data dir and its private parts (or tightens them) and creates an empty
/// database file 0600 when there is none, so SQLite's WAL and SHM inherit that mode.
/// Returns what had looser modes and was tightened.
pub fn prepare(data_dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut tightened = Vec::new();
    ensure_dir(data_dir, DIR_MODE, &mut tightened)?;
    for d in [spool_dir(data_dir), work_dir(data_dir)] {
        ensure_dir(&d, PRIVATE_DIR_MODE, &mut tightened)?;
    }
    let db = data_dir.join(DB_FILE);
    if !db.exists() {
        create_file(&db, DB_MODE)?;
    }
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", db.display()));
        if p.exists() && tighten(&p, DB_MODE)? {
            tightened.push(p);
        }
    }
    Ok(tightened)
}

/// Empties the packaging work root (what a crash left there; only this process writes it) and
/// recreates it 0700.
pub fn sweep_work(data_dir: &Path) -> io::Result<()> {
    let root = work_dir(data_dir);
    match std::fs::remove_dir_all(&root) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    private_dir(&root)
}

/// Creates a private (0700) folder, or tightens an existing one.
pub fn private_dir(path: &Path) -> io::Result<()> {
    ensure_dir(path, PRIVATE_DIR_MODE, &mut Vec::new())
}

fn ensure_dir(path: &Path, mode: u32, tightened: &mut Vec<PathBuf>) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, mode);
    b.create(path)?;
    if tighten(path, mode)? {
        tightened.push(path.to_owned());
    }
    Ok(())
}

fn create_file(path: &Path, mode: u32) -> io::Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, mode);
    #[cfg(not(unix))]
    let _ = mode;
    match o.open(path) {
        Ok(_) => Ok(()),
        // Another process (serve beside a CLI command) created it first.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes permission bits beyond `mode`; true when something changed.
#[cfg(unix)]
fn tighten(path: &Path, mode: u32) -> io::Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)?;
    let current = meta.permissions().mode() & 0o7777;
    let wanted = current & mode;
    if wanted == current {
        return Ok(false);
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(wanted))?;
    Ok(true)
}

#[cfg(not(unix))]
fn tighten(_: &Path, _: u32) -> io::Result<bool> {
    Ok(false)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_data_dir_is_private() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("data");
        assert!(prepare(&d).unwrap().is_empty());
        assert_eq!(mode(&d), 0o750);
        assert_eq!(mode(&d.join(SPOOL_DIR)), 0o700);
        assert_eq!(mode(&d.join(WORK_DIR)), 0o700);
        assert_eq!(mode(&d.join(DB_FILE)), 0o600);
    }

    #[test]
    fn an_existing_install_is_tightened_never_loosened() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("data");
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(d.join(DB_FILE), b"").unwrap();
        std::fs::set_permissions(d.join(DB_FILE), std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(d.join("veza.db-wal"), b"").unwrap();
        std::fs::set_permissions(
            d.join("veza.db-wal"),
            std::fs::Permissions::from_mode(0o400),
        )
        .unwrap();
        let changed = prepare(&d).unwrap();
        assert_eq!(changed.len(), 2, "{changed:?}");
        assert_eq!(mode(&d), 0o750);
        assert_eq!(mode(&d.join(DB_FILE)), 0o600);
        assert_eq!(mode(&d.join("veza.db-wal")), 0o400);
        assert!(prepare(&d).unwrap().is_empty());
    }
}

/// Reads a key file holding 32 random bytes as hex, or creates it (mode 0600) when missing.
/// Safe against a concurrent first start: the file is created exclusively and the loser reads
/// the winner's key. A file holding fewer than 32 characters is an error, never replaced.
pub fn load_or_create_key(path: &Path) -> io::Result<String> {
    match read_key(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        other => return other,
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| io::Error::other(format!("no OS randomness: {e}")))?;
    let text = crate::encoding::hex(&raw);
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(DB_MODE);
    }
    match o.open(path) {
        Ok(mut f) => {
            use std::io::Write as _;
            f.write_all(format!("{text}\n").as_bytes())?;
            f.sync_all()?;
            Ok(text)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read_key(path),
        Err(e) => Err(e),
    }
}

fn read_key(path: &Path) -> io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    let key = text.trim();
    if key.len() < 32 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "holds fewer than 32 characters; delete it to generate a new key",
        ));
    }
    Ok(key.to_owned())
}
