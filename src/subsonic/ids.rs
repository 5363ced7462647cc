//! Ids of derived items. Songs are track ids (UUIDs). Artists and albums exist only as tags,
//! so their ids carry the names themselves (`ar-` / `al-` + base64url): stable while the tags
//! stay, never sequential integers, and decoded without a lookup table.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Between an album's artist and its name inside an album id (a control character no tag
/// editor writes).
const SEP: char = '\u{1f}';

/// What an id names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemId {
    /// A lead artist by name.
    Artist(String),
    /// An album: (lead artist, album name).
    Album(String, String),
    /// A track.
    Song(crate::library::TrackId),
}

/// The id of a lead artist.
pub fn artist_id(name: &str) -> String {
    format!("ar-{}", URL_SAFE_NO_PAD.encode(name))
}

/// The id of an album.
pub fn album_id(artist: &str, album: &str) -> String {
    format!(
        "al-{}",
        URL_SAFE_NO_PAD.encode(format!("{artist}{SEP}{album}"))
    )
}

/// Parses any id; `None` for one Veza never gave out.
pub fn parse(id: &str) -> Option<ItemId> {
    let text = |rest: &str| {
        URL_SAFE_NO_PAD
            .decode(rest)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
    };
    if let Some(rest) = id.strip_prefix("ar-") {
        return text(rest).map(ItemId::Artist);
    }
    if let Some(rest) = id.strip_prefix("al-") {
        let t = text(rest)?;
        let (a, b) = t.split_once(SEP)?;
        return Some(ItemId::Album(a.to_owned(), b.to_owned()));
    }
    id.parse().ok().map(ItemId::Song)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_refuse_strangers() {
        let a = artist_id("Sigur Rós");
        assert!(a.starts_with("ar-"));
        assert_eq!(parse(&a), Some(ItemId::Artist("Sigur Rós".into())));
        let b = album_id("AC/DC", "Back in Black");
        assert_eq!(
            parse(&b),
            Some(ItemId::Album("AC/DC".into(), "Back in Black".into()))
        );
        assert_ne!(album_id("a", "bc"), album_id("ab", "c"));
        assert_eq!(parse("12"), None);
        assert_eq!(parse("al-!!"), None);
        assert_eq!(parse("al-YWJj"), None); // no separator
    }
}
