//! Backup, restore and consistency checks of an install: `veza backup`, `veza restore`,
//! `veza check`. The database snapshot is SQLite's own (`VACUUM INTO`, consistent while
//! `serve` writes); the blob inventory comes from that snapshot, so an archive never names a
//! blob its database does not reference, nor misses one it does.

pub mod archive;
pub mod check;
pub mod command;
pub mod inventory;

use std::path::PathBuf;

use crate::storage::StoreError;

pub use archive::{BackupOptions, BackupSummary, RestoreSummary, backup, restore};
pub use check::{CheckReport, check};

/// Why a backup, restore or check failed. Exit codes follow sysexits.h.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The data dir has no database (66, EX_NOINPUT).
    #[error("no Veza database at {0}: point --config or VEZA_DATA_DIR at the install")]
    NoDatabase(PathBuf),
    /// The archive to restore does not exist or cannot be opened (66, EX_NOINPUT).
    #[error("cannot read {path}: {source}")]
    NoInput {
        /// The archive.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The restore target holds files and `--force` was not given (73, EX_CANTCREAT).
    #[error(
        "{0} is not empty; restore into an empty folder, or pass --force to replace its database and blobs"
    )]
    TargetNotEmpty(PathBuf),
    /// The archive is not a Veza backup, is truncated, or its contents do not match their
    /// recorded hashes (65, EX_DATAERR). Nothing was restored.
    #[error("archive: {0}")]
    BadArchive(String),
    /// The install has damage the command found (65, EX_DATAERR).
    #[error("{0}")]
    Damaged(String),
    /// A file operation failed (74, EX_IOERR).
    #[error("{op} {path}: {source}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// SQLite failed (74, EX_IOERR: the snapshot or the database file).
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Opening or reaching the live database failed (74).
    #[error("{0}")]
    Db(#[from] crate::db::DbError),
    /// Reading the tracks' blob columns failed (74).
    #[error("{0}")]
    Library(#[from] crate::library::LibraryError),
    /// The blob store failed (69, EX_UNAVAILABLE: an S3 store that does not answer).
    #[error("blob store: {0}")]
    Store(#[from] StoreError),
}

impl BackupError {
    /// The sysexits code for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            BackupError::NoDatabase(_) | BackupError::NoInput { .. } => 66,
            BackupError::TargetNotEmpty(_) => 73,
            BackupError::BadArchive(_) | BackupError::Damaged(_) => 65,
            BackupError::Io { .. }
            | BackupError::Sqlite(_)
            | BackupError::Db(_)
            | BackupError::Library(_) => 74,
            BackupError::Store(_) => 69,
        }
    }
}

/// `Io` with its operation and path.
pub(crate) fn io(
    op: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(std::io::Error) -> BackupError {
    let path = path.to_owned();
    move |source| BackupError::Io { op, path, source }
}
