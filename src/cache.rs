//! In-process caches in front of the database and the blob store, so the hot paths (origin
//! pulls, conditional revalidations, stream-URL issuance) do not queue on the one SQLite
//! connection or make a store round trip for facts that have not changed.
//!
//! Correctness rests on generations, not on timing: a reader takes the cache's generation
//! before it reads the database, and its result is kept only under that generation. Any track
//! write in this process bumps the generation after its commit ([`Caches::tracks_changed`]),
//! so no entry read before the write can be served after it, even one inserted late by a
//! racing reader. The TTL only bounds how long a change made by another process (a `veza` CLI
//! command) can go unseen.

use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prometheus::IntCounter;

use crate::accounts::User;
use crate::config::CacheConfig;
use crate::library::{OwnerKey, TrackAccess};
use crate::metrics::{CacheSubsystem as Subsystem, Metrics};
use crate::signing::SignedUrl;
use crate::storage::ObjectMeta;

/// A value and when, under which generation, it was stored.
#[derive(Clone)]
struct Entry<V> {
    value: V,
    stored: Instant,
    generation: u64,
}

/// A bounded cache (S3-FIFO eviction, by `quick_cache`) with a TTL, generations and
/// hit/miss counters. Disabled (every lookup a miss, nothing kept) when its size or TTL is 0.
pub struct TtlCache<K, V> {
    inner: Option<quick_cache::sync::Cache<K, Entry<V>>>,
    ttl: Duration,
    generation: AtomicU64,
    hits: IntCounter,
    misses: IntCounter,
}

impl<K, V> TtlCache<K, V>
where
    K: Eq + Hash + Clone,
    V: Clone,
{
    /// A cache of up to `entries` values, each kept at most `ttl`.
    pub fn new(subsystem: Subsystem, entries: usize, ttl: Duration, metrics: &Metrics) -> Self {
        let label = [subsystem.as_str()];
        TtlCache {
            inner: (entries > 0 && !ttl.is_zero()).then(|| quick_cache::sync::Cache::new(entries)),
            ttl,
            generation: AtomicU64::new(0),
            hits: metrics.cache_hits.with_label_values(&label),
            misses: metrics.cache_misses.with_label_values(&label),
        }
    }

    /// The generation to pass to [`TtlCache::insert`]: take it before reading the source.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The value for `key` if it is fresh, of the current generation, and `usable` accepts it.
    pub fn get_if(&self, key: &K, usable: impl FnOnce(&V) -> bool) -> Option<V> {
        let found = self.inner.as_ref().and_then(|c| c.get(key)).filter(|e| {
            e.generation == self.generation() && e.stored.elapsed() < self.ttl && usable(&e.value)
        });
        match found {
            Some(e) => {
                self.hits.inc();
                Some(e.value)
            }
            None => {
                self.misses.inc();
                None
            }
        }
    }

    /// The value for `key` if it is fresh and of the current generation.
    pub fn get(&self, key: &K) -> Option<V> {
        self.get_if(key, |_| true)
    }

    /// Keeps `value`, unless the cache was invalidated since `generation` was taken.
    pub fn insert(&self, key: K, value: V, generation: u64) {
        if let Some(c) = &self.inner
            && generation == self.generation()
        {
            c.insert(
                key,
                Entry {
                    value,
                    stored: Instant::now(),
                    generation,
                },
            );
        }
    }

    /// Forgets everything; lookups and inserts of earlier generations miss from now on.
    pub fn invalidate_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(c) = &self.inner {
            c.clear();
        }
    }
}

/// The stream-URL cache key: the same track, kind and (when tokens are IP-bound) viewer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamKey {
    /// Track id.
    pub track: String,
    /// The object signed: the HLS master, the original or a progressive rendition.
    pub object: String,
    /// The viewer's address when the token binds it.
    pub ip: Option<IpAddr>,
}

