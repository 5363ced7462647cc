//! Configuration: figment layers (defaults → TOML file → `CDN_*` aliases → `VEZA_*` env),
//! extracted into [`RawConfig`], then parsed into the typed [`Config`] the rest of Veza uses.
//!
//! Every key name here is a public interface (docs/ENV_VARIABLES.md, the .deb's veza.toml,
//! ops runbooks). Unknown keys are errors: a typo must never be ignored silently.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Deserializer, Serialize};
use url::Url;

/// The file read when `--config` is not given (skipped when absent).
pub const DEFAULT_CONFIG_FILE: &str = "/etc/veza/veza.toml";

/// Seed-era environment names still honoured; a `VEZA_` variable wins over its alias.
pub const CDN_ALIASES: [(&str, &str); 4] = [
    ("CDN_ENABLED", "cdn.enabled"),
    ("CDN_PROVIDER", "cdn.provider"),
    ("CDN_BASE_URL", "cdn.base_url"),
    ("CDN_SECURITY_KEY", "cdn.security_key"),
];

/// Keys whose values are secrets: masked in `config check`, `Debug` and logs.
pub const SECRET_KEYS: [&str; 7] = [
    "storage.s3.secret_access_key",
    "storage.s3.session_token",
    "cdn.security_key",
    "cdn.bunny.api_key",
    "cdn.bunny.origin_secret",
    "cdn.local.key",
    "cdn.local.previous_key",
];

/// Shortest `cdn.bunny.origin_secret` accepted.
pub const MIN_ORIGIN_SECRET_CHARS: usize = 16;

/// Placeholders allowed in `cdn.nginx.expression`.
pub const NGINX_PLACEHOLDERS: [&str; 4] = ["{expires}", "{uri}", "{remote_addr}", "{secret}"];

/// A configuration problem: which key, where its value came from, and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--config FILE` names a file that cannot be read.
    #[error("--config {path}: {reason}")]
    File { path: PathBuf, reason: String },
    /// A value that does not fit the key (type, range, syntax, unknown key).
    #[error("{key} ({source_desc}): {problem}")]
    Invalid {
        key: String,
        source_desc: String,
        problem: String,
    },
}

// ---------------------------------------------------------------------------------------------
// Raw layer: exactly the file/env shape, defaults filled in.

/// The configuration as written in files and env vars, before parsing into typed values.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub data_dir: String,
    pub server: RawServer,
    pub log: RawLog,
    pub storage: RawStorage,
    pub cdn: RawCdn,
    pub hls: RawHls,
    pub rum: RawRum,
    pub auth: RawAuth,
    pub jobs: RawJobs,
    pub stream: RawStream,
    pub cache: RawCache,
    pub metrics: RawMetrics,
}

/// `[server]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    pub listen: String,
    pub public_url: String,
    pub max_json_bytes: u64,
    pub metrics_public: bool,
    pub trusted_proxies: Vec<String>,
    pub readyz_check_secs: u64,
    pub header_read_timeout_secs: u64,
    pub idle_timeout_secs: u64,
    pub body_timeout_secs: u64,
    pub max_connections: u64,
}

/// `[log]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    pub level: String,
    pub format: String,
}

/// `[storage]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStorage {
    pub backend: String,
    pub max_upload_bytes: u64,
    pub local: RawLocal,
    pub s3: RawS3,
}

/// `[storage.local]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLocal {
    pub root: String,
}

/// `[storage.s3]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawS3 {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    #[serde(deserialize_with = "lenient_string")]
    pub secret_access_key: String,
    #[serde(deserialize_with = "lenient_string")]
    pub session_token: String,
    pub path_style: bool,
}

/// `[cdn]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCdn {
    pub enabled: bool,
    pub provider: String,
    pub base_url: String,
    #[serde(deserialize_with = "lenient_string")]
    pub security_key: String,
    pub ttl_secs: u64,
    pub fallback: Vec<String>,
    pub bunny: RawBunny,
    pub local: RawCdnLocal,
    pub cloudfront: RawCloudFront,
    pub nginx: RawNginx,
    pub cloudflare: RawCloudflare,
}

/// `[cdn.bunny]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBunny {
    pub scheme: String,
    pub path_form: bool,
    pub ip_binding: bool,
    pub countries_allowed: Vec<String>,
    pub countries_blocked: Vec<String>,
    pub speed_limit_kbps: u64,
    #[serde(deserialize_with = "lenient_string")]
    pub api_key: String,
    #[serde(deserialize_with = "lenient_string")]
    pub origin_secret: String,
    pub api_url: String,
    pub verify_tokens: bool,
}

/// `[cdn.local]`: Veza's own `/media/` tokens.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCdnLocal {
    #[serde(deserialize_with = "lenient_string")]
    pub key: String,
    #[serde(deserialize_with = "lenient_string")]
    pub previous_key: String,
}

/// `[cdn.cloudfront]`
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCloudFront {
    pub key_pair_id: String,
    pub private_key_path: String,
}

/// `[cdn.nginx]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawNginx {
    pub expression: String,
}

/// `[cdn.cloudflare]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCloudflare {
    pub param: String,
}

