//! SQL for the library. Listing is keyset-paginated on (sort value, id), so a page boundary
//! never shifts when tracks are added; search goes through the FTS5 index.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, params, params_from_iter};

use super::{LibraryError, OwnerKey, Status, Track, TrackAccess, TrackId, Visibility};
use crate::storage::BlobKey;

pub(super) const COLS: &str = "id, title, artist, album, track_number, duration_ms, codec, bitrate_kbps, \
    sample_rate, channels, size_bytes, sha256, content_type, cover_key, visibility, status, \
    status_detail, created_at, updated_at, original_key, hls_key, album_artist, genre, year, \
    disc_number, play_count, last_played_at";

/// How many columns [`COLS`] names (a query may select more after them).
const COL_COUNT: usize = 27;

/// A stored text column parsed into its domain type: a value that does not parse is an error
/// naming the column, never a silent default.
fn parsed<T>(r: &Row<'_>, i: usize) -> rusqlite::Result<T>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let text: String = r.get(i)?;
    text.parse().map_err(|e: T::Err| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("stored value does not parse: {e}").into(),
        )
    })
}

/// [`parsed`] for a nullable column.
fn parsed_opt<T>(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<T>>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match r.get_ref(i)? {
        rusqlite::types::ValueRef::Null => Ok(None),
        _ => parsed(r, i).map(Some),
    }
}

pub(super) fn row(r: &Row<'_>) -> rusqlite::Result<Track> {
    let vis: String = r.get(14)?;
    let status: String = r.get(15)?;
    let cover_key: Option<BlobKey> = parsed_opt(r, 13)?;
    let hls_key: Option<BlobKey> = parsed_opt(r, 20)?;
    Ok(Track {
        id: parsed(r, 0)?,
        title: r.get(1)?,
        artist: r.get(2)?,
        album: r.get(3)?,
        track_number: r.get(4)?,
        album_artist: r.get(21)?,
        genre: r.get(22)?,
        year: r.get(23)?,
        disc_number: r.get(24)?,
        play_count: r.get(25)?,
        last_played_at: r.get(26)?,
        duration_ms: r.get(5)?,
        codec: r.get(6)?,
        bitrate_kbps: r.get(7)?,
        sample_rate: r.get(8)?,
        channels: r.get(9)?,
        size_bytes: r.get(10)?,
        sha256: r.get(11)?,
        content_type: r.get(12)?,
        has_cover: cover_key.is_some(),
        has_hls: hls_key.is_some(),
        visibility: vis.parse().unwrap_or(Visibility::Private),
        status: status.parse().unwrap_or(Status::Failed),
        status_detail: r.get(16)?,
        tags: Vec::new(),
        created_at: r.get(17)?,
        updated_at: r.get(18)?,
        original_key: parsed(r, 19)?,
        cover_key,
        hls_key,
        loudness: None,
        gapless: None,
        peaks_url: None,
        peaks_key: None,
    })
}

pub(super) fn with_tags(c: &Connection, mut t: Track) -> Result<Track, LibraryError> {
    let mut st = c.prepare_cached("SELECT tag FROM track_tags WHERE track_id = ?1 ORDER BY tag")?;
    t.tags = st
        .query_map([t.id.as_str()], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    super::analysis::attach(c, &mut t)?;
    Ok(t)
}

/// A new track row.
#[derive(Debug, Clone)]
pub struct NewTrack {
    /// Id to use.
    pub id: TrackId,
    /// Metadata and blob keys; `tags` inserted too.
    pub track: Track,
    /// Uploader.
    pub created_by: Option<String>,
}

/// Inserts a track, and runs `also` in the same transaction (to enqueue its packaging job).
/// `Ok(None)` when a track with the same SHA-256 already exists (a concurrent import or upload
/// won): the caller returns that one.
pub fn insert(
    c: &mut Connection,
    new: &NewTrack,
    also: impl FnOnce(&Connection) -> Result<(), LibraryError>,
) -> Result<Option<Track>, LibraryError> {
    let t = &new.track;
    // IMMEDIATE: take the write lock up front (waiting out the busy timeout) rather than
    // upgrading a read snapshot that another process (`veza import` beside `serve`) made stale.
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let res = tx.execute(
        "INSERT INTO tracks (id, title, artist, album, track_number, duration_ms, codec, bitrate_kbps,
            sample_rate, channels, size_bytes, sha256, original_key, content_type, cover_key,
            visibility, status, created_by, created_at, updated_at, album_artist, genre, year, disc_number)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?19,
            ?20, ?21, ?22, ?23)",
        params![
            new.id.as_str(), t.title, t.artist, t.album, t.track_number, t.duration_ms, t.codec,
            t.bitrate_kbps, t.sample_rate, t.channels, t.size_bytes, t.sha256, t.original_key.as_str(),
            t.content_type, t.cover_key.as_ref().map(BlobKey::as_str), t.visibility.as_str(), t.status.as_str(), new.created_by,
            t.created_at, t.album_artist, t.genre, t.year, t.disc_number,
        ],
    );
    match res {
        Ok(_) => {}
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == ErrorCode::ConstraintViolation => {
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    }
    set_tags(&tx, new.id.as_str(), &t.tags)?;
    also(&tx)?;
    tx.commit()?;
    get(c, &new.id)
}

