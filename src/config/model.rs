//! The typed layer: what the rest of Veza reads.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use url::Url;

/// A secret string: never printed by `Debug` or `Display`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    /// The secret itself, for the code that signs or compares with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// True when no secret was configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"****\"")
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where blobs live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageBackend {
    /// A directory on the local filesystem.
    Local,
    /// An S3-compatible bucket.
    S3,
}

/// A URL-signing provider (see docs/SIGNING.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CdnProvider {
    /// Bunny.net pull-zone token authentication.
    Bunny,
    /// S3 SigV4 query presign on the `[storage.s3]` bucket.
    S3,
    /// Veza's own HMAC tokens for `/media/`.
    Local,
    /// CloudFront canned-policy signed URLs.
    Cloudfront,
    /// nginx `secure_link_md5`.
    Nginx,
    /// Cloudflare WAF `is_timed_hmac_valid_v0`.
    Cloudflare,
}

impl CdnProvider {
    /// Every provider, in documentation order.
    pub const ALL: [CdnProvider; 6] = [
        Self::Bunny,
        Self::S3,
        Self::Local,
        Self::Cloudfront,
        Self::Nginx,
        Self::Cloudflare,
    ];

    /// The config/CLI spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bunny => "bunny",
            Self::S3 => "s3",
            Self::Local => "local",
            Self::Cloudfront => "cloudfront",
            Self::Nginx => "nginx",
            Self::Cloudflare => "cloudflare",
        }
    }

    /// Parses the config/CLI spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for CdnProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Bunny token scheme used when signing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BunnyScheme {
    /// `HS256-…` HMAC-SHA256 (current documented scheme).
    Hs256,
    /// The plain SHA-256 advanced ("v2") scheme.
    Sha256,
}

/// Fully parsed configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Root of everything Veza writes (`veza.db`, blobs, generated keys).
    pub data_dir: PathBuf,
    /// `[server]`
    pub server: ServerConfig,
    /// `[log]`
    pub log: LogConfig,
    /// `[storage]`
    pub storage: StorageConfig,
    /// `[cdn]`
    pub cdn: CdnConfig,
    /// `[hls]`
    pub hls: HlsConfig,
    /// `[rum]`
    pub rum: RumConfig,
    /// `[embed]`
    pub embed: EmbedConfig,
    /// `[auth]`
    pub auth: AuthConfig,
    /// `[jobs]`
    pub jobs: JobsConfig,
    /// `[stream]`
    pub stream: StreamConfig,
    /// `[subsonic]`
    pub subsonic: SubsonicConfig,
    /// `[cache]`
    pub cache: CacheConfig,
    /// `[media]`
    pub media: MediaConfig,
    /// `[metrics]`
    pub metrics: MetricsConfig,
}

/// `[server]`, parsed.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to bind (port 0 picks a free one).
    pub listen: SocketAddr,
    /// The URL users and the CDN reach Veza at.
    pub public_url: Url,
    /// Upper bound for any JSON request body.
    pub max_json_bytes: u64,
    /// `/metrics` open to anyone (else a bearer API token is needed).
    pub metrics_public: bool,
    /// Peers whose `X-Forwarded-For`/`Forwarded` headers name the client (reverse proxies).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How long `/readyz` reuses its last real database and store check.
    pub readyz_check: std::time::Duration,
    /// A request head must arrive within this (slowloris).
    pub header_read_timeout: std::time::Duration,
    /// A keep-alive connection with no request and no traffic this long is closed.
    pub idle_timeout: std::time::Duration,
    /// A request body that sends nothing for this long is cut off.
    pub body_timeout: std::time::Duration,
    /// Open connections above this are answered 503 and closed at once.
    pub max_connections: usize,
}

/// `[log]`, parsed.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// An `EnvFilter` directive such as `info` or `veza=debug,warp=info`.
    pub level: String,
    /// Line format.
    pub format: LogFormat,
}