/// `[hls]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawHls {
    pub enabled: bool,
    pub ffmpeg: String,
    pub ffprobe: String,
    pub ladder_kbps: Vec<u64>,
    pub segment_secs: u64,
    pub timeout_secs: u64,
}

/// `[jobs]`: the background job queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawJobs {
    pub workers: u64,
    pub max_attempts: u64,
    pub lease_secs: u64,
    pub retry_base_secs: u64,
    pub retry_max_secs: u64,
}

impl Default for RawJobs {
    fn default() -> Self {
        Self {
            workers: 1,
            max_attempts: 5,
            lease_secs: 60,
            retry_base_secs: 30,
            retry_max_secs: 3600,
        }
    }
}

/// `[stream]`: the stream-URL API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStream {
    pub rate_limit_per_min: u64,
}

impl Default for RawStream {
    fn default() -> Self {
        Self {
            rate_limit_per_min: 120,
        }
    }
}

/// `[cache]`: in-process caches in front of the database and the blob store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCache {
    pub metadata_ttl_secs: u64,
    pub max_entries: u64,
}

impl Default for RawCache {
    fn default() -> Self {
        Self {
            metadata_ttl_secs: 2,
            max_entries: 10_000,
        }
    }
}

/// `[metrics]`: gauges refreshed in the background.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMetrics {
    pub store_scan_secs: u64,
}

impl Default for RawMetrics {
    fn default() -> Self {
        Self {
            store_scan_secs: 300,
        }
    }
}

/// `[rum]`: the real-user web-vitals beacon.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRum {
    pub max_routes: u64,
    pub rate_limit_per_min: u64,
    pub cors_origins: Vec<String>,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            data_dir: "./veza-data".into(),
            server: RawServer::default(),
            log: RawLog::default(),
            storage: RawStorage::default(),
            cdn: RawCdn::default(),
            hls: RawHls::default(),
            rum: RawRum::default(),
            auth: RawAuth::default(),
            jobs: RawJobs::default(),
            stream: RawStream::default(),
            cache: RawCache::default(),
            metrics: RawMetrics::default(),
        }
    }
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            public_url: "http://127.0.0.1:8080".into(),
            max_json_bytes: 65536,
            metrics_public: true,
            trusted_proxies: Vec::new(),
            readyz_check_secs: 30,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            body_timeout_secs: 60,
            max_connections: 1024,
        }
    }
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: "text".into(),
        }
    }
}

impl Default for RawStorage {
    fn default() -> Self {
        Self {
            backend: "local".into(),
            max_upload_bytes: 1024 * 1024 * 1024,
            local: RawLocal::default(),
            s3: RawS3::default(),
        }
    }
}

impl Default for RawS3 {
    fn default() -> Self {
        Self {
            endpoint: String::new(),
            bucket: String::new(),
            region: "us-east-1".into(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            session_token: String::new(),
            path_style: true,
        }
    }
}

impl Default for RawCdn {
    fn default() -> Self {
        Self {
            enabled: false,
            provider: "bunny".into(),
            base_url: String::new(),
            security_key: String::new(),
            ttl_secs: 3600,
            fallback: vec!["s3".into(), "local".into()],
            bunny: RawBunny::default(),
            local: RawCdnLocal::default(),
            cloudfront: RawCloudFront::default(),
            nginx: RawNginx::default(),
            cloudflare: RawCloudflare::default(),
        }
    }
}

impl Default for RawNginx {
    fn default() -> Self {
        Self {
            expression: "{expires}{uri} {secret}".into(),
        }
    }
}

impl Default for RawCloudflare {
    fn default() -> Self {
        Self {
            param: "verify".into(),
        }
    }
}

impl Default for RawBunny {
    fn default() -> Self {
        Self {
            scheme: "hs256".into(),
            path_form: true,
            ip_binding: false,
            countries_allowed: vec![],
            countries_blocked: vec![],
            speed_limit_kbps: 0,
            api_key: String::new(),
            origin_secret: String::new(),
            api_url: "https://api.bunny.net".into(),
            verify_tokens: false,
        }
    }
}

impl Default for RawHls {
    fn default() -> Self {
        Self {
            enabled: true,
            ffmpeg: "ffmpeg".into(),
            ffprobe: "ffprobe".into(),
            ladder_kbps: vec![64, 128, 256],
            segment_secs: 6,
            timeout_secs: 1800,
        }
    }
}

/// `[auth]`: dashboard sessions and login throttling.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAuth {
    pub session_idle_secs: u64,
    pub session_max_secs: u64,
    pub login_attempts_per_min: u64,
    pub hash_concurrency: u64,
    pub hash_queue: u64,
}

impl Default for RawAuth {
    fn default() -> Self {
        Self {
            session_idle_secs: 12 * 3600,
            session_max_secs: 7 * 24 * 3600,
            login_attempts_per_min: 10,
            hash_concurrency: 2,
            hash_queue: 16,
        }
    }
}

impl Default for RawRum {
    fn default() -> Self {
        Self {
            max_routes: 100,
            rate_limit_per_min: 60,
            cors_origins: vec![],
        }
    }
}

