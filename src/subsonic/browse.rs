//! Browsing: artists, albums, songs, genres, album lists, random songs and search, by ID3
//! tags (`getArtists`…) and as folders (`getIndexes`, `getMusicDirectory`).

use serde_json::{Map, Value, json};

use super::error::SubsonicError;
use super::ids::{self, ItemId};
use super::items;
use super::{Answer, Ctx, one};
use crate::library::TrackId;
use crate::library::catalog::{self, Album, AlbumOrder, Window};

/// Largest page a list call returns.
const MAX_SIZE: u32 = 500;

fn page(
    c: &Ctx,
    size: &'static str,
    offset: &'static str,
    default: u32,
) -> Result<Window, SubsonicError> {
    Ok(Window {
        size: c.p.num(size, default)?.min(MAX_SIZE),
        offset: c.p.num(offset, 0)?,
    })
}

/// The listener's stars of a kind.
async fn stars(
    c: &Ctx,
    kind: &'static str,
) -> Result<std::collections::HashMap<String, i64>, SubsonicError> {
    c.query(move |db, s| catalog::stars(db, s.user_id, kind))
        .await
}

fn artist_of(id: &str) -> Result<String, SubsonicError> {
    match ids::parse(id) {
        Some(ItemId::Artist(name)) => Ok(name),
        _ => Err(SubsonicError::NotFound("no such artist")),
    }
}

fn album_of(id: &str) -> Result<(String, String), SubsonicError> {
    match ids::parse(id) {
        Some(ItemId::Album(a, b)) => Ok((a, b)),
        _ => Err(SubsonicError::NotFound("no such album")),
    }
}

pub(super) async fn indexes(c: &Ctx) -> Result<Answer, SubsonicError> {
    let artists = c.query(catalog::artists).await?;
    let starred = stars(c, "artist").await?;
    let index = items::indexes(&artists, |a| {
        items::artist_entry(a, starred.get(&ids::artist_id(&a.name)).copied())
    });
    one(
        "indexes",
        json!({
            "ignoredArticles": items::IGNORED_ARTICLES,
            "lastModified": crate::clock::now() * 1000,
            "index": index,
        }),
    )
}

pub(super) async fn artists(c: &Ctx) -> Result<Answer, SubsonicError> {
    let artists = c.query(catalog::artists).await?;
    let starred = stars(c, "artist").await?;
    let index = items::indexes(&artists, |a| {
        Value::Object(items::artist(
            a,
            starred.get(&ids::artist_id(&a.name)).copied(),
        ))
    });
    one(
        "artists",
        json!({"ignoredArticles": items::IGNORED_ARTICLES, "index": index}),
    )
}

pub(super) async fn artist(c: &Ctx) -> Result<Answer, SubsonicError> {
    let name = artist_of(c.p.require("id")?)?;
    let (artist, albums) = c
        .query(move |db, s| {
            let a = catalog::artist(db, s, &name)?;
            let all = Window {
                offset: 0,
                size: u32::MAX,
            };
            let albums = catalog::albums(db, s, &AlbumOrder::ByYear(0, 9999), Some(&name), all)?;
            let untagged = catalog::albums(db, s, &AlbumOrder::ByName, Some(&name), all)?;
            // Albums without a year come after the dated ones.
            let mut list = albums;
            list.extend(untagged.into_iter().filter(|x| x.year.is_none()));
            Ok((a, list))
        })
        .await?;
    let artist = artist.ok_or(SubsonicError::NotFound("no such artist"))?;
    let starred_artists = stars(c, "artist").await?;
    let starred_albums = stars(c, "album").await?;
    let mut m = items::artist(
        &artist,
        starred_artists.get(&ids::artist_id(&artist.name)).copied(),
    );
    m.insert(
        "album".into(),
        album_values(&albums, &starred_albums).into(),
    );
    one("artist", m)
}

fn album_values(albums: &[Album], starred: &std::collections::HashMap<String, i64>) -> Vec<Value> {
    albums
        .iter()
        .map(|a| {
            Value::Object(items::album(
                a,
                starred.get(&ids::album_id(&a.artist, &a.name)).copied(),
            ))
        })
        .collect()
}

