//! The library seen as artists and albums, derived from the tracks' tags (album artist first:
//! `tracks.lead_artist`), with one listener's plays and stars beside each item. The SQL for
//! the OpenSubsonic API's browsing; which tracks a viewer may see comes in as a [`Scope`]
//! from the track service's rule, never decided here.

use std::collections::HashMap;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use super::store::{COLS, PUBLIC_ONLY, check_search, fts_query, row};
use super::{LibraryError, Track, TrackId};

/// Whose view of the library, and how much of it.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// Public, playable tracks only (from `tracks::lists_everything`).
    pub public_only: bool,
    /// The listener whose plays and stars come with each item.
    pub user_id: &'a str,
}

/// A track with the listener's own facts.
#[derive(Debug, Clone)]
pub struct Song {
    /// The track.
    pub track: Track,
    /// The listener's plays.
    pub plays: i64,
    /// Unix seconds of the listener's last play.
    pub played: Option<i64>,
    /// Unix seconds the listener starred it.
    pub starred: Option<i64>,
}

/// An album: the tracks sharing a lead artist and an album name.
#[derive(Debug, Clone, PartialEq)]
pub struct Album {
    /// Lead artist (album artist, else artist).
    pub artist: String,
    /// Album name.
    pub name: String,
    /// Tracks in scope.
    pub songs: i64,
    /// Their total duration.
    pub duration_ms: i64,
    /// When its first track was added.
    pub created: i64,
    /// Latest year tagged.
    pub year: Option<u32>,
    /// A genre tagged on it ("" when none).
    pub genre: String,
    /// A track whose cover stands for the album.
    pub cover: Option<TrackId>,
    /// The listener's plays of its tracks.
    pub plays: i64,
    /// The listener's last play of it.
    pub played: Option<i64>,
}

/// An artist: a lead artist with albums in scope.
#[derive(Debug, Clone, PartialEq)]
pub struct Artist {
    /// Name.
    pub name: String,
    /// Albums in scope.
    pub albums: i64,
    /// A track whose cover stands for the artist.
    pub cover: Option<TrackId>,
}

/// Orders of `getAlbumList2`.
#[derive(Debug, Clone, PartialEq)]
pub enum AlbumOrder {
    /// Shuffled.
    Random,
    /// Most recently added first.
    Newest,
    /// Most played by the listener first (and only those played).
    Frequent,
    /// Most recently played by the listener first (and only those played).
    Recent,
    /// By album name.
    ByName,
    /// By lead artist, then album name.
    ByArtist,
    /// Years `from..=to` (descending when `from > to`).
    ByYear(u32, u32),
    /// One genre, by name.
    ByGenre(String),
    /// Most played by everyone first (Veza has no ratings).
    Highest,
}

/// A page: `size` items after `offset`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Items skipped.
    pub offset: u32,
    /// Items returned at most.
    pub size: u32,
}

fn scope_sql(scope: &Scope<'_>) -> &'static str {
    if scope.public_only { PUBLIC_ONLY } else { "1" }
}

/// The listener's facts as extra columns after [`COLS`] (positions 27, 28, 29).
const USER_COLS: &str = "(SELECT count FROM plays WHERE user_id = :u AND track_id = tracks.id), \
    (SELECT last_played_at FROM plays WHERE user_id = :u AND track_id = tracks.id), \
    (SELECT starred_at FROM stars WHERE user_id = :u AND kind = 'song' AND item_id = tracks.id)";

fn song_row(r: &Row<'_>) -> rusqlite::Result<Song> {
    Ok(Song {
        track: row(r)?,
        plays: r.get::<_, Option<i64>>(27)?.unwrap_or(0),
        played: r.get(28)?,
        starred: r.get(29)?,
    })
}

/// Runs a song query whose `WHERE`/`ORDER`/`LIMIT` tail is `tail`, with named params.
fn songs_where(
    c: &Connection,
    scope: &Scope<'_>,
    tail: &str,
    args: &[(&str, &dyn rusqlite::ToSql)],
) -> Result<Vec<Song>, LibraryError> {
    let sql = format!(
        "SELECT {COLS}, {USER_COLS} FROM tracks WHERE {} AND {tail}",
        scope_sql(scope)
    );
    let mut all: Vec<(&str, &dyn rusqlite::ToSql)> = vec![(":u", &scope.user_id)];
    all.extend_from_slice(args);
    let mut st = c.prepare(&sql)?;
    let mut songs: Vec<Song> = st
        .query_map(all.as_slice(), song_row)?
        .collect::<Result<_, _>>()?;
    for s in &mut songs {
        super::analysis::attach(c, &mut s.track)?;
    }
    Ok(songs)
}

/// One track with the listener's facts, whatever its visibility (the caller asks the rule).
pub fn song(c: &Connection, user_id: &str, id: &TrackId) -> Result<Option<Song>, LibraryError> {
    let all = Scope {
        public_only: false,
        user_id,
    };
    Ok(songs_where(c, &all, "id = :id", &[(":id", &id.as_str())])?
        .into_iter()
        .next())
}

/// Tracks by id, in the order given, skipping those out of scope or gone.
pub fn songs_by_id(
    c: &Connection,
    scope: &Scope<'_>,
    ids: &[TrackId],
) -> Result<Vec<Song>, LibraryError> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.extend(songs_where(c, scope, "id = :id", &[(":id", &id.as_str())])?);
    }
    Ok(out)
}

