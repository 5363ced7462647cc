//! What belongs to a listener: plays (`scrobble`), playlists and stars.

use serde_json::{Value, json};

use super::browse::{starred_album_rows, visible_song};
use super::error::SubsonicError;
use super::ids::{self, ItemId};
use super::items;
use super::{Answer, Ctx, empty, one};
use crate::clock::now;
use crate::library::playlists::{self, PlaylistChange};
use crate::library::{TrackId, catalog};

/// Longest playlist name or comment kept.
const MAX_TEXT: usize = 500;

pub(super) async fn scrobble(c: &Ctx) -> Result<Answer, SubsonicError> {
    let ids = c.p.all("id");
    if ids.is_empty() {
        return Err(SubsonicError::Missing("id"));
    }
    let times = c.p.all("time");
    // `submission=false` is "now playing": nothing to record.
    let submit = c.p.flag("submission", true);
    for (i, id) in ids.iter().enumerate() {
        let song = visible_song(c, id).await?;
        if !submit {
            continue;
        }
        let at = times
            .get(i)
            .and_then(|t| t.parse::<i64>().ok())
            .map_or_else(now, |ms| ms / 1000);
        let user = c.user.id.clone();
        let tid = song.track.id.clone();
        c.s.db
            .call(move |db| catalog::record_play(db, &user, &tid, at))
            .await?;
    }
    empty()
}

/// Track ids a listener may put in a playlist (each must be visible to them).
async fn songs_to_add(c: &Ctx, name: &str) -> Result<Vec<TrackId>, SubsonicError> {
    let mut out = Vec::new();
    for id in c.p.all(name) {
        out.push(visible_song(c, id).await?.track.id);
    }
    Ok(out)
}

fn text(v: &str) -> String {
    v.chars().take(MAX_TEXT).collect()
}

pub(super) async fn playlists(c: &Ctx) -> Result<Answer, SubsonicError> {
    if c.p
        .get("username")
        .is_some_and(|u| !u.eq_ignore_ascii_case(&c.user.username))
    {
        return Err(SubsonicError::NotAuthorized(
            "only your own playlists are listed",
        ));
    }
    let list = c.query(playlists::list).await?;
    let playlist: Vec<Value> = list
        .iter()
        .map(|p| Value::Object(items::playlist(p)))
        .collect();
    one("playlists", json!({"playlist": playlist}))
}

async fn playlist_answer(c: &Ctx, id: String) -> Result<Answer, SubsonicError> {
    let found = c
        .query(move |db, scope| {
            let Some((p, ids)) = playlists::get(db, scope, &id)? else {
                return Ok(None);
            };
            Ok(Some((p, catalog::songs_by_id(db, scope, &ids)?)))
        })
        .await?;
    let (p, songs) = found.ok_or(SubsonicError::NotFound("no such playlist"))?;
    let mut m = items::playlist(&p);
    m.insert(
        "entry".into(),
        songs.iter().map(items::song).collect::<Vec<_>>().into(),
    );
    one("playlist", m)
}

pub(super) async fn playlist(c: &Ctx) -> Result<Answer, SubsonicError> {
    playlist_answer(c, c.p.require("id")?.to_owned()).await
}

pub(super) async fn create_playlist(c: &Ctx) -> Result<Answer, SubsonicError> {
    let songs = songs_to_add(c, "songId").await?;
    let user = c.user.id.clone();
    let id = match (c.p.get("playlistId"), c.p.get("name")) {
        // With an id, createPlaylist replaces that playlist's songs (the spec's "update").
        (Some(id), name) => {
            let id = id.to_owned();
            let change = PlaylistChange {
                name: name.map(text),
                replace: Some(songs),
                ..PlaylistChange::default()
            };
            let pid = id.clone();
            c.s.db
                .call(move |db| playlists::update(db, &user, &pid, &change, now()))
                .await?;
            id
        }
        (None, Some(name)) => {
            let name = text(name);
            c.s.db
                .call(move |db| playlists::create(db, &user, &name, &songs, now()))
                .await?
        }
        (None, None) => return Err(SubsonicError::Missing("name")),
    };
    playlist_answer(c, id).await
}