/// Env values are parsed loosely by figment (`1234` becomes a number); a secret is text whatever
/// it looks like.
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Loose {
        S(String),
        I(i64),
        U(u64),
        F(f64),
        B(bool),
    }
    Ok(match Loose::deserialize(d)? {
        Loose::S(s) => s,
        Loose::I(i) => i.to_string(),
        Loose::U(u) => u.to_string(),
        Loose::F(f) => f.to_string(),
        Loose::B(b) => b.to_string(),
    })
}

// ---------------------------------------------------------------------------------------------
// Typed layer.

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
    /// `[auth]`
    pub auth: AuthConfig,
    /// `[jobs]`
    pub jobs: JobsConfig,
    /// `[stream]`
    pub stream: StreamConfig,
    /// `[cache]`
    pub cache: CacheConfig,
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
}

// ---------------------------------------------------------------------------------------------
// Loading.

/// Which file layer to use.
#[derive(Debug, Clone)]
pub enum FileLayer {
    /// `/etc/veza/veza.toml` if it exists.
    Default,
    /// `--config FILE`: must exist.
    Explicit(PathBuf),
    /// No file (tests).
    None,
}

/// Builds the layered figment: defaults → file → `CDN_*` aliases → `VEZA_*` env.
pub fn figment(file: &FileLayer) -> Result<Figment, ConfigError> {
    let mut fig = Figment::from(Serialized::defaults(RawConfig::default()));
    match file {
        FileLayer::Default => {
            if Path::new(DEFAULT_CONFIG_FILE).exists() {
                fig = fig.merge(Toml::file_exact(DEFAULT_CONFIG_FILE));
            }
        }
        FileLayer::Explicit(path) => {
            if let Err(e) = std::fs::File::open(path) {
                return Err(ConfigError::File {
                    path: path.clone(),
                    reason: e.to_string(),
                });
            }
            fig = fig.merge(Toml::file_exact(path));
        }
        FileLayer::None => {}
    }
    Ok(fig
        .merge(CdnAliases)
        .merge(Env::prefixed("VEZA_").split("__")))
}

/// Loads and validates the configuration from the standard layers.
pub fn load(file: &FileLayer) -> Result<Config, ConfigError> {
    from_figment(&figment(file)?)
}

/// Defaults plus one TOML document, no file or env (tests and tools).
pub fn from_toml_str(toml: &str) -> Result<Config, ConfigError> {
    from_figment(
        &Figment::from(Serialized::defaults(RawConfig::default())).merge(Toml::string(toml)),
    )
}

/// Extracts and validates; errors name the key and where its value came from.
pub fn from_figment(fig: &Figment) -> Result<Config, ConfigError> {
    let raw: RawConfig = fig.extract().map_err(|e| figment_error(fig, e))?;
    validate(fig, &raw)
}

/// The effective configuration as TOML with every set secret shown as `"****"` (unset: `""`).
pub fn masked_toml(cfg: &Config, fig: &Figment) -> Result<String, ConfigError> {
    let mut raw: RawConfig = fig.extract().map_err(|e| figment_error(fig, e))?;
    raw.storage.local.root = cfg.storage.local_root.display().to_string();
    for s in [
        &mut raw.storage.s3.secret_access_key,
        &mut raw.storage.s3.session_token,
        &mut raw.cdn.security_key,
        &mut raw.cdn.bunny.api_key,
        &mut raw.cdn.bunny.origin_secret,
        &mut raw.cdn.local.key,
        &mut raw.cdn.local.previous_key,
    ] {
        // `""` says "unset" apart from `"****"` (set): both matter when debugging a CDN.
        if !s.is_empty() {
            *s = "****".into();
        }
    }
    toml::to_string(&raw).map_err(|e| ConfigError::Invalid {
        key: "(all)".into(),
        source_desc: "serialiser".into(),
        problem: e.to_string(),
    })
}