fn set_tags(c: &Connection, id: &str, tags: &[String]) -> Result<(), LibraryError> {
    c.execute("DELETE FROM track_tags WHERE track_id = ?1", [id])?;
    for tag in tags {
        c.execute(
            "INSERT OR IGNORE INTO track_tags (track_id, tag) VALUES (?1, ?2)",
            params![id, tag],
        )?;
    }
    Ok(())
}

/// A track by id.
pub fn get(c: &Connection, id: &TrackId) -> Result<Option<Track>, LibraryError> {
    let t = c
        .query_row(
            &format!("SELECT {COLS} FROM tracks WHERE id = ?1"),
            [id.as_str()],
            row,
        )
        .optional()?;
    t.map(|t| with_tags(c, t)).transpose()
}

/// A track by the SHA-256 of its original.
pub fn find_by_sha(c: &Connection, sha256: &str) -> Result<Option<Track>, LibraryError> {
    let t = c
        .query_row(
            &format!("SELECT {COLS} FROM tracks WHERE sha256 = ?1"),
            [sha256],
            row,
        )
        .optional()?;
    t.map(|t| with_tags(c, t)).transpose()
}

/// The SQL of `Query::public_only`: what an anonymous listing may hold.
pub(super) const PUBLIC_ONLY: &str = "visibility = 'public' AND status <> 'taken_down'";

/// Sort orders for listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Newest first (default).
    Newest,
    /// Oldest first.
    Oldest,
    /// By title A-Z.
    Title,
    /// By artist A-Z.
    Artist,
    /// By album A-Z.
    Album,
    /// Best search match first (FTS5's bm25 rank); the default when there is a search.
    Relevance,
}

impl Sort {
    /// Parses `newest|oldest|title|artist|album|relevance`.
    pub fn parse(s: &str) -> Option<Sort> {
        Some(match s {
            "relevance" => Sort::Relevance,
            "newest" | "" => Sort::Newest,
            "oldest" => Sort::Oldest,
            "title" => Sort::Title,
            "artist" => Sort::Artist,
            "album" => Sort::Album,
            _ => return None,
        })
    }

    fn column(self) -> &'static str {
        match self {
            Sort::Newest | Sort::Oldest => "created_at",
            Sort::Title => "title COLLATE NOCASE",
            Sort::Artist => "artist COLLATE NOCASE",
            Sort::Album => "album COLLATE NOCASE",
            Sort::Relevance => "f.fts_rank",
        }
    }

    fn descending(self) -> bool {
        self == Sort::Newest
    }
}

/// Listing filters.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Free-text search over title, artist, album (prefix match per word).
    pub q: Option<String>,
    /// Exact artist (case-insensitive).
    pub artist: Option<String>,
    /// Exact album (case-insensitive).
    pub album: Option<String>,
    /// Only this visibility.
    pub visibility: Option<Visibility>,
    /// Only this status.
    pub status: Option<Status>,
    /// Anonymous callers: public and not taken down only.
    pub public_only: bool,
    /// Sort order (default: relevance with `q`, else newest).
    pub sort: Option<Sort>,
    /// Opaque cursor from the previous page.
    pub cursor: Option<String>,
    /// Page size (1-200, default 50).
    pub limit: Option<u32>,
}

/// One page of tracks.
#[derive(Debug, Clone)]
pub struct Page {
    /// The tracks.
    pub tracks: Vec<Track>,
    /// Cursor of the next page, if any.
    pub next_cursor: Option<String>,
}