pub(super) async fn album(c: &Ctx) -> Result<Answer, SubsonicError> {
    let (artist, name) = album_of(c.p.require("id")?)?;
    let (album, songs) = c
        .query(move |db, s| {
            Ok((
                catalog::album(db, s, &artist, &name)?,
                catalog::album_songs(db, s, &artist, &name)?,
            ))
        })
        .await?;
    let album = album.ok_or(SubsonicError::NotFound("no such album"))?;
    let starred = stars(c, "album").await?;
    let mut m = items::album(
        &album,
        starred
            .get(&ids::album_id(&album.artist, &album.name))
            .copied(),
    );
    m.insert(
        "song".into(),
        songs.iter().map(items::song).collect::<Vec<_>>().into(),
    );
    one("album", m)
}

pub(super) async fn album_list2(c: &Ctx) -> Result<Answer, SubsonicError> {
    let kind = c.p.require("type")?;
    let window = page(c, "size", "offset", 10)?;
    let order = match kind {
        "random" => AlbumOrder::Random,
        "newest" => AlbumOrder::Newest,
        "frequent" => AlbumOrder::Frequent,
        "recent" => AlbumOrder::Recent,
        "highest" => AlbumOrder::Highest,
        "alphabeticalByName" => AlbumOrder::ByName,
        "alphabeticalByArtist" => AlbumOrder::ByArtist,
        "byYear" => {
            let from = c.p.require("fromYear")?;
            let to = c.p.require("toYear")?;
            let year = |name: &'static str, v: &str| {
                v.trim()
                    .parse::<u32>()
                    .map_err(|_| SubsonicError::BadParam {
                        name,
                        why: format!("{v:?} is not a year"),
                    })
            };
            AlbumOrder::ByYear(year("fromYear", from)?, year("toYear", to)?)
        }
        "byGenre" => AlbumOrder::ByGenre(c.p.require("genre")?.to_owned()),
        "starred" => return starred_albums(c, window).await,
        other => {
            return Err(SubsonicError::BadParam {
                name: "type",
                why: format!(
                    "{:?} is not an album list type",
                    other.chars().take(40).collect::<String>()
                ),
            });
        }
    };
    let albums = c
        .query(move |db, s| catalog::albums(db, s, &order, None, window))
        .await?;
    let starred = stars(c, "album").await?;
    one(
        "albumList2",
        json!({"album": album_values(&albums, &starred)}),
    )
}

async fn starred_albums(c: &Ctx, window: Window) -> Result<Answer, SubsonicError> {
    let albums = starred_album_rows(c).await?;
    let starred = stars(c, "album").await?;
    let list: Vec<Album> = albums
        .into_iter()
        .skip(window.offset as usize)
        .take(window.size as usize)
        .collect();
    one(
        "albumList2",
        json!({"album": album_values(&list, &starred)}),
    )
}

/// The listener's starred albums that still have tracks in scope, newest star first.
pub(super) async fn starred_album_rows(c: &Ctx) -> Result<Vec<Album>, SubsonicError> {
    let mut starred: Vec<(String, i64)> = stars(c, "album").await?.into_iter().collect();
    starred.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let keys: Vec<(String, String)> = starred
        .iter()
        .filter_map(|(id, _)| match ids::parse(id) {
            Some(ItemId::Album(a, b)) => Some((a, b)),
            _ => None,
        })
        .collect();
    c.query(move |db, s| {
        let mut out = Vec::new();
        for (a, b) in &keys {
            out.extend(catalog::album(db, s, a, b)?);
        }
        Ok(out)
    })
    .await
}

pub(super) async fn music_directory(c: &Ctx) -> Result<Answer, SubsonicError> {
    let id = c.p.require("id")?.to_owned();
    match ids::parse(&id) {
        Some(ItemId::Artist(name)) => {
            let n = name.clone();
            let (artist, albums) = c
                .query(move |db, s| {
                    let all = Window {
                        offset: 0,
                        size: u32::MAX,
                    };
                    Ok((
                        catalog::artist(db, s, &n)?,
                        catalog::albums(db, s, &AlbumOrder::ByName, Some(&n), all)?,
                    ))
                })
                .await?;
            let artist = artist.ok_or(SubsonicError::NotFound("no such artist"))?;
            let starred = stars(c, "album").await?;
            let children: Vec<Value> = albums
                .iter()
                .map(|a| {
                    items::album_dir(a, starred.get(&ids::album_id(&a.artist, &a.name)).copied())
                })
                .collect();
            let mut m = Map::new();
            m.insert("id".into(), id.into());
            m.insert("name".into(), items::artist(&artist, None)["name"].clone());
            m.insert("child".into(), children.into());
            one("directory", m)
        }
        Some(ItemId::Album(a, b)) => {
            let (album, songs) = c
                .query(move |db, s| {
                    Ok((
                        catalog::album(db, s, &a, &b)?,
                        catalog::album_songs(db, s, &a, &b)?,
                    ))
                })
                .await?;
            let album = album.ok_or(SubsonicError::NotFound("no such album"))?;
            let shown = items::album(&album, None);
            let mut m = Map::new();
            m.insert("id".into(), id.into());
            m.insert("parent".into(), shown["artistId"].clone());
            m.insert("name".into(), shown["name"].clone());
            m.insert(
                "child".into(),
                songs.iter().map(items::song).collect::<Vec<_>>().into(),
            );
            one("directory", m)
        }
        _ => Err(SubsonicError::NotFound("no such directory")),
    }
}

