//! `AppState`: the cheap-to-clone bundle every handler receives. No logic here.

use std::net::IpAddr;
use std::sync::Arc;

use crate::accounts::LoginGuard;
use crate::cache::Caches;
use crate::config::Config;
use crate::db::Db;
use crate::jobs::Queue;
use crate::metrics::Metrics;
use crate::ratelimit::KeyedLimiter;
use crate::rum::RumGuard;
use crate::signing::CdnService;
use crate::storage::BlobStore;

/// Shared handles for handlers.
#[derive(Clone)]
pub struct AppState {
    /// Validated configuration.
    pub config: Arc<Config>,
    /// SQLite.
    pub db: Db,
    /// Blob store (local or S3).
    pub store: BlobStore,
    /// This app's metrics and registry.
    pub metrics: Metrics,
    /// RUM route cap and rate limit.
    pub rum: Arc<RumGuard>,
    /// Login throttles.
    pub login: Arc<LoginGuard>,
    /// Seals and opens Subsonic app passwords (key in the data dir).
    pub sealer: crate::accounts::app_password::Sealer,
    /// Bounded argon2 work (login, setup, password changes).
    pub hashes: Arc<crate::accounts::HashPool>,
    /// The job queue: wakes workers, knows whether HLS can run.
    pub jobs: Queue,
    /// URL signing (built once at start) for the stream API and `/media/` tokens.
    pub cdn: Arc<CdnService>,
    /// Anonymous stream-URL requests per IP (`stream.rate_limit_per_min`).
    pub stream_limit: Arc<KeyedLimiter<IpAddr>>,
    /// Track metadata, stream-URL and blob-head caches.
    pub caches: Arc<Caches>,
    /// The effective configuration as masked TOML (what `veza config check` prints), given by
    /// whoever built the config from its layers (`App::set_effective_config`).
    pub settings: Arc<std::sync::OnceLock<String>>,
    /// The track service: every track change and access decision.
    pub tracks: crate::tracks::TrackService,
    /// The last `/readyz` check (`server.readyz_check_secs`).
    pub ready: Arc<crate::http::ops::ReadyCache>,
    /// Per-minute samples for the dashboard's plots.
    pub stats: Arc<crate::metrics::stats::Stats>,
}
