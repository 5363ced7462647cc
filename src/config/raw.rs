//! The raw layer: exactly the file/env shape, defaults filled in.

use serde::{Deserialize, Deserializer, Serialize};

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
    pub subsonic: RawSubsonic,
    pub cache: RawCache,
    pub media: RawMedia,
    pub metrics: RawMetrics,
    pub embed: RawEmbed,
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
    pub normalize: bool,
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

/// `[subsonic]`: the OpenSubsonic API for players' apps.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSubsonic {
    pub enabled: bool,
    pub proxy_clients: Vec<String>,
}

impl Default for RawSubsonic {
    fn default() -> Self {
        Self {
            enabled: true,
            proxy_clients: vec!["DSub".into()],
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

/// `[media]`: the `/media/` origin.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMedia {
    pub cache_mb: u64,
}

impl Default for RawMedia {
    fn default() -> Self {
        Self { cache_mb: 64 }
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
    pub sample_rate: f64,
}

/// `[embed]`: the public `/embed/{id}` player page.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawEmbed {
    pub frame_ancestors: String,
}

impl Default for RawEmbed {
    fn default() -> Self {
        Self {
            frame_ancestors: "*".into(),
        }
    }
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
            subsonic: RawSubsonic::default(),
            cache: RawCache::default(),
            media: RawMedia::default(),
            metrics: RawMetrics::default(),
            embed: RawEmbed::default(),
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
            normalize: false,
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
            // Every page load while developing; a quarter of them in production.
            sample_rate: if cfg!(debug_assertions) { 1.0 } else { 0.25 },
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
