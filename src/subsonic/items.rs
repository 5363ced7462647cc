//! Songs, albums, artists and playlists as the OpenSubsonic schemas shape them (`Child`,
//! `AlbumID3`, `ArtistID3`, `Playlist`), as JSON objects the response renders in either form.

use serde_json::{Map, Value, json};

use super::ids::{album_id, artist_id};
use crate::library::Track;
use crate::library::catalog::{Album, Artist, Song};
use crate::library::playlists::Playlist;

/// Shown for an empty artist tag.
const UNKNOWN_ARTIST: &str = "[Unknown Artist]";
/// Shown for an empty album tag.
const UNKNOWN_ALBUM: &str = "[Unknown Album]";

/// `x` to `places` decimals: players need no more (gains in dB to 0.01, peaks to 0.0001).
fn round(x: f64, places: i32) -> f64 {
    let k = 10f64.powi(places);
    (x * k).round() / k
}

/// Unix seconds as ISO 8601 (UTC).
pub fn iso(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

fn or(name: &str, unknown: &str) -> String {
    if name.is_empty() {
        unknown.into()
    } else {
        name.into()
    }
}

/// The album a track is filed under: (lead artist, album).
fn album_of(t: &Track) -> (&str, &str) {
    let lead = if t.album_artist.is_empty() {
        &t.artist
    } else {
        &t.album_artist
    };
    (lead, &t.album)
}

fn put(m: &mut Map<String, Value>, k: &str, v: impl Into<Value>) {
    m.insert(k.into(), v.into());
}

fn put_opt<T: Into<Value>>(m: &mut Map<String, Value>, k: &str, v: Option<T>) {
    if let Some(v) = v {
        m.insert(k.into(), v.into());
    }
}

/// A song (`Child`).
pub fn song(s: &Song) -> Value {
    let t = &s.track;
    let (lead, album) = album_of(t);
    let suffix = t
        .original_key
        .as_str()
        .rsplit_once('.')
        .map_or("", |(_, e)| e)
        .to_owned();
    let mut m = Map::new();
    put(&mut m, "id", t.id.as_str());
    put(&mut m, "parent", album_id(lead, album));
    put(&mut m, "isDir", false);
    put(&mut m, "title", t.title.clone());
    put(&mut m, "album", or(&t.album, UNKNOWN_ALBUM));
    put(&mut m, "artist", or(&t.artist, UNKNOWN_ARTIST));
    put_opt(&mut m, "track", t.track_number);
    put_opt(&mut m, "year", t.year);
    if !t.genre.is_empty() {
        put(&mut m, "genre", t.genre.clone());
    }
    if t.has_cover {
        put(&mut m, "coverArt", t.id.as_str());
    }
    put(&mut m, "size", t.size_bytes);
    put(&mut m, "contentType", t.content_type.clone());
    put(&mut m, "suffix", suffix);
    put_opt(&mut m, "duration", t.duration_ms.map(|d| (d + 500) / 1000));
    put_opt(&mut m, "bitRate", t.bitrate_kbps);
    put_opt(&mut m, "samplingRate", t.sample_rate);
    put_opt(&mut m, "channelCount", t.channels);
    put(&mut m, "isVideo", false);
    put(&mut m, "playCount", s.plays);
    put_opt(&mut m, "played", s.played.map(iso));
    put_opt(&mut m, "discNumber", t.disc_number);
    put(&mut m, "created", iso(t.created_at));
    put_opt(&mut m, "starred", s.starred.map(iso));
    put(&mut m, "albumId", album_id(lead, album));
    put(&mut m, "artistId", artist_id(lead));
    put(&mut m, "type", "music");
    put(&mut m, "mediaType", "song");
    if let Some(l) = &t.loudness {
        // ReplayGain 2.0 values measured at ingest (reference −18 LUFS).
        m.insert(
            "replayGain".into(),
            json!({
                "trackGain": round(l.track_gain_db, 2),
                "trackPeak": round(l.track_peak, 4),
                "albumGain": round(l.album_gain_db, 2),
                "albumPeak": round(l.album_peak, 4),
            }),
        );
    }
    Value::Object(m)
}

/// An album (`AlbumID3`); `starred` from the listener's stars.
pub fn album(a: &Album, starred: Option<i64>) -> Map<String, Value> {
    let mut m = Map::new();
    put(&mut m, "id", album_id(&a.artist, &a.name));
    put(&mut m, "name", or(&a.name, UNKNOWN_ALBUM));
    put(&mut m, "artist", or(&a.artist, UNKNOWN_ARTIST));
    put(&mut m, "artistId", artist_id(&a.artist));
    put_opt(
        &mut m,
        "coverArt",
        a.cover.as_ref().map(|c| c.as_str().to_owned()),
    );
    put(&mut m, "songCount", a.songs);
    put(&mut m, "duration", (a.duration_ms + 500) / 1000);
    put(&mut m, "playCount", a.plays);
    put(&mut m, "created", iso(a.created));
    put_opt(&mut m, "starred", starred.map(iso));
    put_opt(&mut m, "year", a.year);
    if !a.genre.is_empty() {
        put(&mut m, "genre", a.genre.clone());
    }
    put_opt(&mut m, "played", a.played.map(iso));
    m
}

/// An album as a folder (`Child` with `isDir`), for folder-based browsing and `search2`.
pub fn album_dir(a: &Album, starred: Option<i64>) -> Value {
    let mut m = Map::new();
    put(&mut m, "id", album_id(&a.artist, &a.name));
    put(&mut m, "parent", artist_id(&a.artist));
    put(&mut m, "isDir", true);
    put(&mut m, "title", or(&a.name, UNKNOWN_ALBUM));
    put(&mut m, "album", or(&a.name, UNKNOWN_ALBUM));
    put(&mut m, "artist", or(&a.artist, UNKNOWN_ARTIST));
    put_opt(&mut m, "year", a.year);
    put_opt(
        &mut m,
        "coverArt",
        a.cover.as_ref().map(|c| c.as_str().to_owned()),
    );
    put(&mut m, "created", iso(a.created));
    put_opt(&mut m, "starred", starred.map(iso));
    Value::Object(m)
}

/// An artist (`ArtistID3`).
pub fn artist(a: &Artist, starred: Option<i64>) -> Map<String, Value> {
    let mut m = Map::new();
    put(&mut m, "id", artist_id(&a.name));
    put(&mut m, "name", or(&a.name, UNKNOWN_ARTIST));
    put_opt(
        &mut m,
        "coverArt",
        a.cover.as_ref().map(|c| c.as_str().to_owned()),
    );
    put(&mut m, "albumCount", a.albums);
    put_opt(&mut m, "starred", starred.map(iso));
    m
}

/// An artist in folder-based listings (`Artist`).
pub fn artist_entry(a: &Artist, starred: Option<i64>) -> Value {
    let mut m = Map::new();
    put(&mut m, "id", artist_id(&a.name));
    put(&mut m, "name", or(&a.name, UNKNOWN_ARTIST));
    put_opt(&mut m, "starred", starred.map(iso));
    Value::Object(m)
}

/// Artists grouped by initial (`IndexID3` / `Index`), articles ignored.
pub fn indexes(artists: &[Artist], entry: impl Fn(&Artist) -> Value) -> Vec<Value> {
    let mut groups: Vec<(String, Vec<Value>)> = Vec::new();
    for a in artists {
        let name = a.name.trim();
        let sortable = IGNORED_ARTICLES
            .split(' ')
            .find_map(|art| name.strip_prefix(art).and_then(|r| r.strip_prefix(' ')))
            .unwrap_or(name);
        let key = sortable
            .chars()
            .next()
            .filter(|c| c.is_alphabetic())
            .map_or("#".to_owned(), |c| c.to_uppercase().collect());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, list)) => list.push(entry(a)),
            None => groups.push((key, vec![entry(a)])),
        }
    }
    groups.sort_by(|a, b| a.0.cmp(&b.0));
    groups
        .into_iter()
        .map(|(name, artist)| json!({"name": name, "artist": artist}))
        .collect()
}