/// A CIDR (`10.0.0.0/8`, `::1/128`) or a bare address (one host).
fn parse_cidr(s: &str) -> Result<ipnet::IpNet, String> {
    let t = s.trim();
    t.parse::<ipnet::IpNet>()
        .or_else(|_| t.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map(|n| n.trunc())
        .map_err(|_| format!("{s:?} is not an IP address or CIDR such as 10.0.0.0/8"))
}

fn secs(n: u64) -> std::time::Duration {
    std::time::Duration::from_secs(n)
}

fn figment_error(fig: &Figment, e: figment::Error) -> ConfigError {
    // Report the first problem only: one clear line beats a wall of follow-on errors.
    let e = e
        .into_iter()
        .next()
        .expect("a figment error holds at least one error");
    let mut key = e.path.join(".");
    let problem = match &e.kind {
        figment::error::Kind::UnknownField(field, _) => {
            // figment's path usually ends with the unknown field already.
            if e.path.last() != Some(field) {
                key = if key.is_empty() {
                    field.clone()
                } else {
                    format!("{key}.{field}")
                };
            }
            "unknown key (check the spelling; see docs/ENV_VARIABLES.md)".to_owned()
        }
        kind => kind.to_string(),
    };
    let source_desc = match &e.metadata {
        Some(md) => describe_source(md, &key),
        None => describe_key_source(fig, &key),
    };
    ConfigError::Invalid {
        key: if key.is_empty() { "(root)".into() } else { key },
        source_desc,
        problem,
    }
}

fn describe_key_source(fig: &Figment, key: &str) -> String {
    match fig.find_metadata(key) {
        Some(md) => describe_source(md, key),
        None => "default".into(),
    }
}

fn describe_source(md: &Metadata, key: &str) -> String {
    if let Some(path) = md.source.as_ref().and_then(|s| s.file_path()) {
        return format!("file {}", path.display());
    }
    if md.name.contains("VEZA_") {
        return format!("env VEZA_{}", key.replace('.', "__").to_ascii_uppercase());
    }
    if md.name == ALIAS_PROVIDER_NAME {
        let alias = CDN_ALIASES.iter().find(|(_, k)| *k == key).map(|(a, _)| *a);
        return format!("env {}", alias.unwrap_or("CDN_*"));
    }
    // Built-in defaults are the only layer provided from code.
    if matches!(md.source, Some(figment::Source::Code(_))) {
        return "default".into();
    }
    md.name.to_string()
}

const ALIAS_PROVIDER_NAME: &str = "seed CDN_* environment alias";

/// Reads `CDN_ENABLED`, `CDN_PROVIDER`, `CDN_BASE_URL`, `CDN_SECURITY_KEY` into their keys.
struct CdnAliases;

impl Provider for CdnAliases {
    fn metadata(&self) -> Metadata {
        Metadata::named(ALIAS_PROVIDER_NAME)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut cdn = Dict::new();
        for (var, key) in CDN_ALIASES {
            if let Ok(v) = std::env::var(var) {
                let field = key.trim_start_matches("cdn.");
                // Same lenient parsing as figment's Env: "true" is a bool, text stays text.
                let value: Value = if field == "enabled" {
                    v.parse().expect("infallible")
                } else {
                    Value::from(v)
                };
                cdn.insert(field.into(), value);
            }
        }
        let mut root = Dict::new();
        if !cdn.is_empty() {
            root.insert("cdn".into(), Value::from(cdn));
        }
        Ok(Profile::Default.collect(root))
    }
}

// ---------------------------------------------------------------------------------------------
// Validation: raw strings into typed values.

struct Check<'a> {
    fig: &'a Figment,
}

impl Check<'_> {
    fn err(&self, key: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.into(),
            source_desc: describe_key_source(self.fig, key),
            problem: problem.into(),
        }
    }
}

