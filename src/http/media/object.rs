//! Gate 2, which tracks own the object: what an object path names, its kind, content type and
//! cache lifetime.

use warp::http::HeaderValue;

use crate::library::{OwnerKey, TrackAccess, TrackId};
use crate::storage::BlobKey;

use super::*;

// Gate 2: which tracks own the object.

/// What a path names; decides the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `master.m3u8` or `{kbps}k.m3u8`.
    Playlist,
    /// `seg/{sha256}.mp4` (init), `seg/{sha256}.m4s`, or a progressive `seg/{sha256}.m4a`.
    Segment,
    /// `originals/ab/cd/{sha256}.{ext}`.
    Original,
    /// `covers/ab/cd/{sha256}.{ext}`.
    Cover,
    /// `tracks/{id}/hls/peaks/{sha256}.json`: waveform peaks, content-addressed like segments.
    Peaks,
}

/// A recognised object path.
#[derive(Debug, Clone)]
pub(super) struct Object {
    pub(super) key: BlobKey,
    pub(super) kind: Kind,
    pub(super) owner: OwnerKey,
}

pub(super) fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Object {
    /// The shapes the packager and ingestion write; anything else is a 404 before any lookup.
    pub(super) fn parse(path: &str) -> Option<Object> {
        Object::of(BlobKey::parse(path).ok()?)
    }

    /// [`Object::parse`] of a key already checked.
    pub(super) fn of(key: BlobKey) -> Option<Object> {
        let path = key.as_str();
        let parts: Vec<&str> = path.split('/').collect();
        let (kind, owner) = match parts.as_slice() {
            ["tracks", id, "hls", file] => {
                let playlist = *file == "master.m3u8"
                    || file.strip_suffix("k.m3u8").is_some_and(|k| {
                        (1..=4).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_digit())
                    });
                playlist.then_some((Kind::Playlist, canonical_id(id)?))?
            }
            ["tracks", id, "hls", "seg", file] => {
                let (sha, ext) = file.split_once('.')?;
                (is_sha256(sha) && matches!(ext, "mp4" | "m4s" | "m4a"))
                    .then_some((Kind::Segment, canonical_id(id)?))?
            }
            ["tracks", id, "hls", "peaks", file] => {
                let sha = file.strip_suffix(".json")?;
                is_sha256(sha).then_some((Kind::Peaks, canonical_id(id)?))?
            }
            ["originals", ..] => {
                let owner = OwnerKey::Original {
                    sha256: key.content_hash()?.to_owned(),
                    key: path.to_owned(),
                };
                (parts.len() == 4).then_some((Kind::Original, owner))?
            }
            ["covers", ..] => {
                key.content_hash()?;
                (parts.len() == 4).then_some((Kind::Cover, OwnerKey::Cover(path.to_owned())))?
            }
            _ => return None,
        };
        Some(Object { key, kind, owner })
    }

    pub(super) fn ext(&self) -> &str {
        let file = self.key.as_str().rsplit('/').next().unwrap_or_default();
        file.rsplit_once('.').map_or("", |(_, e)| e)
    }

    /// The MIME type; an original's comes from its track (ingestion probed the content).
    pub(super) fn content_type(&self, track_type: &str) -> HeaderValue {
        let by_ext = match (self.kind, self.ext()) {
            (Kind::Playlist, _) => "application/vnd.apple.mpegurl",
            (Kind::Segment, _) => "audio/mp4",
            (Kind::Peaks, _) => "application/json",
            (Kind::Original, _) if !track_type.is_empty() => {
                return HeaderValue::from_str(track_type)
                    .unwrap_or(HeaderValue::from_static("application/octet-stream"));
            }
            (Kind::Original, "mp3") => "audio/mpeg",
            (Kind::Original, "flac") => "audio/flac",
            (Kind::Original, "ogg" | "opus" | "oga") => "audio/ogg",
            (Kind::Original, "m4a" | "mp4" | "aac") => "audio/mp4",
            (Kind::Original, "wav") => "audio/wav",
            (Kind::Cover, "png") => "image/png",
            (Kind::Cover, "webp") => "image/webp",
            (Kind::Cover, "gif") => "image/gif",
            (Kind::Cover, _) => "image/jpeg",
            _ => "application/octet-stream",
        };
        HeaderValue::from_static(by_ext)
    }

    pub(super) fn cache_control(&self, private: bool) -> HeaderValue {
        // A year in shared caches outlives any visibility change; playlists (a minute) and
        // segments (a day, behind tokens) keep the CDN useful for private listeners.
        HeaderValue::from_static(match self.kind {
            Kind::Original | Kind::Cover if private => CC_PRIVATE,
            Kind::Playlist => CC_PLAYLIST,
            Kind::Segment | Kind::Peaks => CC_SEGMENT,
            Kind::Original | Kind::Cover => CC_LONG,
        })
    }
}

/// Only the canonical (lower-case, hyphenated) id: it is the one in blob keys and CDN tags.
pub(super) fn canonical_id(id: &str) -> Option<OwnerKey> {
    let parsed: TrackId = id.parse().ok()?;
    (parsed.as_str() == id).then(|| OwnerKey::Track(id.to_owned()))
}

/// `track-{id}` for each owner, comma-separated: a `CDN-Tag` an operator can purge by by
/// hand (the takedown job purges by URL).
pub(super) fn cdn_tags(owners: &[TrackAccess]) -> Option<HeaderValue> {
    if owners.is_empty() {
        return None;
    }
    let tags: Vec<String> = owners.iter().map(|o| format!("track-{}", o.id)).collect();
    HeaderValue::from_str(&tags.join(",")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const ID: &str = "0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b";

    #[test]
    fn object_paths_map_to_their_owner_and_kind() {
        let cases = [
            (format!("tracks/{ID}/hls/master.m3u8"), Kind::Playlist),
            (format!("tracks/{ID}/hls/128k.m3u8"), Kind::Playlist),
            (format!("tracks/{ID}/hls/seg/{SHA}.mp4"), Kind::Segment),
            (format!("tracks/{ID}/hls/seg/{SHA}.m4s"), Kind::Segment),
            (format!("tracks/{ID}/hls/peaks/{SHA}.json"), Kind::Peaks),
            (format!("originals/e3/b0/{SHA}.flac"), Kind::Original),
            (format!("covers/e3/b0/{SHA}.jpg"), Kind::Cover),
        ];
        for (p, kind) in cases {
            let o = Object::parse(&p).unwrap_or_else(|| panic!("{p}"));
            assert_eq!(o.kind, kind, "{p}");
        }
        assert_eq!(
            Object::parse(&format!("originals/e3/b0/{SHA}.flac"))
                .unwrap()
                .owner,
            OwnerKey::Original {
                sha256: SHA.into(),
                key: format!("originals/e3/b0/{SHA}.flac")
            }
        );
        for bad in [
            format!("tracks/{ID}/hls/x.m3u8"),
            format!("tracks/{ID}/hls/12345k.m3u8"),
            format!("tracks/{ID}/hls/seg/{SHA}.ts"),
            format!("tracks/{ID}/hls/seg/abc.m4s"),
            format!("tracks/{}/hls/master.m3u8", ID.to_uppercase()),
            "tracks/12/hls/master.m3u8".into(),
            format!("tracks/{ID}/original.flac"),
            format!("originals/e3/b1/{SHA}.flac"),
            format!("originals/x/e3/b0/{SHA}.flac"),
            format!("covers/{SHA}.jpg"),
            "signing.key".into(),
            "veza.db".into(),
        ] {
            assert!(Object::parse(&bad).is_none(), "{bad}");
        }
    }
}
