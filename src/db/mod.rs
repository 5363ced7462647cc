//! The SQLite handle: pragmas, embedded refinery migrations, and the one door (`Db::call`)
//! through which blocking SQLite work leaves the async executor.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// File name of the database inside the data dir.
pub const DB_FILE: &str = crate::datadir::DB_FILE;

/// Errors from opening, migrating or querying the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite itself failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The journal mode could not be switched to WAL (e.g. a network filesystem).
    #[error("database refused WAL journal mode (got {0:?}); put the data dir on a local disk")]
    NoWal(String),
    /// The database was migrated by a newer Veza.
    #[error(
        "database {path} has schema version {db} but this veza knows up to {binary}; \
         run the newer veza or restore a backup taken before the upgrade"
    )]
    SchemaNewer {
        /// Database file.
        path: PathBuf,
        /// Highest version applied in the file.
        db: i64,
        /// Highest version embedded in this binary.
        binary: i64,
    },
    /// After migrating, a row refers to one that does not exist.
    #[error("after migrating, table {0} has rows whose foreign keys point at nothing")]
    ForeignKeys(String),
    /// refinery refused: a divergent (edited) or missing migration, or SQL that failed.
    #[error("migration: {0}")]
    Migration(#[from] refinery::Error),
    /// The blocking task panicked or was cancelled.
    #[error("database task failed: {0}")]
    Join(String),
}

impl DbError {
    /// True when SQLite refused a write because the disk (or quota) is full.
    pub fn is_full(&self) -> bool {
        matches!(self, DbError::Sqlite(e) if is_full(e))
    }
}

/// True for `SQLITE_FULL`: the write was refused whole (the transaction rolled back, the file
/// is intact) because the disk or quota is full.
pub fn is_full(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
}

/// One applied migration, for `veza migrate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    /// Version number (`V{n}__`).
    pub version: i64,
    /// Name after the `__`.
    pub name: String,
    /// True when applied by this run.
    pub now: bool,
}

/// Shared handle to the database.
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("path", &self.path).finish()
    }
}

/// Highest migration version embedded in this binary.
pub fn binary_schema_version() -> i64 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .max()
        .unwrap_or(0)
}

impl Db {
    /// Opens `{data_dir}/veza.db` (created if missing) and applies pending migrations.
    pub fn open_and_migrate(data_dir: &Path) -> Result<(Db, Vec<AppliedMigration>), DbError> {
        let path = data_dir.join(DB_FILE);
        let mut conn = open_connection(&path)?;
        let applied = migrate(&mut conn, &path)?;
        Ok((
            Db {
                conn: Arc::new(Mutex::new(conn)),
                path,
            },
            applied,
        ))
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the connection in this thread: for CLI commands, never on the executor.
    pub fn with<T>(&self, f: impl FnOnce(&mut Connection) -> T) -> T {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut c)
    }

    /// Runs `f` with the connection on the blocking pool, in the caller's tracing span.
    /// `f` returns its own module's error type; a failed task becomes `DbError::Join`.
    pub async fn call<T, E, F>(&self, f: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, E> + Send + 'static,
    {
        let conn = self.conn.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _g = span.enter();
            // A panic in an earlier call poisons the mutex; the connection itself is fine.
            let mut c = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut c)
        })
        .await
        .map_err(|e| E::from(DbError::Join(e.to_string())))?
    }
}

/// SQLite's page cache per connection, in KiB (at most; it fills only as pages are read).
const PAGE_CACHE_KIB: i64 = 32 * 1024;

fn open_connection(path: &Path) -> Result<Connection, DbError> {
    let c = Connection::open(path)?;
    // journal_mode answers with the mode it got; refuse to run without WAL.
    let mode: String = c.pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(DbError::NoWal(mode));
    }
    c.pragma_update(None, "foreign_keys", true)?;
    c.pragma_update(None, "synchronous", "NORMAL")?;
    // A bigger page cache than SQLite's 2 MiB default keeps a large library's FTS index and
    // track rows in memory: without it every search re-read them through pread().
    c.pragma_update(None, "cache_size", -PAGE_CACHE_KIB)?;
    c.busy_timeout(Duration::from_secs(5))?;
    Ok(c)
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<Vec<AppliedMigration>, DbError> {
    let binary = binary_schema_version();
    let db = max_applied_version(conn)?;
    if db > binary {
        return Err(DbError::SchemaNewer {
            path: path.to_owned(),
            db,
            binary,
        });
    }
    // Divergent (edited) and missing migrations abort; one transaction for the whole batch
    // so a failure leaves the schema where it was. Foreign keys are off while it runs, as
    // SQLite's procedure for rebuilding a table asks (a DROP would otherwise cascade), and
    // checked before they are back on.
    conn.pragma_update(None, "foreign_keys", false)?;
    let report = embedded::migrations::runner()
        .set_abort_divergent(true)
        .set_abort_missing(true)
        .set_grouped(true)
        .run(conn);
    let dangling: Option<String> = conn
        .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
        .optional()?;
    conn.pragma_update(None, "foreign_keys", true)?;
    let report = report?;
    if let Some(table) = dangling {
        return Err(DbError::ForeignKeys(table));
    }
    let now: Vec<i64> = report
        .applied_migrations()
        .iter()
        .map(|m| i64::from(m.version()))
        .collect();
    let all = embedded::migrations::runner().get_applied_migrations(conn)?;
    Ok(all
        .iter()
        .map(|m| AppliedMigration {
            version: i64::from(m.version()),
            name: m.name().to_owned(),
            now: now.contains(&i64::from(m.version())),
        })
        .collect())
}

fn max_applied_version(conn: &Connection) -> Result<i64, DbError> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type='table' AND name='refinery_schema_history')",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(0);
    }
    Ok(conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM refinery_schema_history",
        [],
        |r| r.get(0),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_versions_are_contiguous_from_one() {
        // Ordering drift (a migration slotted in below an applied one) cannot happen when
        // versions are exactly 1..=N; refinery also refuses missing and edited ones.
        let mut v: Vec<i64> = embedded::migrations::runner()
            .get_migrations()
            .iter()
            .map(|m| i64::from(m.version()))
            .collect();
        v.sort_unstable();
        let expected: Vec<i64> = (1..=v.len() as i64).collect();
        assert_eq!(v, expected);
    }

    #[test]
    fn migrating_twice_applies_nothing_new() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, first) = Db::open_and_migrate(dir.path()).unwrap();
        assert!(first.iter().all(|m| m.now));
        drop(_db);
        let (_db, second) = Db::open_and_migrate(dir.path()).unwrap();
        assert_eq!(second.len(), first.len());
        assert!(second.iter().all(|m| !m.now));
    }

    #[test]
    fn wal_and_foreign_keys_are_on() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = Db::open_and_migrate(dir.path()).unwrap();
        let c = db.conn.lock().unwrap();
        let mode: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let fk: i64 = c
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!((mode.as_str(), fk), ("wal", 1));
    }
}
