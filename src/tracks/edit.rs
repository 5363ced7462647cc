//! What an edit may change, and the checks it must pass before it reaches the database.

use crate::library::store::TrackChange;
use crate::library::{LibraryError, Visibility};

/// Longest title, artist or album, in characters.
const MAX_TEXT_CHARS: usize = 500;
/// Most tags on a track.
const MAX_TAGS: usize = 32;
/// Longest tag, in characters.
const MAX_TAG_CHARS: usize = 64;

/// An edit as asked for: `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct TrackEdit {
    /// New title (trimmed; must not be empty).
    pub title: Option<String>,
    /// New artist (trimmed; may be empty).
    pub artist: Option<String>,
    /// New album (trimmed; may be empty).
    pub album: Option<String>,
    /// New track number (`Some(None)` clears it).
    pub track_number: Option<Option<u32>>,
    /// New visibility.
    pub visibility: Option<Visibility>,
    /// Replaces the tags (each trimmed).
    pub tags: Option<Vec<String>>,
}

fn invalid(field: &'static str, message: &str) -> LibraryError {
    LibraryError::Invalid {
        field,
        message: message.into(),
    }
}

fn text(
    v: Option<String>,
    field: &'static str,
    allow_empty: bool,
) -> Result<Option<String>, LibraryError> {
    match v.map(|s| s.trim().to_owned()) {
        Some(s) if s.chars().count() > MAX_TEXT_CHARS => {
            Err(invalid(field, "at most 500 characters"))
        }
        Some(s) if s.is_empty() && !allow_empty => Err(invalid(field, "must not be empty")),
        other => Ok(other),
    }
}

impl TrackEdit {
    /// The checked change, or the first field that is wrong.
    pub fn validate(self) -> Result<TrackChange, LibraryError> {
        let tags = match self.tags {
            Some(tags) => {
                if tags.len() > MAX_TAGS {
                    return Err(invalid("tags", "at most 32"));
                }
                let mut clean = Vec::with_capacity(tags.len());
                for t in tags {
                    let t = t.trim().to_owned();
                    if !(1..=MAX_TAG_CHARS).contains(&t.chars().count()) {
                        return Err(invalid("tags", "each tag is 1-64 characters"));
                    }
                    clean.push(t);
                }
                Some(clean)
            }
            None => None,
        };
        Ok(TrackChange {
            title: text(self.title, "title", false)?,
            artist: text(self.artist, "artist", true)?,
            album: text(self.album, "album", true)?,
            track_number: self.track_number,
            visibility: self.visibility,
            tags,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_are_trimmed_and_bounded() {
        let ok = TrackEdit {
            title: Some("  Blue  ".into()),
            artist: Some(" ".into()),
            tags: Some(vec![" jazz ".into()]),
            ..TrackEdit::default()
        }
        .validate()
        .unwrap();
        assert_eq!(ok.title.as_deref(), Some("Blue"));
        assert_eq!(ok.artist.as_deref(), Some(""));
        assert_eq!(ok.tags, Some(vec!["jazz".to_owned()]));
        for (edit, field) in [
            (
                TrackEdit {
                    title: Some(" ".into()),
                    ..Default::default()
                },
                "title",
            ),
            (
                TrackEdit {
                    album: Some("x".repeat(501)),
                    ..Default::default()
                },
                "album",
            ),
            (
                TrackEdit {
                    tags: Some(vec!["".into()]),
                    ..Default::default()
                },
                "tags",
            ),
            (
                TrackEdit {
                    tags: Some(vec!["a".into(); 33]),
                    ..Default::default()
                },
                "tags",
            ),
        ] {
            match edit.validate() {
                Err(LibraryError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }
}