/// Most words a search may have: each is a prefix scan of the FTS index.
pub const MAX_SEARCH_TERMS: usize = 16;
/// Longest search text accepted, in characters.
pub const MAX_SEARCH_CHARS: usize = 256;

/// Refuses searches whose cost has no business being paid (hundreds of prefix terms).
pub(super) fn check_search(q: &str) -> Result<(), LibraryError> {
    let too_long = q.chars().count() > MAX_SEARCH_CHARS;
    let terms = q
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .count();
    if too_long || terms > MAX_SEARCH_TERMS {
        return Err(LibraryError::Invalid {
            field: "q",
            message: format!(
                "search with at most {MAX_SEARCH_TERMS} words and {MAX_SEARCH_CHARS} characters"
            ),
        });
    }
    Ok(())
}

/// Turns free text into an FTS5 query: every word must match as a prefix.
pub(super) fn fts_query(q: &str) -> Option<String> {
    let words: Vec<String> = q
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| format!("\"{w}\"*"))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

/// Lists tracks with filters, sort and keyset pagination.
pub fn list(c: &Connection, q: &Query) -> Result<Page, LibraryError> {
    if let Some(text) = q.q.as_deref() {
        check_search(text)?;
    }
    let matching = q.q.as_deref().and_then(fts_query);
    let sort = match (q.sort, &matching) {
        (Some(Sort::Relevance), None) => {
            return Err(LibraryError::Invalid {
                field: "sort",
                message: "relevance needs a search (q)".into(),
            });
        }
        (Some(sort), _) => sort,
        (None, Some(_)) => Sort::Relevance,
        (None, None) => Sort::Newest,
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 200);
    let mut wh: Vec<String> = Vec::new();
    let mut args: Vec<SqlValue> = Vec::new();
    // By relevance, the FTS index drives the query and hands out its rank; otherwise the
    // match is a filter beside the sort column's index.
    let from = match &matching {
        Some(text) if sort == Sort::Relevance => {
            args.push(text.clone().into());
            "(SELECT rowid AS fts_rowid, rank AS fts_rank FROM tracks_fts WHERE tracks_fts MATCH ?) AS f \
             JOIN tracks ON tracks.rowid = f.fts_rowid"
        }
        Some(text) => {
            wh.push("rowid IN (SELECT rowid FROM tracks_fts WHERE tracks_fts MATCH ?)".into());
            args.push(text.clone().into());
            "tracks"
        }
        None => "tracks",
    };
    if let Some(a) = &q.artist {
        wh.push("artist = ? COLLATE NOCASE".into());
        args.push(a.clone().into());
    }
    if let Some(a) = &q.album {
        wh.push("album = ? COLLATE NOCASE".into());
        args.push(a.clone().into());
    }
    if let Some(v) = q.visibility {
        wh.push("visibility = ?".into());
        args.push(v.as_str().to_owned().into());
    }
    if let Some(s) = q.status {
        wh.push("status = ?".into());
        args.push(s.as_str().to_owned().into());
    }
    if q.public_only {
        wh.push(PUBLIC_ONLY.into());
    }
    let col = sort.column();
    let (cmp, dir) = if sort.descending() {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some(cur) = &q.cursor {
        let (value, id) = decode_cursor(cur)?;
        wh.push(format!("({col}, id) {cmp} (?, ?)"));
        args.push(value);
        args.push(id.into());
    }
    let where_sql = if wh.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", wh.join(" AND "))
    };
    // The rank column is the sort column when sorting by relevance.
    let rank = if sort == Sort::Relevance { col } else { "NULL" };
    let sql = format!(
        "SELECT {COLS}, {rank} FROM {from} {where_sql} ORDER BY {col} {dir}, id {dir} LIMIT {}",
        limit + 1
    );
    let mut st = c.prepare(&sql)?;
    let mut tracks = st
        .query_map(params_from_iter(args), |r| {
            Ok((row(r)?, r.get::<_, Option<f64>>(COL_COUNT)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let more = tracks.len() > limit as usize;
    tracks.truncate(limit as usize);
    let next_cursor = match (more, tracks.last()) {
        (true, Some((last, rank))) => Some(encode_cursor(sort, last, *rank)),
        _ => None,
    };
    let tracks = tracks
        .into_iter()
        .map(|(t, _)| with_tags(c, t))
        .collect::<Result<_, _>>()?;
    Ok(Page {
        tracks,
        next_cursor,
    })
}

fn encode_cursor(sort: Sort, t: &Track, rank: Option<f64>) -> String {
    let v = match sort {
        Sort::Relevance => serde_json::json!([rank.unwrap_or_default(), t.id]),
        Sort::Newest | Sort::Oldest => serde_json::json!([t.created_at, t.id]),
        Sort::Title => serde_json::json!([t.title, t.id]),
        Sort::Artist => serde_json::json!([t.artist, t.id]),
        Sort::Album => serde_json::json!([t.album, t.id]),
    };
    URL_SAFE_NO_PAD.encode(v.to_string())
}

fn decode_cursor(cur: &str) -> Result<(SqlValue, String), LibraryError> {
    let bad = || LibraryError::Invalid {
        field: "cursor",
        message: "not a cursor from a previous page".into(),
    };
    let raw = URL_SAFE_NO_PAD.decode(cur).map_err(|_| bad())?;
    let v: serde_json::Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let id = v[1].as_str().ok_or_else(bad)?.to_owned();
    let value = match &v[0] {
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64().ok_or_else(bad)?),
        },
        serde_json::Value::String(s) => SqlValue::Text(s.clone()),
        _ => return Err(bad()),
    };
    Ok((value, id))
}

/// Editable fields; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct TrackChange {
    /// New title (non-empty).
    pub title: Option<String>,
    /// New artist.
    pub artist: Option<String>,
    /// New album.
    pub album: Option<String>,
    /// New track number (`Some(None)` clears it).
    pub track_number: Option<Option<u32>>,
    /// New visibility.
    pub visibility: Option<Visibility>,
    /// Replaces the tags.
    pub tags: Option<Vec<String>>,
}

/// Applies an edit in one transaction.
pub fn update(
    c: &mut Connection,
    id: &TrackId,
    ch: &TrackChange,
    now: i64,
) -> Result<Track, LibraryError> {
    let tx = c.transaction()?;
    let before = super::analysis::album_of(&tx, id)?.ok_or(LibraryError::NotFound)?;
    let sets: [(&str, Option<SqlValue>); 5] = [
        ("title", ch.title.clone().map(SqlValue::Text)),
        ("artist", ch.artist.clone().map(SqlValue::Text)),
        ("album", ch.album.clone().map(SqlValue::Text)),
        (
            "track_number",
            ch.track_number
                .map(|n| n.map_or(SqlValue::Null, |n| SqlValue::Integer(n.into()))),
        ),
        (
            "visibility",
            ch.visibility.map(|v| SqlValue::Text(v.as_str().into())),
        ),
    ];
    for (col, val) in sets {
        if let Some(v) = val {
            tx.execute(
                &format!("UPDATE tracks SET {col} = ?1 WHERE id = ?2"),
                params![v, id.as_str()],
            )?;
        }
    }
    if let Some(tags) = &ch.tags {
        set_tags(&tx, id.as_str(), tags)?;
    }
    if ch.album.is_some() || ch.artist.is_some() {
        // Both albums change: the one it left and the one it joined.
        super::analysis::refresh_album(&tx, &before)?;
        if let Some(after) = super::analysis::album_of(&tx, id)? {
            super::analysis::refresh_album(&tx, &after)?;
        }
    }
    tx.execute(
        "UPDATE tracks SET updated_at = ?1 WHERE id = ?2",
        params![now, id.as_str()],
    )?;
    tx.commit()?;
    get(c, id)?.ok_or(LibraryError::NotFound)
}

/// A track's progressive renditions: (kbps, key), ascending.
pub type ProgressiveRungs = Vec<(u32, BlobKey)>;

/// A track's original bitrate and its progressive renditions.
pub fn progressive(
    c: &Connection,
    id: &TrackId,
) -> Result<(Option<u32>, ProgressiveRungs), LibraryError> {
    let bitrate = c
        .query_row(
            "SELECT bitrate_kbps FROM tracks WHERE id = ?1",
            [id.as_str()],
            |r| r.get(0),
        )
        .optional()?
        .ok_or(LibraryError::NotFound)?;
    let mut st = c.prepare_cached(
        "SELECT bitrate_kbps, progressive_key FROM track_renditions
         WHERE track_id = ?1 AND progressive_key IS NOT NULL ORDER BY bitrate_kbps",
    )?;
    let rungs = st
        .query_map([id.as_str()], |r| Ok((r.get(0)?, parsed(r, 1)?)))?
        .collect::<Result<_, _>>()?;
    Ok((bitrate, rungs))
}

/// Deletes a track's rows; returns the blob keys no remaining row references, for the caller
/// to delete after the commit (a crash in between leaves an orphan blob, never a row that
/// points at a missing one).
pub fn delete(c: &mut Connection, id: &TrackId) -> Result<Vec<BlobKey>, LibraryError> {
    let tx = c.transaction()?;
    let t = get(&tx, id)?.ok_or(LibraryError::NotFound)?;
    let album = super::analysis::album_of(&tx, id)?;
    tx.execute("DELETE FROM tracks WHERE id = ?1", [id.as_str()])?;
    if let Some(album) = album {
        super::analysis::refresh_album(&tx, &album)?;
    }
    let mut unreferenced = Vec::new();
    for key in std::iter::once(t.original_key).chain(t.cover_key) {
        let used: i64 = tx.query_row(
            "SELECT COUNT(*) FROM tracks WHERE original_key = ?1 OR cover_key = ?1",
            [key.as_str()],
            |r| r.get(0),
        )?;
        if used == 0 {
            unreferenced.push(key);
        }
    }
    tx.commit()?;
    Ok(unreferenced)
}

/// The tracks owning an object (one, or several sharing a cover), ordered by id.
pub fn owners(c: &Connection, owner: &OwnerKey) -> Result<Vec<TrackAccess>, LibraryError> {
    const COLS: &str = "id, visibility, status, content_type, original_key, hls_key, cover_key, \
        (SELECT peaks_key FROM track_analysis a WHERE a.track_id = tracks.id)";
    let row = |r: &Row<'_>| -> rusqlite::Result<TrackAccess> {
        let vis: String = r.get(1)?;
        let status: String = r.get(2)?;
        Ok(TrackAccess {
            id: parsed(r, 0)?,
            // An unknown spelling is treated as the most restrictive.
            visibility: vis.parse().unwrap_or(Visibility::Private),
            status: status.parse().unwrap_or(Status::TakenDown),
            content_type: r.get(3)?,
            original_key: parsed(r, 4)?,
            hls_key: parsed_opt(r, 5)?,
            cover_key: parsed_opt(r, 6)?,
            peaks_key: parsed_opt(r, 7)?,
        })
    };
    Ok(match owner {
        OwnerKey::Track(id) => c
            .prepare_cached(&format!("SELECT {COLS} FROM tracks WHERE id = ?1"))?
            .query_row([id], row)
            .optional()?
            .into_iter()
            .collect(),
        OwnerKey::Original { sha256, key } => c
            .prepare_cached(&format!(
                "SELECT {COLS} FROM tracks WHERE sha256 = ?1 AND original_key = ?2"
            ))?
            .query_row([sha256.as_str(), key.as_str()], row)
            .optional()?
            .into_iter()
            .collect(),
        OwnerKey::Cover(key) => c
            .prepare_cached(&format!(
                "SELECT {COLS} FROM tracks WHERE cover_key = ?1 ORDER BY id"
            ))?
            .query_map([key], row)?
            .collect::<Result<_, _>>()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_text_becomes_safe_prefix_queries() {
        assert_eq!(COLS.split(',').count(), COL_COUNT);
        assert_eq!(fts_query("Blue mon").as_deref(), Some("\"Blue\"* \"mon\"*"));
        assert_eq!(
            fts_query("\" OR 1=1 --").as_deref(),
            Some("\"OR\"* \"1\"* \"1\"*")
        );
        assert_eq!(fts_query("  -- "), None);
        assert!(check_search(&"a ".repeat(MAX_SEARCH_TERMS)).is_ok());
        assert!(check_search(&"a ".repeat(MAX_SEARCH_TERMS + 1)).is_err());
        assert!(check_search(&"x".repeat(MAX_SEARCH_CHARS + 1)).is_err());
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let c = URL_SAFE_NO_PAD.encode(r#"[1700000000,"abc"]"#);
        let (v, id) = decode_cursor(&c).unwrap();
        assert_eq!((v, id.as_str()), (SqlValue::Integer(1_700_000_000), "abc"));
        assert!(decode_cursor("%%%").is_err());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode("[{}, 1]")).is_err());
    }
}