/// An album's tracks: disc, track number, title.
pub fn album_songs(
    c: &Connection,
    scope: &Scope<'_>,
    artist: &str,
    album: &str,
) -> Result<Vec<Song>, LibraryError> {
    songs_where(
        c,
        scope,
        "lead_artist = :a AND album = :b \
         ORDER BY disc_number, track_number, title COLLATE NOCASE, id",
        &[(":a", &artist), (":b", &album)],
    )
}

/// Shuffled tracks, optionally of a genre and a span of years.
pub fn random_songs(
    c: &Connection,
    scope: &Scope<'_>,
    size: u32,
    genre: Option<&str>,
    years: (Option<u32>, Option<u32>),
) -> Result<Vec<Song>, LibraryError> {
    let mut tail = String::from("1");
    let mut args: Vec<(&str, &dyn rusqlite::ToSql)> = vec![(":n", &size)];
    if let Some(g) = &genre {
        tail.push_str(" AND genre = :g COLLATE NOCASE");
        args.push((":g", g));
    }
    if let Some(from) = &years.0 {
        tail.push_str(" AND year >= :from");
        args.push((":from", from));
    }
    if let Some(to) = &years.1 {
        tail.push_str(" AND year <= :to");
        args.push((":to", to));
    }
    tail.push_str(" ORDER BY random() LIMIT :n");
    songs_where(c, scope, &tail, &args)
}

const ALBUM_COLS: &str = "lead_artist, album, COUNT(*), COALESCE(SUM(duration_ms), 0), \
    MIN(created_at), MAX(year), MAX(genre), MIN(CASE WHEN cover_key IS NOT NULL THEN id END), \
    COALESCE(SUM((SELECT count FROM plays WHERE user_id = :u AND track_id = tracks.id)), 0), \
    MAX((SELECT last_played_at FROM plays WHERE user_id = :u AND track_id = tracks.id)), \
    SUM(play_count)";

fn album_row(r: &Row<'_>) -> rusqlite::Result<Album> {
    let cover: Option<String> = r.get(7)?;
    Ok(Album {
        artist: r.get(0)?,
        name: r.get(1)?,
        songs: r.get(2)?,
        duration_ms: r.get(3)?,
        created: r.get(4)?,
        year: r.get(5)?,
        genre: r.get(6)?,
        cover: cover.and_then(|id| id.parse().ok()),
        plays: r.get(8)?,
        played: r.get(9)?,
    })
}