/// The app's caches. Cheap to share (`Arc` in `AppState`).
pub struct Caches {
    /// Track access facts by owner key; never caches "no such track".
    pub metadata: TtlCache<OwnerKey, Arc<[TrackAccess]>>,
    /// Signed stream URLs with the time they were signed (never a fallback-signed one: the
    /// primary may be back soon).
    pub stream_url: TtlCache<StreamKey, (SignedUrl, u64)>,
    /// Size and ETag of content-addressed blobs (segments, originals, covers never change).
    pub blob_head: TtlCache<String, ObjectMeta>,
    /// The user and expiry of a live API token, by the token's SHA-256 (never a miss: an
    /// unknown token always asks the database).
    pub tokens: TtlCache<Vec<u8>, (User, Option<i64>)>,
    /// The bytes of immutable `/media/` objects and of playlists (`media.cache_mb`).
    pub media_bytes: BytesCache,
}

/// Content-addressed blobs are immutable; an hour only bounds memory of deleted ones.
const BLOB_HEAD_TTL: Duration = Duration::from_secs(3600);

impl Caches {
    /// Builds the caches `cfg` and `media_bytes` (in bytes) ask for, counting into `metrics`.
    pub fn new(cfg: &CacheConfig, media_bytes: u64, metrics: &Metrics) -> Caches {
        let ttl = Duration::from_secs(cfg.metadata_ttl_secs);
        Caches {
            metadata: TtlCache::new(Subsystem::Metadata, cfg.max_entries, ttl, metrics),
            stream_url: TtlCache::new(Subsystem::StreamUrl, cfg.max_entries, ttl, metrics),
            blob_head: TtlCache::new(Subsystem::BlobHead, cfg.max_entries, BLOB_HEAD_TTL, metrics),
            tokens: TtlCache::new(Subsystem::ApiTokens, cfg.max_entries, ttl, metrics),
            media_bytes: BytesCache::new(media_bytes, ttl, metrics),
        }
    }

    /// Call after committing any change to a track (status, visibility, keys, deletion). Blob
    /// facts go too: re-packaging and deletion remove objects.
    pub fn tracks_changed(&self) {
        self.metadata.invalidate_all();
        self.stream_url.invalidate_all();
        self.blob_head.invalidate_all();
        self.media_bytes.mutable_changed();
    }
}

impl Caches {
    /// Call after committing any change to users or tokens (revoke, disable, role or password
    /// change, deletion): no cached token may authenticate after it.
    pub fn accounts_changed(&self) {
        self.tokens.invalidate_all();
    }
}

/// One object's bytes as `/media/` sends them.
#[derive(Clone)]
pub struct CachedObject {
    /// The whole object.
    pub bytes: Bytes,
    /// Its strong validator, quoted, when the store gave one.
    pub etag: Option<String>,
    /// For a mutable object (a playlist): the generation it was read under, and when.
    mutable: Option<(u64, Instant)>,
}

/// Weighs an entry by its bytes (plus its key), so the cap is a memory cap.
#[derive(Clone)]
struct ByWeight;

impl quick_cache::Weighter<String, CachedObject> for ByWeight {
    fn weight(&self, key: &String, val: &CachedObject) -> u64 {
        (val.bytes.len() + key.len()) as u64
    }
}

/// The bytes of `/media/` objects, capped in total size (S3-FIFO, so one-off pulls do not push
/// out the hot segments). Content-addressed objects never change under their key and are kept
/// until evicted; mutable ones (playlists) are dropped by [`Caches::tracks_changed`] and live
/// at most the metadata TTL (a change made by another process).
pub struct BytesCache {
    inner: Option<quick_cache::sync::Cache<String, CachedObject, ByWeight>>,
    max_object: u64,
    mutable_ttl: Duration,
    generation: AtomicU64,
    hits: IntCounter,
    misses: IntCounter,
}

/// Assumed mean entry size, for the cache's table sizing only (a segment is ~50–200 KB).
const MEAN_OBJECT: u64 = 64 * 1024;

