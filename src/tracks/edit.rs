//! What an edit may change, and the checks it must pass before it reaches the database.

use crate::library::LibraryError;
use crate::library::store::TrackChange;

/// Longest title, artist or album, in characters.
const MAX_TEXT_CHARS: usize = 500;
/// Most tags on a track.
const MAX_TAGS: usize = 32;
/// Longest tag, in characters.
const MAX_TAG_CHARS: usize = 64;

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

/// The change trimmed and checked, or the first field that is wrong.
pub fn check(change: TrackChange) -> Result<TrackChange, LibraryError> {
    {
        let tags = match change.tags {
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
            title: text(change.title, "title", false)?,
            artist: text(change.artist, "artist", true)?,
            album: text(change.album, "album", true)?,
            track_number: change.track_number,
            visibility: change.visibility,
            tags,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_are_trimmed_and_bounded() {
        let ok = TrackChange {
            title: Some("  Blue  ".into()),
            artist: Some(" ".into()),
            tags: Some(vec![" jazz ".into()]),
            ..TrackChange::default()
        };
        let ok = check(ok).unwrap();
        assert_eq!(ok.title.as_deref(), Some("Blue"));
        assert_eq!(ok.artist.as_deref(), Some(""));
        assert_eq!(ok.tags, Some(vec!["jazz".to_owned()]));
        for (edit, field) in [
            (
                TrackChange {
                    title: Some(" ".into()),
                    ..Default::default()
                },
                "title",
            ),
            (
                TrackChange {
                    album: Some("x".repeat(501)),
                    ..Default::default()
                },
                "album",
            ),
            (
                TrackChange {
                    tags: Some(vec!["".into()]),
                    ..Default::default()
                },
                "tags",
            ),
            (
                TrackChange {
                    tags: Some(vec!["a".into(); 33]),
                    ..Default::default()
                },
                "tags",
            ),
        ] {
            match check(edit) {
                Err(LibraryError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }
}