/// Albums in an order, optionally of one lead artist.
pub fn albums(
    c: &Connection,
    scope: &Scope<'_>,
    order: &AlbumOrder,
    artist: Option<&str>,
    window: Window,
) -> Result<Vec<Album>, LibraryError> {
    let mut wh = vec![scope_sql(scope).to_owned()];
    let mut args: Vec<(&str, SqlValue)> = vec![
        (":u", scope.user_id.to_owned().into()),
        (":n", i64::from(window.size).into()),
        (":o", i64::from(window.offset).into()),
    ];
    if let Some(a) = artist {
        wh.push("lead_artist = :a".into());
        args.push((":a", a.to_owned().into()));
    }
    let mut having = "";
    let order_sql = match order {
        AlbumOrder::Random => "random()",
        AlbumOrder::Newest => "MIN(created_at) DESC",
        AlbumOrder::Frequent => {
            having = "HAVING COALESCE(SUM((SELECT count FROM plays WHERE user_id = :u AND track_id = tracks.id)), 0) > 0";
            "9 DESC"
        }
        AlbumOrder::Recent => {
            having = "HAVING MAX((SELECT last_played_at FROM plays WHERE user_id = :u AND track_id = tracks.id)) IS NOT NULL";
            "10 DESC"
        }
        AlbumOrder::ByName => "album COLLATE NOCASE, lead_artist COLLATE NOCASE",
        AlbumOrder::ByArtist => "lead_artist COLLATE NOCASE, album COLLATE NOCASE",
        AlbumOrder::ByYear(from, to) => {
            wh.push("year BETWEEN :y1 AND :y2".into());
            args.push((":y1", i64::from(*from.min(to)).into()));
            args.push((":y2", i64::from(*from.max(to)).into()));
            if from > to {
                "MAX(year) DESC, album COLLATE NOCASE"
            } else {
                "MAX(year), album COLLATE NOCASE"
            }
        }
        AlbumOrder::ByGenre(g) => {
            wh.push("genre = :g COLLATE NOCASE".into());
            args.push((":g", g.clone().into()));
            "album COLLATE NOCASE"
        }
        AlbumOrder::Highest => "11 DESC, album COLLATE NOCASE",
    };
    let sql = format!(
        "SELECT {ALBUM_COLS} FROM tracks WHERE {} GROUP BY lead_artist, album {having} \
         ORDER BY {order_sql} LIMIT :n OFFSET :o",
        wh.join(" AND ")
    );
    let mut st = c.prepare(&sql)?;
    let named: Vec<(&str, &dyn rusqlite::ToSql)> = args
        .iter()
        .map(|(k, v)| (*k, v as &dyn rusqlite::ToSql))
        .collect();
    Ok(st
        .query_map(named.as_slice(), album_row)?
        .collect::<Result<_, _>>()?)
}

/// One album, when it has tracks in scope.
pub fn album(
    c: &Connection,
    scope: &Scope<'_>,
    artist: &str,
    name: &str,
) -> Result<Option<Album>, LibraryError> {
    let sql = format!(
        "SELECT {ALBUM_COLS} FROM tracks WHERE {} AND lead_artist = :a AND album = :b \
         GROUP BY lead_artist, album",
        scope_sql(scope)
    );
    Ok(c.prepare(&sql)?
        .query_row(
            rusqlite::named_params! {":u": scope.user_id, ":a": artist, ":b": name},
            album_row,
        )
        .optional()?)
}

/// Every lead artist with albums in scope, by name.
pub fn artists(c: &Connection, scope: &Scope<'_>) -> Result<Vec<Artist>, LibraryError> {
    artists_where(c, scope, "1", &[])
}

fn artists_where(
    c: &Connection,
    scope: &Scope<'_>,
    filter: &str,
    args: &[SqlValue],
) -> Result<Vec<Artist>, LibraryError> {
    let sql = format!(
        "SELECT lead_artist, COUNT(DISTINCT album), MIN(CASE WHEN cover_key IS NOT NULL THEN id END) \
         FROM tracks WHERE {} AND {filter} GROUP BY lead_artist ORDER BY lead_artist COLLATE NOCASE",
        scope_sql(scope)
    );
    let mut st = c.prepare(&sql)?;
    Ok(st
        .query_map(params_from_iter(args), |r| {
            let cover: Option<String> = r.get(2)?;
            Ok(Artist {
                name: r.get(0)?,
                albums: r.get(1)?,
                cover: cover.and_then(|id| id.parse().ok()),
            })
        })?
        .collect::<Result<_, _>>()?)
}

/// One artist, when they have tracks in scope.
pub fn artist(
    c: &Connection,
    scope: &Scope<'_>,
    name: &str,
) -> Result<Option<Artist>, LibraryError> {
    Ok(
        artists_where(c, scope, "lead_artist = ?1", &[name.to_owned().into()])?
            .into_iter()
            .next(),
    )
}

/// Genres with their song and album counts, by name.
pub fn genres(c: &Connection, scope: &Scope<'_>) -> Result<Vec<(String, i64, i64)>, LibraryError> {
    let sql = format!(
        "SELECT genre, COUNT(*), COUNT(DISTINCT lead_artist || char(31) || album) FROM tracks \
         WHERE {} AND genre <> '' GROUP BY genre ORDER BY genre COLLATE NOCASE",
        scope_sql(scope)
    );
    let mut st = c.prepare(&sql)?;
    Ok(st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?)
}

/// What a search found.
#[derive(Debug, Default)]
pub struct Found {
    /// Artists whose name matches.
    pub artists: Vec<Artist>,
    /// Albums whose name or artist matches.
    pub albums: Vec<Album>,
    /// Songs matching every word (title, artist, album).
    pub songs: Vec<Song>,
}

