//! Listeners' playlists: an ordered list of tracks owned by one user, shared read-only with
//! everyone when public. Who may change one is decided here (its owner); which entries a
//! viewer sees is the caller's [`Scope`](super::catalog::Scope).

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::catalog::Scope;
use super::store::PUBLIC_ONLY;
use super::{LibraryError, TrackId};

/// A playlist's row with its totals over the entries in scope.
#[derive(Debug, Clone, PartialEq)]
pub struct Playlist {
    /// UUIDv7.
    pub id: String,
    /// Owner's id.
    pub owner_id: String,
    /// Owner's name.
    pub owner: String,
    /// Name.
    pub name: String,
    /// Comment.
    pub comment: String,
    /// Visible to every user.
    pub public: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// Entries in scope.
    pub songs: i64,
    /// Their total duration.
    pub duration_ms: i64,
}

/// What an update changes.
#[derive(Debug, Clone, Default)]
pub struct PlaylistChange {
    /// New name.
    pub name: Option<String>,
    /// New comment.
    pub comment: Option<String>,
    /// New public flag.
    pub public: Option<bool>,
    /// Tracks appended.
    pub add: Vec<TrackId>,
    /// Positions (0-based, as listed before this change) removed.
    pub remove: Vec<u32>,
    /// Replaces every entry (before `add`).
    pub replace: Option<Vec<TrackId>>,
}

fn cols(scope: &Scope<'_>) -> String {
    let visible = if scope.public_only { PUBLIC_ONLY } else { "1" };
    format!(
        "p.id, p.owner_id, u.username, p.name, p.comment, p.public, p.created_at, p.updated_at, \
         (SELECT COUNT(*) FROM playlist_entries e JOIN tracks ON tracks.id = e.track_id \
            WHERE e.playlist_id = p.id AND {visible}), \
         (SELECT COALESCE(SUM(duration_ms), 0) FROM playlist_entries e JOIN tracks ON tracks.id = e.track_id \
            WHERE e.playlist_id = p.id AND {visible})"
    )
}

fn playlist_row(r: &Row<'_>) -> rusqlite::Result<Playlist> {
    Ok(Playlist {
        id: r.get(0)?,
        owner_id: r.get(1)?,
        owner: r.get(2)?,
        name: r.get(3)?,
        comment: r.get(4)?,
        public: r.get::<_, i64>(5)? != 0,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
        songs: r.get(8)?,
        duration_ms: r.get(9)?,
    })
}

/// The listener's playlists and everyone's public ones, by name.
pub fn list(c: &Connection, scope: &Scope<'_>) -> Result<Vec<Playlist>, LibraryError> {
    let sql = format!(
        "SELECT {} FROM playlists p JOIN users u ON u.id = p.owner_id \
         WHERE p.owner_id = ?1 OR p.public = 1 ORDER BY p.name COLLATE NOCASE, p.id",
        cols(scope)
    );
    let mut st = c.prepare(&sql)?;
    Ok(st
        .query_map([scope.user_id], playlist_row)?
        .collect::<Result<_, _>>()?)
}

/// A playlist the listener may read (their own or a public one) and its track ids in order.
pub fn get(
    c: &Connection,
    scope: &Scope<'_>,
    id: &str,
) -> Result<Option<(Playlist, Vec<TrackId>)>, LibraryError> {
    let sql = format!(
        "SELECT {} FROM playlists p JOIN users u ON u.id = p.owner_id \
         WHERE p.id = ?1 AND (p.owner_id = ?2 OR p.public = 1)",
        cols(scope)
    );
    let Some(p) = c
        .prepare(&sql)?
        .query_row(params![id, scope.user_id], playlist_row)
        .optional()?
    else {
        return Ok(None);
    };
    let ids = entries(c, id)?;
    Ok(Some((p, ids)))
}

fn entries(c: &Connection, id: &str) -> Result<Vec<TrackId>, LibraryError> {
    let mut st = c.prepare_cached(
        "SELECT track_id FROM playlist_entries WHERE playlist_id = ?1 ORDER BY position",
    )?;
    let ids: Vec<String> = st
        .query_map([id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(ids.iter().filter_map(|s| s.parse().ok()).collect())
}

fn write_entries(c: &Connection, id: &str, tracks: &[TrackId]) -> Result<(), LibraryError> {
    c.execute("DELETE FROM playlist_entries WHERE playlist_id = ?1", [id])?;
    for (pos, t) in tracks.iter().enumerate() {
        c.execute(
            "INSERT INTO playlist_entries (playlist_id, position, track_id) VALUES (?1, ?2, ?3)",
            params![id, pos as i64, t.as_str()],
        )
        .map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _)
                if f.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                LibraryError::NotFound
            }
            e => e.into(),
        })?;
    }
    Ok(())
}

/// Creates a playlist owned by `owner_id`; returns its id.
pub fn create(
    c: &mut Connection,
    owner_id: &str,
    name: &str,
    tracks: &[TrackId],
    now: i64,
) -> Result<String, LibraryError> {
    let id = uuid::Uuid::now_v7().to_string();
    let tx = c.transaction()?;
    tx.execute(
        "INSERT INTO playlists (id, owner_id, name, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
        params![id, owner_id, name, now],
    )?;
    write_entries(&tx, &id, tracks)?;
    tx.commit()?;
    Ok(id)
}

/// Changes a playlist; only its owner may (`Forbidden` for others, `NotFound` when absent).
pub fn update(
    c: &mut Connection,
    owner_id: &str,
    id: &str,
    ch: &PlaylistChange,
    now: i64,
) -> Result<(), LibraryError> {
    let tx = c.transaction()?;
    owned(&tx, owner_id, id)?;
    if let Some(n) = &ch.name {
        tx.execute(
            "UPDATE playlists SET name = ?1 WHERE id = ?2",
            params![n, id],
        )?;
    }
    if let Some(n) = &ch.comment {
        tx.execute(
            "UPDATE playlists SET comment = ?1 WHERE id = ?2",
            params![n, id],
        )?;
    }
    if let Some(p) = ch.public {
        tx.execute(
            "UPDATE playlists SET public = ?1 WHERE id = ?2",
            params![i64::from(p), id],
        )?;
    }
    let mut tracks = match &ch.replace {
        Some(list) => list.clone(),
        None => entries(&tx, id)?,
    };
    if !ch.remove.is_empty() {
        tracks = tracks
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !ch.remove.contains(&(*i as u32)))
            .map(|(_, t)| t)
            .collect();
    }
    tracks.extend(ch.add.iter().cloned());
    write_entries(&tx, id, &tracks)?;
    tx.execute(
        "UPDATE playlists SET updated_at = ?1 WHERE id = ?2",
        params![now, id],
    )?;
    tx.commit()?;
    Ok(())
}

/// Deletes a playlist; only its owner may.
pub fn delete(c: &mut Connection, owner_id: &str, id: &str) -> Result<(), LibraryError> {
    let tx = c.transaction()?;
    owned(&tx, owner_id, id)?;
    tx.execute("DELETE FROM playlists WHERE id = ?1", [id])?;
    tx.commit()?;
    Ok(())
}

fn owned(c: &Connection, owner_id: &str, id: &str) -> Result<(), LibraryError> {
    let owner: Option<String> = c
        .query_row("SELECT owner_id FROM playlists WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?;
    match owner {
        None => Err(LibraryError::NotFound),
        Some(o) if o != owner_id => Err(LibraryError::Forbidden),
        Some(_) => Ok(()),
    }
}