fn validate(fig: &Figment, raw: &RawConfig) -> Result<Config, ConfigError> {
    let c = Check { fig };

    if raw.data_dir.trim().is_empty() {
        return Err(c.err("data_dir", "must not be empty"));
    }
    let data_dir = PathBuf::from(&raw.data_dir);

    let listen: SocketAddr = raw.server.listen.parse().map_err(|_| {
        c.err(
            "server.listen",
            format!(
                "{:?} is not an address:port such as 127.0.0.1:8080 or [::]:8080",
                raw.server.listen
            ),
        )
    })?;
    let public_url =
        parse_http_url(&raw.server.public_url).map_err(|p| c.err("server.public_url", p))?;
    if !(1024..=64 * 1024 * 1024).contains(&raw.server.max_json_bytes) {
        return Err(c.err(
            "server.max_json_bytes",
            format!("{} is outside 1024..=67108864", raw.server.max_json_bytes),
        ));
    }

    // A guessable header would open the origin to anyone who guesses it.
    let secret = &raw.cdn.bunny.origin_secret;
    if !secret.is_empty() && secret.chars().count() < MIN_ORIGIN_SECRET_CHARS {
        return Err(c.err(
            "cdn.bunny.origin_secret",
            format!(
                "must be at least {MIN_ORIGIN_SECRET_CHARS} characters (e.g. `openssl rand -hex 24`)"
            ),
        ));
    }

    let trusted_proxies = raw
        .server
        .trusted_proxies
        .iter()
        .map(|p| parse_cidr(p).map_err(|m| c.err("server.trusted_proxies", m)))
        .collect::<Result<Vec<_>, _>>()?;

    let format = match raw.log.format.as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(c.err(
                "log.format",
                format!("{other:?} is not \"text\" or \"json\""),
            ));
        }
    };
    if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&raw.log.level) {
        return Err(c.err(
            "log.level",
            format!("{:?} is not a valid filter: {e}", raw.log.level),
        ));
    }

    let backend = match raw.storage.backend.as_str() {
        "local" => StorageBackend::Local,
        "s3" => StorageBackend::S3,
        other => {
            return Err(c.err(
                "storage.backend",
                format!("{other:?} is not \"local\" or \"s3\""),
            ));
        }
    };
    if !(1024..=1024 * 1024 * 1024 * 1024).contains(&raw.storage.max_upload_bytes) {
        return Err(c.err(
            "storage.max_upload_bytes",
            format!(
                "{} is outside 1024..=1099511627776",
                raw.storage.max_upload_bytes
            ),
        ));
    }
    let local_root = if raw.storage.local.root.is_empty() {
        data_dir.join("blobs")
    } else {
        PathBuf::from(&raw.storage.local.root)
    };
    let s3_endpoint = if raw.storage.s3.endpoint.is_empty() {
        None
    } else {
        Some(
            parse_http_url(&raw.storage.s3.endpoint)
                .map_err(|p| c.err("storage.s3.endpoint", p))?,
        )
    };
    let s3 = S3Config {
        endpoint: s3_endpoint,
        bucket: raw.storage.s3.bucket.clone(),
        region: raw.storage.s3.region.clone(),
        access_key_id: raw.storage.s3.access_key_id.clone(),
        secret_access_key: Secret::new(&raw.storage.s3.secret_access_key),
        session_token: Secret::new(&raw.storage.s3.session_token),
        path_style: raw.storage.s3.path_style,
    };
    if s3.region.is_empty() {
        return Err(c.err(
            "storage.s3.region",
            "must not be empty (use \"us-east-1\" for MinIO/Garage, \"auto\" for R2)",
        ));
    }
    if backend == StorageBackend::S3 {
        require_s3(&c, &s3, "storage.backend = \"s3\"")?;
    }

    let provider = CdnProvider::parse(&raw.cdn.provider).ok_or_else(|| {
        c.err(
            "cdn.provider",
            format!("{:?} is not one of {}", raw.cdn.provider, provider_list()),
        )
    })?;
    let base_url = if raw.cdn.base_url.is_empty() {
        None
    } else {
        Some(parse_http_url(&raw.cdn.base_url).map_err(|p| c.err("cdn.base_url", p))?)
    };
    let security_key = Secret::new(&raw.cdn.security_key);
    if !(1..=7 * 24 * 3600).contains(&raw.cdn.ttl_secs) {
        return Err(c.err(
            "cdn.ttl_secs",
            format!("{} is outside 1..=604800", raw.cdn.ttl_secs),
        ));
    }
    let mut fallback = Vec::with_capacity(raw.cdn.fallback.len());
    for name in &raw.cdn.fallback {
        let p = CdnProvider::parse(name).ok_or_else(|| {
            c.err(
                "cdn.fallback",
                format!("{name:?} is not one of {}", provider_list()),
            )
        })?;
        if !fallback.contains(&p) {
            fallback.push(p);
        }
    }
    let scheme = match raw.cdn.bunny.scheme.as_str() {
        "hs256" => BunnyScheme::Hs256,
        "sha256" => BunnyScheme::Sha256,
        other => {
            return Err(c.err(
                "cdn.bunny.scheme",
                format!("{other:?} is not \"hs256\" or \"sha256\""),
            ));
        }
    };
    let countries_allowed = parse_countries(&raw.cdn.bunny.countries_allowed)
        .map_err(|p| c.err("cdn.bunny.countries_allowed", p))?;
    let countries_blocked = parse_countries(&raw.cdn.bunny.countries_blocked)
        .map_err(|p| c.err("cdn.bunny.countries_blocked", p))?;
    if raw.cdn.enabled {
        // No silent fallback to unsigned URLs: an enabled CDN must be able to sign.
        match provider {
            CdnProvider::Bunny | CdnProvider::Nginx | CdnProvider::Cloudflare => {
                if security_key.is_empty() {
                    return Err(c.err(
                        "cdn.security_key",
                        format!("empty while cdn.enabled = true and cdn.provider = \"{provider}\"; paste the provider's token key"),
                    ));
                }
            }
            CdnProvider::S3 => require_s3(&c, &s3, "cdn.provider = \"s3\"")?,
            CdnProvider::Cloudfront => {
                for (key, empty) in [
                    (
                        "cdn.cloudfront.key_pair_id",
                        raw.cdn.cloudfront.key_pair_id.is_empty(),
                    ),
                    (
                        "cdn.cloudfront.private_key_path",
                        raw.cdn.cloudfront.private_key_path.is_empty(),
                    ),
                ] {
                    if empty {
                        return Err(c.err(
                            key,
                            "empty while cdn.enabled = true and cdn.provider = \"cloudfront\"",
                        ));
                    }
                }
            }
            CdnProvider::Local => {}
        }
        if base_url.is_none() && !matches!(provider, CdnProvider::S3 | CdnProvider::Local) {
            return Err(c.err(
                "cdn.base_url",
                format!("empty while cdn.enabled = true and cdn.provider = \"{provider}\"; set the CDN hostname, e.g. https://zone.b-cdn.net"),
            ));
        }
    }

    for (key, value) in [
        ("cdn.local.key", &raw.cdn.local.key),
        ("cdn.local.previous_key", &raw.cdn.local.previous_key),
    ] {
        // A short HMAC key is guessable offline from one signed URL.
        if !value.is_empty() && value.len() < 32 {
            return Err(c.err(
                key,
                "shorter than 32 characters; use e.g. `openssl rand -hex 32`, or leave empty to generate {data_dir}/signing.key",
            ));
        }
    }
    check_nginx_expression(&raw.cdn.nginx.expression)
        .map_err(|p| c.err("cdn.nginx.expression", p))?;
    let cf_param = &raw.cdn.cloudflare.param;
    if cf_param.is_empty()
        || cf_param.len() > 32
        || !cf_param
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(c.err(
            "cdn.cloudflare.param",
            format!("{cf_param:?} must be 1-32 characters of A-Z a-z 0-9 _ -"),
        ));
    }

    if raw.hls.ladder_kbps.is_empty() {
        return Err(c.err("hls.ladder_kbps", "must list at least one bitrate"));
    }
    let mut ladder = Vec::with_capacity(raw.hls.ladder_kbps.len());
    for &k in &raw.hls.ladder_kbps {
        if !(16..=512).contains(&k) {
            return Err(c.err("hls.ladder_kbps", format!("{k} kbps is outside 16..=512")));
        }
        ladder.push(k as u32);
    }
    ladder.sort_unstable();
    ladder.dedup();
    if !(1..=30).contains(&raw.hls.segment_secs) {
        return Err(c.err(
            "hls.segment_secs",
            format!("{} is outside 1..=30", raw.hls.segment_secs),
        ));
    }
    for (key, prog) in [
        ("hls.ffmpeg", &raw.hls.ffmpeg),
        ("hls.ffprobe", &raw.hls.ffprobe),
    ] {
        if prog.trim().is_empty() {
            return Err(c.err(key, "must name a program"));
        }
    }

    if !(10..=86_400).contains(&raw.hls.timeout_secs) {
        return Err(c.err(
            "hls.timeout_secs",
            format!("{} is outside 10..=86400", raw.hls.timeout_secs),
        ));
    }
    for (key, v, range) in [
        ("jobs.workers", raw.jobs.workers, 1..=64),
        ("jobs.max_attempts", raw.jobs.max_attempts, 1..=100),
        ("jobs.lease_secs", raw.jobs.lease_secs, 2..=3600),
        ("jobs.retry_base_secs", raw.jobs.retry_base_secs, 1..=86_400),
        ("jobs.retry_max_secs", raw.jobs.retry_max_secs, 1..=604_800),
        (
            "stream.rate_limit_per_min",
            raw.stream.rate_limit_per_min,
            1..=1_000_000,
        ),
        (
            "cache.metadata_ttl_secs",
            raw.cache.metadata_ttl_secs,
            0..=3600,
        ),
        ("cache.max_entries", raw.cache.max_entries, 0..=10_000_000),
        (
            "metrics.store_scan_secs",
            raw.metrics.store_scan_secs,
            10..=86_400,
        ),
    ] {
        if !range.contains(&v) {
            return Err(c.err(
                key,
                format!("{v} is outside {}..={}", range.start(), range.end()),
            ));
        }
    }
    if raw.jobs.retry_max_secs < raw.jobs.retry_base_secs {
        return Err(c.err(
            "jobs.retry_max_secs",
            "must not be below jobs.retry_base_secs",
        ));
    }
    let bunny_api_url =
        parse_http_url(&raw.cdn.bunny.api_url).map_err(|m| c.err("cdn.bunny.api_url", m))?;

    if !(1..=10_000).contains(&raw.rum.max_routes) {
        return Err(c.err(
            "rum.max_routes",
            format!("{} is outside 1..=10000", raw.rum.max_routes),
        ));
    }
    if !(1..=100_000).contains(&raw.rum.rate_limit_per_min) {
        return Err(c.err(
            "rum.rate_limit_per_min",
            format!("{} is outside 1..=100000", raw.rum.rate_limit_per_min),
        ));
    }
    for o in &raw.rum.cors_origins {
        if o != "*" {
            parse_http_url(o).map_err(|p| c.err("rum.cors_origins", p))?;
        }
    }

    for (key, v, range) in [
        (
            "auth.session_idle_secs",
            raw.auth.session_idle_secs,
            60..=30 * 24 * 3600,
        ),
        (
            "auth.session_max_secs",
            raw.auth.session_max_secs,
            60..=365 * 24 * 3600,
        ),
        (
            "auth.login_attempts_per_min",
            raw.auth.login_attempts_per_min,
            1..=10_000,
        ),
        ("auth.hash_concurrency", raw.auth.hash_concurrency, 1..=64),
        ("auth.hash_queue", raw.auth.hash_queue, 0..=10_000),
        (
            "server.readyz_check_secs",
            raw.server.readyz_check_secs,
            0..=3600,
        ),
        (
            "server.header_read_timeout_secs",
            raw.server.header_read_timeout_secs,
            1..=3600,
        ),
        (
            "server.idle_timeout_secs",
            raw.server.idle_timeout_secs,
            1..=86_400,
        ),
        (
            "server.body_timeout_secs",
            raw.server.body_timeout_secs,
            1..=3600,
        ),
        (
            "server.max_connections",
            raw.server.max_connections,
            1..=1_000_000,
        ),
    ] {
        if !range.contains(&v) {
            return Err(c.err(
                key,
                format!("{v} is outside {}..={}", range.start(), range.end()),
            ));
        }
    }

    Ok(Config {
        data_dir,
        server: ServerConfig {
            listen,
            public_url,
            max_json_bytes: raw.server.max_json_bytes,
            metrics_public: raw.server.metrics_public,
            trusted_proxies,
            readyz_check: secs(raw.server.readyz_check_secs),
            header_read_timeout: secs(raw.server.header_read_timeout_secs),
            idle_timeout: secs(raw.server.idle_timeout_secs),
            body_timeout: secs(raw.server.body_timeout_secs),
            max_connections: raw.server.max_connections as usize,
        },
        log: LogConfig {
            level: raw.log.level.clone(),
            format,
        },
        storage: StorageConfig {
            backend,
            max_upload_bytes: raw.storage.max_upload_bytes,
            local_root,
            s3,
        },
        cdn: CdnConfig {
            enabled: raw.cdn.enabled,
            provider,
            base_url,
            security_key,
            ttl_secs: raw.cdn.ttl_secs,
            fallback,
            bunny: BunnyConfig {
                scheme,
                path_form: raw.cdn.bunny.path_form,
                ip_binding: raw.cdn.bunny.ip_binding,
                countries_allowed,
                countries_blocked,
                speed_limit_kbps: raw.cdn.bunny.speed_limit_kbps,
                api_key: Secret::new(&raw.cdn.bunny.api_key),
                origin_secret: Secret::new(&raw.cdn.bunny.origin_secret),
                api_url: bunny_api_url,
                verify_tokens: raw.cdn.bunny.verify_tokens,
            },
            local: LocalSigningConfig {
                key: Secret::new(&raw.cdn.local.key),
                previous_key: Secret::new(&raw.cdn.local.previous_key),
            },
            cloudfront: CloudFrontConfig {
                key_pair_id: raw.cdn.cloudfront.key_pair_id.clone(),
                private_key_path: (!raw.cdn.cloudfront.private_key_path.is_empty())
                    .then(|| PathBuf::from(&raw.cdn.cloudfront.private_key_path)),
            },
            nginx: NginxConfig {
                expression: raw.cdn.nginx.expression.clone(),
            },
            cloudflare: CloudflareConfig {
                param: cf_param.clone(),
            },
        },
        hls: HlsConfig {
            enabled: raw.hls.enabled,
            ffmpeg: raw.hls.ffmpeg.clone(),
            ffprobe: raw.hls.ffprobe.clone(),
            ladder_kbps: ladder,
            segment_secs: raw.hls.segment_secs as u32,
            timeout_secs: raw.hls.timeout_secs,
        },
        jobs: JobsConfig {
            workers: raw.jobs.workers as usize,
            max_attempts: raw.jobs.max_attempts as u32,
            lease_secs: raw.jobs.lease_secs,
            retry_base_secs: raw.jobs.retry_base_secs,
            retry_max_secs: raw.jobs.retry_max_secs,
        },
        stream: StreamConfig {
            rate_limit_per_min: raw.stream.rate_limit_per_min as u32,
        },
        cache: CacheConfig {
            metadata_ttl_secs: raw.cache.metadata_ttl_secs,
            max_entries: raw.cache.max_entries as usize,
        },
        metrics: MetricsConfig {
            store_scan_secs: raw.metrics.store_scan_secs,
        },
        auth: AuthConfig {
            session_idle_secs: raw.auth.session_idle_secs as i64,
            session_max_secs: raw.auth.session_max_secs as i64,
            login_attempts_per_min: raw.auth.login_attempts_per_min as u32,
            hash_concurrency: raw.auth.hash_concurrency as usize,
            hash_queue: raw.auth.hash_queue as usize,
        },
        rum: RumConfig {
            max_routes: raw.rum.max_routes as usize,
            rate_limit_per_min: raw.rum.rate_limit_per_min as u32,
            cors_origins: raw.rum.cors_origins.clone(),
        },
    })
}