/// Searches artists, albums and songs; an empty query lists everything (clients sync so).
pub fn search(
    c: &Connection,
    scope: &Scope<'_>,
    q: &str,
    windows: [Window; 3],
) -> Result<Found, LibraryError> {
    check_search(q)?;
    let [wa, wb, ws] = windows;
    let words: Vec<String> = q
        .split(|ch: char| !ch.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| format!("%{}%", w.replace(['%', '_'], "")))
        .collect();
    let like = |col: &str| -> String {
        if words.is_empty() {
            "1".into()
        } else {
            (0..words.len())
                .map(|i| format!("{col} LIKE ?{}", i + 1))
                .collect::<Vec<_>>()
                .join(" AND ")
        }
    };
    let args: Vec<SqlValue> = words.iter().map(|w| w.clone().into()).collect();
    let artists: Vec<Artist> = artists_where(c, scope, &like("lead_artist"), &args)?
        .into_iter()
        .skip(wa.offset as usize)
        .take(wa.size as usize)
        .collect();
    let mut albums = Vec::new();
    if wb.size > 0 {
        let filter = if words.is_empty() {
            "1".to_owned()
        } else {
            format!("(({}) OR ({}))", like("album"), like("lead_artist"))
        };
        let sql = format!(
            "SELECT lead_artist, album FROM tracks WHERE {} AND {filter} \
             GROUP BY lead_artist, album ORDER BY album COLLATE NOCASE LIMIT {} OFFSET {}",
            scope_sql(scope),
            wb.size,
            wb.offset
        );
        let keys: Vec<(String, String)> = c
            .prepare(&sql)?
            .query_map(params_from_iter(&args), |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (a, b) in keys {
            albums.extend(album(c, scope, &a, &b)?);
        }
    }
    let songs = match fts_query(q) {
        _ if ws.size == 0 => Vec::new(),
        Some(m) => songs_where(
            c,
            scope,
            "rowid IN (SELECT rowid FROM tracks_fts WHERE tracks_fts MATCH :m) \
             ORDER BY title COLLATE NOCASE, id LIMIT :n OFFSET :o",
            &[(":m", &m), (":n", &ws.size), (":o", &ws.offset)],
        )?,
        None => songs_where(
            c,
            scope,
            "1 ORDER BY title COLLATE NOCASE, id LIMIT :n OFFSET :o",
            &[(":n", &ws.size), (":o", &ws.offset)],
        )?,
    };
    Ok(Found {
        artists,
        albums,
        songs,
    })
}

/// The listener's stars of one kind (`song`, `album`, `artist`): item id → unix seconds.
pub fn stars(
    c: &Connection,
    user_id: &str,
    kind: &str,
) -> Result<HashMap<String, i64>, LibraryError> {
    let mut st = c.prepare_cached(
        "SELECT item_id, starred_at FROM stars WHERE user_id = ?1 AND kind = ?2 ORDER BY starred_at DESC",
    )?;
    Ok(st
        .query_map(params![user_id, kind], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?)
}

/// Stars or unstars items of one kind for a listener.
pub fn set_stars(
    c: &mut Connection,
    user_id: &str,
    kind: &str,
    ids: &[String],
    starred: bool,
    now: i64,
) -> Result<(), LibraryError> {
    let tx = c.transaction()?;
    for id in ids {
        if starred {
            tx.execute(
                "INSERT OR IGNORE INTO stars (user_id, kind, item_id, starred_at) VALUES (?1, ?2, ?3, ?4)",
                params![user_id, kind, id, now],
            )?;
        } else {
            tx.execute(
                "DELETE FROM stars WHERE user_id = ?1 AND kind = ?2 AND item_id = ?3",
                params![user_id, kind, id],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Records a finished play: the listener's count and time, and the track's totals, together.
pub fn record_play(
    c: &mut Connection,
    user_id: &str,
    id: &TrackId,
    at: i64,
) -> Result<(), LibraryError> {
    let tx = c.transaction()?;
    let n = tx.execute(
        "UPDATE tracks SET play_count = play_count + 1,
            last_played_at = MAX(COALESCE(last_played_at, 0), ?2) WHERE id = ?1",
        params![id.as_str(), at],
    )?;
    if n == 0 {
        return Err(LibraryError::NotFound);
    }
    tx.execute(
        "INSERT INTO plays (user_id, track_id, count, last_played_at) VALUES (?1, ?2, 1, ?3)
         ON CONFLICT (user_id, track_id) DO UPDATE SET count = count + 1,
            last_played_at = MAX(last_played_at, excluded.last_played_at)",
        params![user_id, id.as_str(), at],
    )?;
    tx.commit()?;
    Ok(())
}
