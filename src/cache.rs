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
}

/// Content-addressed blobs are immutable; an hour only bounds memory of deleted ones.
const BLOB_HEAD_TTL: Duration = Duration::from_secs(3600);

impl Caches {
    /// Builds the caches `cfg` asks for, counting into `metrics`.
    pub fn new(cfg: &CacheConfig, metrics: &Metrics) -> Caches {
        let ttl = Duration::from_secs(cfg.metadata_ttl_secs);
        Caches {
            metadata: TtlCache::new(Subsystem::Metadata, cfg.max_entries, ttl, metrics),
            stream_url: TtlCache::new(Subsystem::StreamUrl, cfg.max_entries, ttl, metrics),
            blob_head: TtlCache::new(Subsystem::BlobHead, cfg.max_entries, BLOB_HEAD_TTL, metrics),
            tokens: TtlCache::new(Subsystem::ApiTokens, cfg.max_entries, ttl, metrics),
        }
    }

    /// Call after committing any change to a track (status, visibility, keys, deletion). Blob
    /// facts go too: re-packaging and deletion remove objects.
    pub fn tracks_changed(&self) {
        self.metadata.invalidate_all();
        self.stream_url.invalidate_all();
        self.blob_head.invalidate_all();
    }
}

impl Caches {
    /// Call after committing any change to users or tokens (revoke, disable, role or password
    /// change, deletion): no cached token may authenticate after it.
    pub fn accounts_changed(&self) {
        self.tokens.invalidate_all();
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
    fn urls_are_reused_only_in_the_first_half_of_their_life() {
        assert!(mostly_fresh(1000, 1600, 1000));
        assert!(mostly_fresh(1000, 1600, 1299));
        assert!(!mostly_fresh(1000, 1600, 1300));
        assert!(!mostly_fresh(1000, 1600, 2000));
        assert!(!mostly_fresh(1000, 1000, 1000));
    }
}