/// A song `c`'s user may read, with their facts.
pub(super) async fn visible_song(c: &Ctx, id: &str) -> Result<catalog::Song, SubsonicError> {
    let id: TrackId = id
        .parse()
        .map_err(|_| SubsonicError::NotFound("no such song"))?;
    // The track service's rule decides; the catalog only adds the listener's facts.
    c.s.tracks.get(c.viewer, id.clone()).await?;
    let user = c.user.id.clone();
    c.s.db
        .call(move |db| catalog::song(db, &user, &id))
        .await?
        .ok_or(SubsonicError::NotFound("no such song"))
}

pub(super) async fn song(c: &Ctx) -> Result<Answer, SubsonicError> {
    let s = visible_song(c, c.p.require("id")?).await?;
    one("song", items::song(&s))
}

pub(super) async fn random_songs(c: &Ctx) -> Result<Answer, SubsonicError> {
    let size = c.p.num("size", 10)?.min(MAX_SIZE);
    let genre = c.p.get("genre").map(str::to_owned);
    let years = (c.p.opt_num("fromYear")?, c.p.opt_num("toYear")?);
    let songs = c
        .query(move |db, s| catalog::random_songs(db, s, size, genre.as_deref(), years))
        .await?;
    one(
        "randomSongs",
        json!({"song": songs.iter().map(items::song).collect::<Vec<_>>()}),
    )
}

pub(super) async fn genres(c: &Ctx) -> Result<Answer, SubsonicError> {
    let list = c.query(catalog::genres).await?;
    let genre: Vec<Value> = list
        .into_iter()
        .map(|(g, songs, albums)| json!({"value": g, "songCount": songs, "albumCount": albums}))
        .collect();
    one("genres", json!({"genre": genre}))
}

pub(super) async fn search(c: &Ctx, id3: bool) -> Result<Answer, SubsonicError> {
    // Clients that sync the whole library send `query=""` (quotes included) or nothing.
    let q =
        c.p.get("query")
            .unwrap_or("")
            .trim()
            .trim_matches('"')
            .to_owned();
    let windows = [
        page(c, "artistCount", "artistOffset", 20)?,
        page(c, "albumCount", "albumOffset", 20)?,
        page(c, "songCount", "songOffset", 20)?,
    ];
    let found = c
        .query(move |db, s| catalog::search(db, s, &q, windows))
        .await?;
    let starred_artists = stars(c, "artist").await?;
    let starred_albums = stars(c, "album").await?;
    let star_of = |a: &Album| {
        starred_albums
            .get(&ids::album_id(&a.artist, &a.name))
            .copied()
    };
    let songs: Vec<Value> = found.songs.iter().map(items::song).collect();
    let (key, artists, albums): (&str, Vec<Value>, Vec<Value>) = if id3 {
        (
            "searchResult3",
            found
                .artists
                .iter()
                .map(|a| {
                    Value::Object(items::artist(
                        a,
                        starred_artists.get(&ids::artist_id(&a.name)).copied(),
                    ))
                })
                .collect(),
            found
                .albums
                .iter()
                .map(|a| Value::Object(items::album(a, star_of(a))))
                .collect(),
        )
    } else {
        (
            "searchResult2",
            found
                .artists
                .iter()
                .map(|a| {
                    items::artist_entry(a, starred_artists.get(&ids::artist_id(&a.name)).copied())
                })
                .collect(),
            found
                .albums
                .iter()
                .map(|a| items::album_dir(a, star_of(a)))
                .collect(),
        )
    };
    one(
        key,
        json!({"artist": artists, "album": albums, "song": songs}),
    )
}