pub(super) async fn update_playlist(c: &Ctx) -> Result<Answer, SubsonicError> {
    let id = c.p.require("playlistId")?.to_owned();
    let mut remove = Vec::new();
    for v in c.p.all("songIndexToRemove") {
        remove.push(v.parse::<u32>().map_err(|_| SubsonicError::BadParam {
            name: "songIndexToRemove",
            why: format!("{v:?} is not an index"),
        })?);
    }
    let change = PlaylistChange {
        name: c.p.get("name").map(text),
        comment: c.p.get("comment").map(text),
        public: c.p.get("public").map(|_| c.p.flag("public", false)),
        add: songs_to_add(c, "songIdToAdd").await?,
        remove,
        replace: None,
    };
    let user = c.user.id.clone();
    c.s.db
        .call(move |db| playlists::update(db, &user, &id, &change, now()))
        .await?;
    empty()
}

pub(super) async fn delete_playlist(c: &Ctx) -> Result<Answer, SubsonicError> {
    let id = c.p.require("id")?.to_owned();
    let user = c.user.id.clone();
    c.s.db
        .call(move |db| playlists::delete(db, &user, &id))
        .await?;
    empty()
}

pub(super) async fn star(c: &Ctx, on: bool) -> Result<Answer, SubsonicError> {
    let mut by_kind: Vec<(&'static str, String)> = Vec::new();
    // `id` may name songs, or (from folder-based clients) albums and artists.
    for id in
        c.p.all("id")
            .into_iter()
            .chain(c.p.all("albumId"))
            .chain(c.p.all("artistId"))
    {
        match ids::parse(id) {
            Some(ItemId::Song(_)) => {
                let s = visible_song(c, id).await?;
                by_kind.push(("song", s.track.id.to_string()));
            }
            Some(ItemId::Album(..)) => by_kind.push(("album", id.to_owned())),
            Some(ItemId::Artist(_)) => by_kind.push(("artist", id.to_owned())),
            None => return Err(SubsonicError::NotFound("no such item")),
        }
    }
    if by_kind.is_empty() {
        return Err(SubsonicError::Missing("id"));
    }
    let user = c.user.id.clone();
    c.s.db
        .call(move |db| {
            for kind in ["song", "album", "artist"] {
                let list: Vec<String> = by_kind
                    .iter()
                    .filter(|(k, _)| *k == kind)
                    .map(|(_, id)| id.clone())
                    .collect();
                catalog::set_stars(db, &user, kind, &list, on, now())?;
            }
            Ok::<_, crate::library::LibraryError>(())
        })
        .await?;
    empty()
}

pub(super) async fn starred2(c: &Ctx) -> Result<Answer, SubsonicError> {
    let (songs, artists, artist_stars, album_stars) = c
        .query(|db, scope| {
            let song_stars = catalog::stars(db, scope.user_id, "song")?;
            let mut ids: Vec<(&String, &i64)> = song_stars.iter().collect();
            ids.sort_by(|a, b| b.1.cmp(a.1));
            let ids: Vec<TrackId> = ids.iter().filter_map(|(id, _)| id.parse().ok()).collect();
            let songs = catalog::songs_by_id(db, scope, &ids)?;
            let artist_stars = catalog::stars(db, scope.user_id, "artist")?;
            let mut artists = Vec::new();
            for id in artist_stars.keys() {
                if let Some(ItemId::Artist(name)) = ids::parse(id) {
                    artists.extend(catalog::artist(db, scope, &name)?);
                }
            }
            let album_stars = catalog::stars(db, scope.user_id, "album")?;
            Ok((songs, artists, artist_stars, album_stars))
        })
        .await?;
    let albums = starred_album_rows(c).await?;
    let artist: Vec<Value> = artists
        .iter()
        .map(|a| {
            Value::Object(items::artist(
                a,
                artist_stars.get(&ids::artist_id(&a.name)).copied(),
            ))
        })
        .collect();
    let album: Vec<Value> = albums
        .iter()
        .map(|a| {
            Value::Object(items::album(
                a,
                album_stars.get(&ids::album_id(&a.artist, &a.name)).copied(),
            ))
        })
        .collect();
    let song: Vec<Value> = songs.iter().map(items::song).collect();
    one(
        "starred2",
        json!({"artist": artist, "album": album, "song": song}),
    )
}