/// `[storage]`, parsed.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// Which backend holds blobs.
    pub backend: StorageBackend,
    /// Largest upload accepted (413 above it).
    pub max_upload_bytes: u64,
    /// Root folder of the local backend (resolved: never empty).
    pub local_root: PathBuf,
    /// `[storage.s3]`
    pub s3: S3Config,
}

/// `[storage.s3]`, parsed.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// Endpoint URL (`None` when unset).
    pub endpoint: Option<Url>,
    /// Bucket name.
    pub bucket: String,
    /// Region (`auto` for R2).
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: Secret,
    /// Optional STS session token.
    pub session_token: Secret,
    /// Path-style addressing (MinIO, Garage) instead of virtual-hosted.
    pub path_style: bool,
}

/// `[cdn]`, parsed.
#[derive(Debug, Clone)]
pub struct CdnConfig {
    /// Whether URLs are signed for the CDN (else Veza signs its own `/media/` URLs).
    pub enabled: bool,
    /// The first provider tried.
    pub provider: CdnProvider,
    /// CDN host URLs point at (`None` when unset).
    pub base_url: Option<Url>,
    /// Shared signing key of the provider.
    pub security_key: Secret,
    /// Lifetime of a signed URL.
    pub ttl_secs: u64,
    /// Providers tried in order when the first cannot sign.
    pub fallback: Vec<CdnProvider>,
    /// `[cdn.bunny]`
    pub bunny: BunnyConfig,
    /// `[cdn.local]`
    pub local: LocalSigningConfig,
    /// `[cdn.cloudfront]`
    pub cloudfront: CloudFrontConfig,
    /// `[cdn.nginx]`
    pub nginx: NginxConfig,
    /// `[cdn.cloudflare]`
    pub cloudflare: CloudflareConfig,
}

/// `[cdn.local]`, parsed.
#[derive(Debug, Clone)]
pub struct LocalSigningConfig {
    /// HMAC key for `/media/` tokens; empty = `{data_dir}/signing.key`, generated on first use.
    pub key: Secret,
    /// The key before the last rotation: still accepted when verifying, never used to sign.
    pub previous_key: Secret,
}

/// `[cdn.cloudfront]`, parsed.
#[derive(Debug, Clone)]
pub struct CloudFrontConfig {
    /// Public key id from the CloudFront key group (`K2JCJMDEHXQW5F`).
    pub key_pair_id: String,
    /// PEM file with the matching RSA private key (`None` when unset).
    pub private_key_path: Option<PathBuf>,
}

/// `[cdn.nginx]`, parsed.
#[derive(Debug, Clone)]
pub struct NginxConfig {
    /// The string `secure_link_md5` hashes, with `{expires}`, `{uri}`, `{remote_addr}`,
    /// `{secret}` placeholders.
    pub expression: String,
}

/// `[cdn.cloudflare]`, parsed.
#[derive(Debug, Clone)]
pub struct CloudflareConfig {
    /// Query parameter carrying `{timestamp}-{mac}`; must be the last one in the URL.
    pub param: String,
}

/// `[cdn.bunny]`, parsed.
#[derive(Debug, Clone)]
pub struct BunnyConfig {
    /// Token scheme.
    pub scheme: BunnyScheme,
    /// Path-form tokens (`/bcdn_token=…/path`) instead of query form.
    pub path_form: bool,
    /// Bind tokens to the viewer's IP.
    pub ip_binding: bool,
    /// ISO 3166-1 alpha-2 codes allowed (empty = all).
    pub countries_allowed: Vec<String>,
    /// ISO 3166-1 alpha-2 codes refused.
    pub countries_blocked: Vec<String>,
    /// Per-connection speed limit in kB/s (0 = unlimited).
    pub speed_limit_kbps: u64,
    /// Account API key for purges.
    pub api_key: Secret,
    /// Header value a Bunny edge rule adds to origin pulls.
    pub origin_secret: Secret,
    /// Base URL of Bunny's account API (purges).
    pub api_url: Url,
    /// `/media/` also accepts Bunny tokens (for setups where the edge forwards them).
    pub verify_tokens: bool,
}