impl BytesCache {
    /// A cache of at most `capacity` bytes; an object over a sixteenth of it (at most 16 MiB)
    /// is never kept. `mutable_ttl` bounds a playlist's life (0: playlists are not kept).
    pub fn new(capacity: u64, mutable_ttl: Duration, metrics: &Metrics) -> BytesCache {
        let label = [Subsystem::MediaBytes.as_str()];
        // Few shards: each holds a quarter of the capacity, so the largest object fits easily.
        let inner = (capacity > 0).then(|| {
            let opts = quick_cache::OptionsBuilder::new()
                .estimated_items_capacity((capacity / MEAN_OBJECT).max(16) as usize)
                .weight_capacity(capacity)
                .shards(4)
                .build()
                .expect("valid cache options");
            quick_cache::sync::Cache::with_options(
                opts,
                ByWeight,
                Default::default(),
                Default::default(),
            )
        });
        BytesCache {
            inner,
            max_object: (capacity / 16).min(16 * 1024 * 1024),
            mutable_ttl,
            generation: AtomicU64::new(0),
            hits: metrics.cache_hits.with_label_values(&label),
            misses: metrics.cache_misses.with_label_values(&label),
        }
    }

    /// Whether an object of `size` bytes would be kept.
    pub fn keeps(&self, size: u64) -> bool {
        self.inner.is_some() && size <= self.max_object
    }

    /// The generation to pass to [`BytesCache::insert`] for a mutable object: take it before
    /// reading the store.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The object at `key`, if kept (and, when mutable, still current).
    pub fn get(&self, key: &str) -> Option<CachedObject> {
        let found = self.inner.as_ref().and_then(|c| c.get(key)).filter(|o| {
            o.mutable.is_none_or(|(generation, stored)| {
                generation == self.generation() && stored.elapsed() < self.mutable_ttl
            })
        });
        match &found {
            Some(_) => self.hits.inc(),
            None => self.misses.inc(),
        }
        found
    }

    /// Keeps an object. `mutable` is the generation taken before a playlist was read (`None`
    /// for content-addressed objects, which cannot go stale).
    pub fn insert(&self, key: &str, bytes: Bytes, etag: Option<String>, mutable: Option<u64>) {
        let Some(c) = &self.inner else { return };
        if bytes.len() as u64 > self.max_object {
            return;
        }
        if let Some(g) = mutable
            && (g != self.generation() || self.mutable_ttl.is_zero())
        {
            return;
        }
        let mutable = mutable.map(|g| (g, Instant::now()));
        c.insert(
            key.to_owned(),
            CachedObject {
                bytes,
                etag,
                mutable,
            },
        );
    }

    /// Bytes held now.
    pub fn weight(&self) -> u64 {
        self.inner.as_ref().map_or(0, |c| c.weight())
    }