fn require_s3(c: &Check<'_>, s3: &S3Config, why: &str) -> Result<(), ConfigError> {
    if s3.endpoint.is_none() {
        return Err(c.err("storage.s3.endpoint", format!("empty while {why}")));
    }
    for (key, empty) in [
        ("storage.s3.bucket", s3.bucket.is_empty()),
        ("storage.s3.access_key_id", s3.access_key_id.is_empty()),
        (
            "storage.s3.secret_access_key",
            s3.secret_access_key.is_empty(),
        ),
    ] {
        if empty {
            return Err(c.err(key, format!("empty while {why}")));
        }
    }
    Ok(())
}

fn provider_list() -> String {
    CdnProvider::ALL.map(CdnProvider::as_str).join("|")
}

fn parse_http_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| format!("{s:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!(
            "{s:?} must be an http:// or https:// URL with a host"
        ));
    }
    Ok(url)
}

/// Placeholders must be known and `{expires}`, `{uri}`, `{secret}` present: without them a link
/// would not expire, not be tied to its file, or be forgeable.
fn check_nginx_expression(expr: &str) -> Result<(), String> {
    let mut rest = expr;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("{expr:?} has an unclosed '{{'"))?;
        let name = &rest[open..open + close + 1];
        if !NGINX_PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "{name:?} is not one of {}",
                NGINX_PLACEHOLDERS.join(" ")
            ));
        }
        rest = &rest[open + close + 1..];
    }
    for needed in ["{expires}", "{uri}", "{secret}"] {
        if !expr.contains(needed) {
            return Err(format!(
                "{expr:?} lacks {needed} (default: \"{{expires}}{{uri}} {{secret}}\")"
            ));
        }
    }
    Ok(())
}