/// Leading words ignored when indexing artists.
pub const IGNORED_ARTICLES: &str = "The El La Los Las Le Les";

/// A playlist (`Playlist`).
pub fn playlist(p: &Playlist) -> Map<String, Value> {
    let mut m = Map::new();
    put(&mut m, "id", p.id.clone());
    put(&mut m, "name", p.name.clone());
    if !p.comment.is_empty() {
        put(&mut m, "comment", p.comment.clone());
    }
    put(&mut m, "owner", p.owner.clone());
    put(&mut m, "public", p.public);
    put(&mut m, "songCount", p.songs);
    put(&mut m, "duration", (p.duration_ms + 500) / 1000);
    put(&mut m, "created", iso(p.created_at));
    put(&mut m, "changed", iso(p.updated_at));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artists_index_by_initial_without_articles() {
        let a = |n: &str| Artist {
            name: n.into(),
            albums: 1,
            cover: None,
        };
        let idx = indexes(
            &[a("The Beatles"), a("abba"), a("Björk"), a("808 State")],
            |x| json!(x.name),
        );
        let names: Vec<&str> = idx.iter().map(|g| g["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["#", "A", "B"]);
        assert_eq!(idx[2]["artist"], json!(["The Beatles", "Björk"]));
    }

    #[test]
    fn iso_times_are_utc() {
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso(1_767_225_600), "2026-01-01T00:00:00Z");
    }
}