    /// Some track changed: no mutable object read before now may be served after it.
    pub fn mutable_changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

/// True when a URL signed at `now` for `expires_at` still has at least half its lifetime
/// (counted from `issued_at`) left: players get a URL good for a while yet.
pub fn mostly_fresh(issued_at: u64, expires_at: u64, now: u64) -> bool {
    let half = expires_at.saturating_sub(issued_at) / 2;
    now.saturating_add(half) < expires_at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(m: &Metrics, name: &str, sub: &str) -> u64 {
        let text = m.render().unwrap();
        let line = format!("veza_cache_{name}_total{{subsystem=\"{sub}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&line))
            .map(|v| v.parse().unwrap())
            .unwrap_or_else(|| panic!("{line} missing in\n{text}"))
    }

    #[test]
    fn hits_and_misses_are_counted_per_subsystem() {
        let m = Metrics::new("t", "t").unwrap();
        let c: TtlCache<u32, u32> =
            TtlCache::new(Subsystem::Metadata, 10, Duration::from_secs(60), &m);
        assert_eq!(c.get(&1), None);
        c.insert(1, 7, c.generation());
        assert_eq!(c.get(&1), Some(7));
        assert_eq!(c.get(&1), Some(7));
        assert_eq!(count(&m, "hits", "metadata"), 2);
        assert_eq!(count(&m, "misses", "metadata"), 1);
        assert_eq!(count(&m, "hits", "blob_head"), 0);
    }

    #[test]
    fn an_insert_from_before_an_invalidation_is_dropped() {
        let m = Metrics::new("t", "t").unwrap();
        let c: TtlCache<u32, u32> =
            TtlCache::new(Subsystem::Metadata, 10, Duration::from_secs(60), &m);
        let before = c.generation();
        c.insert(1, 1, before);
        c.invalidate_all();
        assert_eq!(c.get(&1), None, "invalidated");
        // A reader that read the database before the write finishes after it.
        c.insert(1, 1, before);
        assert_eq!(c.get(&1), None, "a stale insert must not land");
        c.insert(1, 2, c.generation());
        assert_eq!(c.get(&1), Some(2));
    }

    #[test]
    fn entries_expire_and_a_zero_size_cache_keeps_nothing() {
        let m = Metrics::new("t", "t").unwrap();
        let c: TtlCache<u32, u32> =
            TtlCache::new(Subsystem::StreamUrl, 10, Duration::from_millis(30), &m);
        c.insert(1, 1, c.generation());
        assert_eq!(c.get(&1), Some(1));
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(c.get(&1), None);

        let off: TtlCache<u32, u32> =
            TtlCache::new(Subsystem::StreamUrl, 0, Duration::from_secs(60), &m);
        off.insert(1, 1, off.generation());
        assert_eq!(off.get(&1), None);
    }

    #[test]
    fn usable_rejects_count_as_misses() {
        let m = Metrics::new("t", "t").unwrap();
        let c: TtlCache<u32, u32> =
            TtlCache::new(Subsystem::StreamUrl, 10, Duration::from_secs(60), &m);
        c.insert(1, 1, c.generation());
        assert_eq!(c.get_if(&1, |v| *v > 1), None);
        assert_eq!(count(&m, "misses", "stream_url"), 1);
    }

    #[test]
    fn media_bytes_are_capped_and_playlists_go_stale_on_a_track_change() {
        let m = Metrics::new("t", "t").unwrap();
        let c = BytesCache::new(16 * 1024 * 1024, Duration::from_secs(60), &m);
        let seg = Bytes::from(vec![7u8; 1000]);
        c.insert(
            "tracks/a/hls/seg/x.m4s",
            seg.clone(),
            Some("\"e\"".into()),
            None,
        );
        let playlist_generation = c.generation();
        c.insert(
            "tracks/a/hls/master.m3u8",
            Bytes::from_static(b"#EXTM3U"),
            None,
            Some(playlist_generation),
        );
        assert_eq!(c.get("tracks/a/hls/seg/x.m4s").unwrap().bytes, seg);
        assert!(c.get("tracks/a/hls/master.m3u8").is_some());
        c.mutable_changed();
        assert!(
            c.get("tracks/a/hls/master.m3u8").is_none(),
            "stale playlist"
        );
        assert!(
            c.get("tracks/a/hls/seg/x.m4s").is_some(),
            "segments never change"
        );
        // A reader that took the generation before the change cannot put its copy back.
        c.insert(
            "tracks/a/hls/master.m3u8",
            Bytes::from_static(b"#EXTM3U"),
            None,
            Some(playlist_generation),
        );
        assert!(c.get("tracks/a/hls/master.m3u8").is_none());
        // Over a sixteenth of the capacity: never kept.
        assert!(!c.keeps(1024 * 1024 + 1));
        c.insert("big", Bytes::from(vec![0u8; 1024 * 1024 + 1]), None, None);
        assert!(c.get("big").is_none());
        // The total stays under the cap however much is offered.
        for i in 0..64 {
            c.insert(
                &format!("k{i}"),
                Bytes::from(vec![1u8; 1024 * 1024]),
                None,
                None,
            );
        }
        assert!(c.weight() <= 16 * 1024 * 1024, "{}", c.weight());
        assert_eq!(count(&m, "hits", "media_bytes"), 3);

        let off = BytesCache::new(0, Duration::from_secs(60), &m);
        off.insert("k", seg, None, None);
        assert!(off.get("k").is_none() && !off.keeps(1));
    }

    #[test]
    fn urls_are_reused_only_in_the_first_half_of_their_life() {
        assert!(mostly_fresh(1000, 1600, 1000));
        assert!(mostly_fresh(1000, 1600, 1299));
        assert!(!mostly_fresh(1000, 1600, 1300));
        assert!(!mostly_fresh(1000, 1600, 2000));
        assert!(!mostly_fresh(1000, 1000, 1000));
    }
}