fn parse_countries(list: &[String]) -> Result<Vec<String>, String> {
    list.iter()
        .map(|c| {
            let up = c.trim().to_ascii_uppercase();
            if up.len() == 2 && up.bytes().all(|b| b.is_ascii_uppercase()) {
                Ok(up)
            } else {
                Err(format!(
                    "{c:?} is not an ISO 3166-1 alpha-2 code such as \"FR\""
                ))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_without_any_file() {
        let c = from_toml_str("").unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.storage.local_root, PathBuf::from("./veza-data/blobs"));
        assert!(!c.cdn.enabled);
        assert_eq!(c.cdn.fallback, vec![CdnProvider::S3, CdnProvider::Local]);
        assert_eq!(c.hls.ladder_kbps, vec![64, 128, 256]);
    }

    #[test]
    fn enabled_bunny_without_key_is_refused() {
        let e =
            from_toml_str("[cdn]\nenabled = true\nbase_url = \"https://z.b-cdn.net\"").unwrap_err();
        assert!(e.to_string().starts_with("cdn.security_key"), "{e}");
    }

    #[test]
    fn a_short_origin_secret_and_a_bad_proxy_are_refused() {
        let e = from_toml_str("[cdn.bunny]\norigin_secret = \"hunter2\"").unwrap_err();
        assert!(e.to_string().starts_with("cdn.bunny.origin_secret"), "{e}");
        assert!(from_toml_str("[cdn.bunny]\norigin_secret = \"0123456789abcdef\"").is_ok());
        let e = from_toml_str("[server]\ntrusted_proxies = [\"10.0.0.0/33\"]").unwrap_err();
        assert!(e.to_string().starts_with("server.trusted_proxies"), "{e}");
        let c = from_toml_str("[server]\ntrusted_proxies = [\"10.1.2.3/8\", \"::1\"]").unwrap();
        let nets: Vec<String> = c
            .server
            .trusted_proxies
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(nets, ["10.0.0.0/8", "::1/128"]);
    }

    #[test]
    fn unknown_key_is_named() {
        let e = from_toml_str("[server]\nlisten_addr = \"x\"").unwrap_err();
        assert!(e.to_string().starts_with("server.listen_addr"), "{e}");
    }

    #[test]
    fn secret_debug_is_masked() {
        let c = from_toml_str("[cdn]\nsecurity_key = \"hunter2\"").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn numeric_looking_secret_stays_text() {
        let c = from_toml_str("[cdn]\nsecurity_key = 1234").unwrap();
        assert_eq!(c.cdn.security_key.expose(), "1234");
    }

    #[test]
    fn signing_sections_have_defaults_and_checks() {
        let c = from_toml_str("").unwrap();
        assert_eq!(c.cdn.nginx.expression, "{expires}{uri} {secret}");
        assert_eq!(c.cdn.cloudflare.param, "verify");
        assert!(c.cdn.local.key.is_empty() && c.cdn.cloudfront.private_key_path.is_none());
        let e = from_toml_str("[cdn.local]\nkey = \"short\"").unwrap_err();
        assert!(e.to_string().starts_with("cdn.local.key"), "{e}");
        assert!(!e.to_string().contains("short\""), "{e}");
        let e = from_toml_str("[cdn.nginx]\nexpression = \"{uri} {secret}\"").unwrap_err();
        assert!(e.to_string().starts_with("cdn.nginx.expression"), "{e}");
        let e = from_toml_str("[cdn.nginx]\nexpression = \"{expires}{url} {secret}\"").unwrap_err();
        assert!(e.to_string().contains("{url}"), "{e}");
        let e = from_toml_str("[cdn.cloudflare]\nparam = \"a b\"").unwrap_err();
        assert!(e.to_string().starts_with("cdn.cloudflare.param"), "{e}");
        let e = from_toml_str(
            "[cdn]\nenabled = true\nprovider = \"cloudfront\"\nbase_url = \"https://d.cloudfront.net\"",
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("cdn.cloudfront.key_pair_id"),
            "{e}"
        );
    }

    #[test]
    fn local_keys_are_masked() {
        let key = "k".repeat(40);
        let toml = format!("[cdn.local]\nkey = \"{key}\"\nprevious_key = \"{key}\"");
        let fig =
            Figment::from(Serialized::defaults(RawConfig::default())).merge(Toml::string(&toml));
        let c = from_figment(&fig).unwrap();
        assert_eq!(c.cdn.local.key.expose(), key);
        assert!(!masked_toml(&c, &fig).unwrap().contains(&key));
    }

    #[test]
    fn countries_are_normalised_and_checked() {
        let c = from_toml_str("[cdn.bunny]\ncountries_allowed = [\"fr\", \"BE\"]").unwrap();
        assert_eq!(c.cdn.bunny.countries_allowed, vec!["FR", "BE"]);
        assert!(from_toml_str("[cdn.bunny]\ncountries_blocked = [\"FRA\"]").is_err());
    }
}
