//! What the database says the blob store must hold: each track's original (hash and size in
//! its row), its cover (hash in the key), and its HLS tree (master and media playlists read
//! from the store, segments named by their SHA-256). Shared by `backup` and `check`.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::storage::{BlobKey, BlobStore, StoreError};

/// The key prefixes Veza writes; anything else in a bucket (a Litestream replica beside the
/// blobs) is never an orphan of ours.
pub const OWN_PREFIXES: [&str; 3] = ["originals/", "covers/", "tracks/"];

/// What one referenced object must be.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    /// SHA-256, lower-case hex, when something records it.
    pub sha256: Option<String>,
    /// Size in bytes, when something records it.
    pub size: Option<u64>,
}

pub use crate::library::blobs::{Rows, TrackRow, load};

/// Every object the rows reference, and the playlists that could not be read.
#[derive(Debug, Default)]
pub struct Inventory {
    /// Referenced key → what it must be.
    pub expected: BTreeMap<String, Expected>,
    /// Playlists (key, why) that are missing or do not parse: their segments are unknown.
    pub unreadable: Vec<(String, String)>,
}

/// Builds the inventory; reads every playlist from `store`.
pub async fn build(rows: &Rows, store: &BlobStore) -> Result<Inventory, StoreError> {
    let mut inv = Inventory::default();
    let mut playlists: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for t in &rows.tracks {
        inv.expected.insert(
            t.original_key.clone(),
            Expected {
                sha256: Some(t.sha256.clone()),
                size: u64::try_from(t.size_bytes).ok(),
            },
        );
        if let Some(cover) = &t.cover_key {
            let sha = BlobKey::parse(cover)
                .ok()
                .and_then(|k| k.content_hash().map(str::to_owned));
            inv.expected.entry(cover.clone()).or_insert(Expected {
                sha256: sha,
                size: None,
            });
        }
        if let Some(peaks) = &t.peaks_key {
            inv.expected.entry(peaks.clone()).or_insert(Expected {
                sha256: stem_hash(peaks),
                size: None,
            });
        }
        if let Some(master) = &t.hls_key {
            playlists
                .entry(t.id.clone())
                .or_default()
                .push(master.clone());
        }
    }
    for (_, key) in &rows.progressive {
        inv.expected.entry(key.clone()).or_insert(Expected {
            sha256: stem_hash(key),
            size: None,
        });
    }
    for (track, key) in &rows.renditions {
        if let Some(list) = playlists.get_mut(track) {
            list.push(key.clone());
        }
    }
    for list in playlists.values() {
        let mut queue: Vec<String> = list.clone();
        let mut seen = BTreeSet::new();
        while let Some(key) = queue.pop() {
            if !seen.insert(key.clone()) {
                continue;
            }
            let bytes = match read_all(store, &key).await {
                Ok(b) => b,
                Err(StoreError::NotFound(_)) => {
                    inv.unreadable.push((key, "missing".into()));
                    continue;
                }
                Err(StoreError::InvalidKey(m)) => {
                    inv.unreadable.push((key, m));
                    continue;
                }
                Err(e) => return Err(e),
            };
            inv.expected.insert(
                key.clone(),
                Expected {
                    sha256: Some(crate::encoding::hex(&Sha256::digest(&bytes))),
                    size: Some(bytes.len() as u64),
                },
            );
            let dir = key.rsplit_once('/').map_or("", |(d, _)| d);
            let uris = match playlist_uris(&bytes) {
                Ok(u) => u,
                Err(why) => {
                    inv.unreadable.push((key, why));
                    continue;
                }
            };
            for (uri, is_playlist) in uris {
                let child = format!("{dir}/{uri}");
                if BlobKey::parse(&child).is_err() || uri.contains("://") || uri.contains("..") {
                    inv.unreadable.push((key.clone(), format!("names {uri:?}")));
                    continue;
                }
                if is_playlist {
                    queue.push(child);
                } else {
                    inv.expected.entry(child.clone()).or_insert(Expected {
                        sha256: stem_hash(&child),
                        size: None,
                    });
                }
            }
        }
    }
    Ok(inv)
}

/// The URIs a playlist names, each with "is a playlist" (variants of a master).
fn playlist_uris(bytes: &[u8]) -> Result<Vec<(String, bool)>, String> {
    match m3u8_rs::parse_playlist_res(bytes) {
        Ok(m3u8_rs::Playlist::MasterPlaylist(m)) => {
            Ok(m.variants.into_iter().map(|v| (v.uri, true)).collect())
        }
        Ok(m3u8_rs::Playlist::MediaPlaylist(m)) => {
            let mut out = BTreeSet::new();
            for s in m.segments {
                if let Some(map) = s.map {
                    out.insert(map.uri);
                }
                out.insert(s.uri);
            }
            Ok(out.into_iter().map(|u| (u, false)).collect())
        }
        Err(_) => Err("not a playlist".into()),
    }
}

/// The SHA-256 a segment's file name carries (`…/<64 hex>.m4s`).
fn stem_hash(key: &str) -> Option<String> {
    let file = key.rsplit('/').next()?;
    let stem = file.split_once('.').map_or(file, |(s, _)| s);
    (stem.len() == 64 && stem.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then(|| stem.to_owned())
}

async fn read_all(store: &BlobStore, key: &str) -> Result<Vec<u8>, StoreError> {
    let key = BlobKey::parse(key)?;
    let mut obj = store.get(&key, None).await?;
    let mut out = Vec::with_capacity(usize::try_from(obj.size).unwrap_or(0));
    while let Some(chunk) = obj.body.next().await {
        out.extend_from_slice(&chunk.map_err(|e| StoreError::Body(e.to_string()))?);
    }
    Ok(out)
}

/// Streams an object through SHA-256; (size, hash).
pub async fn hash_object(store: &BlobStore, key: &BlobKey) -> Result<(u64, String), StoreError> {
    let mut obj = store.get(key, None).await?;
    let mut h = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = obj.body.next().await {
        let chunk = chunk.map_err(|e| StoreError::Body(e.to_string()))?;
        size += chunk.len() as u64;
        h.update(&chunk);
    }
    Ok((size, crate::encoding::hex(&h.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_64_hex_stems_are_hashes() {
        let sha = "a".repeat(64);
        assert_eq!(stem_hash(&format!("tracks/t/hls/seg/{sha}.m4s")), Some(sha));
        assert_eq!(stem_hash("tracks/t/hls/512k.m3u8"), None);
        assert_eq!(stem_hash(&format!("x/{}.m4s", "A".repeat(64))), None);
    }

    #[test]
    fn media_playlists_name_their_init_and_segments_once() {
        let text = b"#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:6\n#EXT-X-MAP:URI=\"i.mp4\"\n#EXTINF:6,\ns1.m4s\n#EXTINF:6,\ns2.m4s\n#EXT-X-ENDLIST\n";
        let uris = playlist_uris(text).unwrap();
        let names: Vec<&str> = uris.iter().map(|(u, _)| u.as_str()).collect();
        assert_eq!(names, ["i.mp4", "s1.m4s", "s2.m4s"]);
        assert!(uris.iter().all(|(_, p)| !p));
        assert!(playlist_uris(b"not a playlist").is_err());
    }
}