/// `[hls]`, parsed.
#[derive(Debug, Clone)]
pub struct HlsConfig {
    /// Package uploads as HLS.
    pub enabled: bool,
    /// ffmpeg program (name on PATH or absolute path).
    pub ffmpeg: String,
    /// ffprobe program.
    pub ffprobe: String,
    /// AAC bitrates of the ladder, ascending.
    pub ladder_kbps: Vec<u32>,
    /// Target segment length.
    pub segment_secs: u32,
    /// Longest an ffmpeg run may take before it is killed.
    pub timeout_secs: u64,
    /// Apply the ReplayGain track gain in the renditions (the original is untouched).
    pub normalize: bool,
}

/// `[jobs]`, parsed.
#[derive(Debug, Clone)]
pub struct JobsConfig {
    /// Jobs run at once.
    pub workers: usize,
    /// Attempts before a job is dead.
    pub max_attempts: u32,
    /// A running job's lease; a crashed worker's job runs again once it lapses.
    pub lease_secs: u64,
    /// First retry delay; doubles per attempt (with jitter).
    pub retry_base_secs: u64,
    /// Longest retry delay.
    pub retry_max_secs: u64,
}

/// `[stream]`, parsed.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Anonymous stream-URL requests per client IP per minute.
    pub rate_limit_per_min: u32,
}

/// `[subsonic]`, parsed.
#[derive(Debug, Clone)]
pub struct SubsonicConfig {
    /// Serve `/rest/` at all.
    pub enabled: bool,
    /// Client names (`c=`) that get the bytes through Veza instead of a redirect to the CDN,
    /// compared case-insensitively: players known not to follow redirects.
    pub proxy_clients: Vec<String>,
}

/// `[cache]`, parsed.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Longest a track's access metadata is reused without reading the database again; only
    /// changes made by another process (a `veza` CLI command) wait this long, this process's
    /// own writes invalidate at once. 0 turns the metadata and stream-URL caches off.
    pub metadata_ttl_secs: u64,
    /// Entries per cache (0 turns every cache off).
    pub max_entries: usize,
}

/// `[media]`, parsed.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Bytes of immutable `/media/` objects (segments, init segments, playlists, covers,
    /// peaks) kept in memory; 0 turns the cache off.
    pub cache_bytes: u64,
}

/// `[metrics]`, parsed.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// How often the blob store is listed for `veza_blob_store_bytes` / `_objects`.
    pub store_scan_secs: u64,
}

/// `[auth]`, parsed.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// A session unused this long ends.
    pub session_idle_secs: i64,
    /// A session ends this long after login, used or not.
    pub session_max_secs: i64,
    /// Login attempts allowed per client IP and per username each minute.
    pub login_attempts_per_min: u32,
    /// Password hashes (argon2, ~19 MiB each) computed at once.
    pub hash_concurrency: usize,
    /// Hash requests allowed to wait for a slot; beyond that, 503 with `retry-after`.
    pub hash_queue: usize,
}

/// `[rum]`, parsed.
#[derive(Debug, Clone)]
pub struct RumConfig {
    /// Distinct `route` label values kept before the rest count as `other`.
    pub max_routes: usize,
    /// Beacons accepted per client IP per minute.
    pub rate_limit_per_min: u32,
    /// Origins allowed to post beacons cross-origin.
    pub cors_origins: Vec<String>,
    /// Share of page loads (0–1) that send web vitals.
    pub sample_rate: f64,
}

/// `[embed]`, parsed.
#[derive(Debug, Clone)]
pub struct EmbedConfig {
    /// The embed page's CSP `frame-ancestors` sources (`*`, or space-separated origins).
    pub frame_ancestors: String,
}
