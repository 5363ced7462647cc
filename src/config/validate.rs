//! Validation: raw strings into typed values, one `validate_<section>` per section. Every error
//! names its key and where the value came from.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use url::Url;

use super::load::describe_key_source;
use super::raw::{
    RawAuth, RawCache, RawCdn, RawConfig, RawEmbed, RawHls, RawJobs, RawLog, RawMedia, RawMetrics,
    RawRum, RawServer, RawStorage, RawStream, RawSubsonic,
};
use super::*;

/// Builds errors that say where the offending value came from.
pub(super) struct Check<'a> {
    pub(super) fig: &'a Figment,
}

impl Check<'_> {
    fn err(&self, key: &str, problem: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.into(),
            source_desc: describe_key_source(self.fig, key),
            problem: problem.into(),
        }
    }

    /// `key`'s value must lie in `range`.
    fn range<T>(&self, key: &str, v: T, range: RangeInclusive<T>) -> Result<(), ConfigError>
    where
        T: PartialOrd + std::fmt::Display,
    {
        if range.contains(&v) {
            return Ok(());
        }
        Err(self.err(
            key,
            format!("{v} is outside {}..={}", range.start(), range.end()),
        ))
    }

    /// Each `(key, value, range)` in turn.
    fn ranges(&self, checks: &[(&str, u64, RangeInclusive<u64>)]) -> Result<(), ConfigError> {
        for (key, v, range) in checks {
            self.range(key, *v, range.clone())?;
        }
        Ok(())
    }
}

/// Raw into typed, section by section.
pub(super) fn validate(fig: &Figment, raw: &RawConfig) -> Result<Config, ConfigError> {
    let c = Check { fig };
    if raw.data_dir.trim().is_empty() {
        return Err(c.err("data_dir", "must not be empty"));
    }
    let data_dir = PathBuf::from(&raw.data_dir);
    let server = validate_server(&c, &raw.server)?;
    let log = validate_log(&c, &raw.log)?;
    let storage = validate_storage(&c, &raw.storage, &data_dir)?;
    let cdn = validate_cdn(&c, &raw.cdn, &storage.s3)?;
    Ok(Config {
        data_dir,
        server,
        log,
        storage,
        cdn,
        hls: validate_hls(&c, &raw.hls)?,
        jobs: validate_jobs(&c, &raw.jobs)?,
        stream: validate_stream(&c, &raw.stream)?,
        subsonic: validate_subsonic(&c, &raw.subsonic)?,
        cache: validate_cache(&c, &raw.cache)?,
        media: validate_media(&c, &raw.media)?,
        metrics: validate_metrics(&c, &raw.metrics)?,
        auth: validate_auth(&c, &raw.auth)?,
        rum: validate_rum(&c, &raw.rum)?,
        embed: validate_embed(&c, &raw.embed)?,
    })
}

fn validate_server(c: &Check<'_>, raw: &RawServer) -> Result<ServerConfig, ConfigError> {
    let listen: SocketAddr = raw.listen.parse().map_err(|_| {
        c.err(
            "server.listen",
            format!(
                "{:?} is not an address:port such as 127.0.0.1:8080 or [::]:8080",
                raw.listen
            ),
        )
    })?;
    let public_url = parse_http_url(&raw.public_url).map_err(|p| c.err("server.public_url", p))?;
    let trusted_proxies = raw
        .trusted_proxies
        .iter()
        .map(|p| parse_cidr(p).map_err(|m| c.err("server.trusted_proxies", m)))
        .collect::<Result<Vec<_>, _>>()?;
    c.ranges(&[
        (
            "server.max_json_bytes",
            raw.max_json_bytes,
            1024..=64 * 1024 * 1024,
        ),
        ("server.readyz_check_secs", raw.readyz_check_secs, 0..=3600),
        (
            "server.header_read_timeout_secs",
            raw.header_read_timeout_secs,
            1..=3600,
        ),
        (
            "server.idle_timeout_secs",
            raw.idle_timeout_secs,
            1..=86_400,
        ),
        ("server.body_timeout_secs", raw.body_timeout_secs, 1..=3600),
        ("server.max_connections", raw.max_connections, 1..=1_000_000),
    ])?;
    Ok(ServerConfig {
        listen,
        public_url,
        max_json_bytes: raw.max_json_bytes,
        metrics_public: raw.metrics_public,
        trusted_proxies,
        readyz_check: secs(raw.readyz_check_secs),
        header_read_timeout: secs(raw.header_read_timeout_secs),
        idle_timeout: secs(raw.idle_timeout_secs),
        body_timeout: secs(raw.body_timeout_secs),
        max_connections: raw.max_connections as usize,
    })
}

fn validate_log(c: &Check<'_>, raw: &RawLog) -> Result<LogConfig, ConfigError> {
    let format = match raw.format.as_str() {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(c.err(
                "log.format",
                format!("{other:?} is not \"text\" or \"json\""),
            ));
        }
    };
    if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&raw.level) {
        return Err(c.err(
            "log.level",
            format!("{:?} is not a valid filter: {e}", raw.level),
        ));
    }
    Ok(LogConfig {
        level: raw.level.clone(),
        format,
    })
}

fn validate_storage(
    c: &Check<'_>,
    raw: &RawStorage,
    data_dir: &Path,
) -> Result<StorageConfig, ConfigError> {
    let backend = match raw.backend.as_str() {
        "local" => StorageBackend::Local,
        "s3" => StorageBackend::S3,
        other => {
            return Err(c.err(
                "storage.backend",
                format!("{other:?} is not \"local\" or \"s3\""),
            ));
        }
    };
    c.range(
        "storage.max_upload_bytes",
        raw.max_upload_bytes,
        1024..=1024 * 1024 * 1024 * 1024,
    )?;
    let local_root = if raw.local.root.is_empty() {
        data_dir.join("blobs")
    } else {
        PathBuf::from(&raw.local.root)
    };
    let endpoint = if raw.s3.endpoint.is_empty() {
        None
    } else {
        Some(parse_http_url(&raw.s3.endpoint).map_err(|p| c.err("storage.s3.endpoint", p))?)
    };
    let s3 = S3Config {
        endpoint,
        bucket: raw.s3.bucket.clone(),
        region: raw.s3.region.clone(),
        access_key_id: raw.s3.access_key_id.clone(),
        secret_access_key: Secret::new(&raw.s3.secret_access_key),
        session_token: Secret::new(&raw.s3.session_token),
        path_style: raw.s3.path_style,
    };
    if s3.region.is_empty() {
        return Err(c.err(
            "storage.s3.region",
            "must not be empty (use \"us-east-1\" for MinIO/Garage, \"auto\" for R2)",
        ));
    }
    if backend == StorageBackend::S3 {
        require_s3(c, &s3, "storage.backend = \"s3\"")?;
    }
    Ok(StorageConfig {
        backend,
        max_upload_bytes: raw.max_upload_bytes,
        local_root,
        s3,
    })
}

fn validate_cdn(c: &Check<'_>, raw: &RawCdn, s3: &S3Config) -> Result<CdnConfig, ConfigError> {
    let provider = CdnProvider::parse(&raw.provider).ok_or_else(|| {
        c.err(
            "cdn.provider",
            format!("{:?} is not one of {}", raw.provider, provider_list()),
        )
    })?;
    let base_url = if raw.base_url.is_empty() {
        None
    } else {
        Some(parse_http_url(&raw.base_url).map_err(|p| c.err("cdn.base_url", p))?)
    };
    let security_key = Secret::new(&raw.security_key);
    c.range("cdn.ttl_secs", raw.ttl_secs, 1..=7 * 24 * 3600)?;
    let mut fallback = Vec::with_capacity(raw.fallback.len());
    for name in &raw.fallback {
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
    if raw.enabled {
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
            CdnProvider::S3 => require_s3(c, s3, "cdn.provider = \"s3\"")?,
            CdnProvider::Cloudfront => {
                for (key, empty) in [
                    (
                        "cdn.cloudfront.key_pair_id",
                        raw.cloudfront.key_pair_id.is_empty(),
                    ),
                    (
                        "cdn.cloudfront.private_key_path",
                        raw.cloudfront.private_key_path.is_empty(),
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
    Ok(CdnConfig {
        enabled: raw.enabled,
        provider,
        base_url,
        security_key,
        ttl_secs: raw.ttl_secs,
        fallback,
        bunny: validate_bunny(c, raw)?,
        local: validate_cdn_local(c, raw)?,
        cloudfront: CloudFrontConfig {
            key_pair_id: raw.cloudfront.key_pair_id.clone(),
            private_key_path: (!raw.cloudfront.private_key_path.is_empty())
                .then(|| PathBuf::from(&raw.cloudfront.private_key_path)),
        },
        nginx: NginxConfig {
            expression: {
                check_nginx_expression(&raw.nginx.expression)
                    .map_err(|p| c.err("cdn.nginx.expression", p))?;
                raw.nginx.expression.clone()
            },
        },
        cloudflare: validate_cloudflare(c, raw)?,
    })
}

fn validate_bunny(c: &Check<'_>, raw: &RawCdn) -> Result<BunnyConfig, ConfigError> {
    let b = &raw.bunny;
    // A guessable header would open the origin to anyone who guesses it.
    if !b.origin_secret.is_empty() && b.origin_secret.chars().count() < MIN_ORIGIN_SECRET_CHARS {
        return Err(c.err(
            "cdn.bunny.origin_secret",
            format!(
                "must be at least {MIN_ORIGIN_SECRET_CHARS} characters (e.g. `openssl rand -hex 24`)"
            ),
        ));
    }
    let scheme = match b.scheme.as_str() {
        "hs256" => BunnyScheme::Hs256,
        "sha256" => BunnyScheme::Sha256,
        other => {
            return Err(c.err(
                "cdn.bunny.scheme",
                format!("{other:?} is not \"hs256\" or \"sha256\""),
            ));
        }
    };
    Ok(BunnyConfig {
        scheme,
        path_form: b.path_form,
        ip_binding: b.ip_binding,
        countries_allowed: parse_countries(&b.countries_allowed)
            .map_err(|p| c.err("cdn.bunny.countries_allowed", p))?,
        countries_blocked: parse_countries(&b.countries_blocked)
            .map_err(|p| c.err("cdn.bunny.countries_blocked", p))?,
        speed_limit_kbps: b.speed_limit_kbps,
        api_key: Secret::new(&b.api_key),
        origin_secret: Secret::new(&b.origin_secret),
        api_url: parse_http_url(&b.api_url).map_err(|m| c.err("cdn.bunny.api_url", m))?,
        verify_tokens: b.verify_tokens,
    })
}

fn validate_cdn_local(c: &Check<'_>, raw: &RawCdn) -> Result<LocalSigningConfig, ConfigError> {
    for (key, value) in [
        ("cdn.local.key", &raw.local.key),
        ("cdn.local.previous_key", &raw.local.previous_key),
    ] {
        // A short HMAC key is guessable offline from one signed URL.
        if !value.is_empty() && value.len() < 32 {
            return Err(c.err(
                key,
                "shorter than 32 characters; use e.g. `openssl rand -hex 32`, or leave empty to generate {data_dir}/signing.key",
            ));
        }
    }
    Ok(LocalSigningConfig {
        key: Secret::new(&raw.local.key),
        previous_key: Secret::new(&raw.local.previous_key),
    })
}

fn validate_cloudflare(c: &Check<'_>, raw: &RawCdn) -> Result<CloudflareConfig, ConfigError> {
    let param = &raw.cloudflare.param;
    if param.is_empty()
        || param.len() > 32
        || !param
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(c.err(
            "cdn.cloudflare.param",
            format!("{param:?} must be 1-32 characters of A-Z a-z 0-9 _ -"),
        ));
    }
    Ok(CloudflareConfig {
        param: param.clone(),
    })
}

fn validate_hls(c: &Check<'_>, raw: &RawHls) -> Result<HlsConfig, ConfigError> {
    if raw.ladder_kbps.is_empty() {
        return Err(c.err("hls.ladder_kbps", "must list at least one bitrate"));
    }
    let mut ladder = Vec::with_capacity(raw.ladder_kbps.len());
    for &k in &raw.ladder_kbps {
        if !(16..=512).contains(&k) {
            return Err(c.err("hls.ladder_kbps", format!("{k} kbps is outside 16..=512")));
        }
        ladder.push(k as u32);
    }
    ladder.sort_unstable();
    ladder.dedup();
    for (key, prog) in [("hls.ffmpeg", &raw.ffmpeg), ("hls.ffprobe", &raw.ffprobe)] {
        if prog.trim().is_empty() {
            return Err(c.err(key, "must name a program"));
        }
    }
    c.ranges(&[
        ("hls.segment_secs", raw.segment_secs, 1..=30),
        ("hls.timeout_secs", raw.timeout_secs, 10..=86_400),
    ])?;
    Ok(HlsConfig {
        enabled: raw.enabled,
        ffmpeg: raw.ffmpeg.clone(),
        ffprobe: raw.ffprobe.clone(),
        ladder_kbps: ladder,
        segment_secs: raw.segment_secs as u32,
        timeout_secs: raw.timeout_secs,
        normalize: raw.normalize,
    })
}

fn validate_jobs(c: &Check<'_>, raw: &RawJobs) -> Result<JobsConfig, ConfigError> {
    c.ranges(&[
        ("jobs.workers", raw.workers, 1..=64),
        ("jobs.max_attempts", raw.max_attempts, 1..=100),
        ("jobs.lease_secs", raw.lease_secs, 2..=3600),
        ("jobs.retry_base_secs", raw.retry_base_secs, 1..=86_400),
        ("jobs.retry_max_secs", raw.retry_max_secs, 1..=604_800),
    ])?;
    if raw.retry_max_secs < raw.retry_base_secs {
        return Err(c.err(
            "jobs.retry_max_secs",
            "must not be below jobs.retry_base_secs",
        ));
    }
    Ok(JobsConfig {
        workers: raw.workers as usize,
        max_attempts: raw.max_attempts as u32,
        lease_secs: raw.lease_secs,
        retry_base_secs: raw.retry_base_secs,
        retry_max_secs: raw.retry_max_secs,
    })
}

fn validate_stream(c: &Check<'_>, raw: &RawStream) -> Result<StreamConfig, ConfigError> {
    c.range(
        "stream.rate_limit_per_min",
        raw.rate_limit_per_min,
        1..=1_000_000,
    )?;
    Ok(StreamConfig {
        rate_limit_per_min: raw.rate_limit_per_min as u32,
    })
}

fn validate_subsonic(c: &Check<'_>, raw: &RawSubsonic) -> Result<SubsonicConfig, ConfigError> {
    if raw.proxy_clients.len() > 64 {
        return Err(c.err("subsonic.proxy_clients", "at most 64 client names"));
    }
    for name in &raw.proxy_clients {
        let ok = (1..=64).contains(&name.chars().count()) && !name.chars().any(char::is_control);
        if !ok {
            return Err(c.err(
                "subsonic.proxy_clients",
                format!("{name:?} is not a client name of 1-64 printable characters"),
            ));
        }
    }
    Ok(SubsonicConfig {
        enabled: raw.enabled,
        proxy_clients: raw.proxy_clients.clone(),
    })
}

fn validate_cache(c: &Check<'_>, raw: &RawCache) -> Result<CacheConfig, ConfigError> {
    c.ranges(&[
        ("cache.metadata_ttl_secs", raw.metadata_ttl_secs, 0..=3600),
        ("cache.max_entries", raw.max_entries, 0..=10_000_000),
    ])?;
    Ok(CacheConfig {
        metadata_ttl_secs: raw.metadata_ttl_secs,
        max_entries: raw.max_entries as usize,
    })
}

fn validate_media(c: &Check<'_>, raw: &RawMedia) -> Result<MediaConfig, ConfigError> {
    c.range("media.cache_mb", raw.cache_mb, 0..=65_536)?;
    Ok(MediaConfig {
        cache_bytes: raw.cache_mb * 1024 * 1024,
    })
}

fn validate_metrics(c: &Check<'_>, raw: &RawMetrics) -> Result<MetricsConfig, ConfigError> {
    c.range("metrics.store_scan_secs", raw.store_scan_secs, 10..=86_400)?;
    Ok(MetricsConfig {
        store_scan_secs: raw.store_scan_secs,
    })
}

fn validate_auth(c: &Check<'_>, raw: &RawAuth) -> Result<AuthConfig, ConfigError> {
    c.ranges(&[
        (
            "auth.session_idle_secs",
            raw.session_idle_secs,
            60..=30 * 24 * 3600,
        ),
        (
            "auth.session_max_secs",
            raw.session_max_secs,
            60..=365 * 24 * 3600,
        ),
        (
            "auth.login_attempts_per_min",
            raw.login_attempts_per_min,
            1..=10_000,
        ),
        ("auth.hash_concurrency", raw.hash_concurrency, 1..=64),
        ("auth.hash_queue", raw.hash_queue, 0..=10_000),
    ])?;
    Ok(AuthConfig {
        session_idle_secs: raw.session_idle_secs as i64,
        session_max_secs: raw.session_max_secs as i64,
        login_attempts_per_min: raw.login_attempts_per_min as u32,
        hash_concurrency: raw.hash_concurrency as usize,
        hash_queue: raw.hash_queue as usize,
    })
}

fn validate_rum(c: &Check<'_>, raw: &RawRum) -> Result<RumConfig, ConfigError> {
    c.ranges(&[
        ("rum.max_routes", raw.max_routes, 1..=10_000),
        (
            "rum.rate_limit_per_min",
            raw.rate_limit_per_min,
            1..=100_000,
        ),
    ])?;
    for o in &raw.cors_origins {
        if o != "*" {
            parse_http_url(o).map_err(|p| c.err("rum.cors_origins", p))?;
        }
    }
    if !(0.0..=1.0).contains(&raw.sample_rate) {
        return Err(c.err(
            "rum.sample_rate",
            format!("{} is outside 0..=1", raw.sample_rate),
        ));
    }
    Ok(RumConfig {
        max_routes: raw.max_routes as usize,
        rate_limit_per_min: raw.rate_limit_per_min as u32,
        cors_origins: raw.cors_origins.clone(),
        sample_rate: raw.sample_rate,
    })
}

fn validate_embed(c: &Check<'_>, raw: &RawEmbed) -> Result<EmbedConfig, ConfigError> {
    let fa = raw.frame_ancestors.trim();
    // Goes into a CSP header: no separators or quotes that could add directives.
    if fa.is_empty() || fa.contains([';', ',', '\'', '"']) || fa.chars().any(char::is_control) {
        return Err(c.err(
            "embed.frame_ancestors",
            format!("{fa:?}: use `*` or space-separated origins such as https://cms.example"),
        ));
    }
    Ok(EmbedConfig {
        frame_ancestors: fa.to_owned(),
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

/// A CIDR (`10.0.0.0/8`, `::1/128`) or a bare address (one host).
fn parse_cidr(s: &str) -> Result<ipnet::IpNet, String> {
    let t = s.trim();
    t.parse::<ipnet::IpNet>()
        .or_else(|_| t.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map(|n| n.trunc())
        .map_err(|_| format!("{s:?} is not an IP address or CIDR such as 10.0.0.0/8"))
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
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
    use super::super::from_toml_str;

    /// The first line of the error for one TOML document.
    fn refused(toml: &str) -> String {
        from_toml_str(toml).unwrap_err().to_string()
    }

    #[test]
    fn validate_server_checks_proxies_and_ranges() {
        let e = refused("[server]\ntrusted_proxies = [\"10.0.0.0/33\"]");
        assert!(e.starts_with("server.trusted_proxies"), "{e}");
        let c = from_toml_str("[server]\ntrusted_proxies = [\"10.1.2.3/8\", \"::1\"]").unwrap();
        let nets: Vec<String> = c
            .server
            .trusted_proxies
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(nets, ["10.0.0.0/8", "::1/128"]);
        let e = refused("[server]\nmax_connections = 0");
        assert!(e.starts_with("server.max_connections"), "{e}");
        assert!(e.ends_with(": 0 is outside 1..=1000000"), "{e}");
        assert!(refused("[server]\nlisten = \"8080\"").starts_with("server.listen"));
    }

    #[test]
    fn validate_storage_requires_s3_settings_for_s3() {
        let e = refused("[storage]\nbackend = \"s3\"");
        assert!(e.starts_with("storage.s3.endpoint"), "{e}");
        assert!(e.contains("storage.backend = \"s3\""), "{e}");
        let e = refused("[storage]\nmax_upload_bytes = 10");
        assert!(e.starts_with("storage.max_upload_bytes"), "{e}");
    }

    #[test]
    fn validate_cdn_refuses_an_enabled_provider_that_cannot_sign() {
        let e = refused("[cdn]\nenabled = true\nbase_url = \"https://z.b-cdn.net\"");
        assert!(e.starts_with("cdn.security_key"), "{e}");
        let e = refused(
            "[cdn]\nenabled = true\nprovider = \"cloudfront\"\nbase_url = \"https://d.cloudfront.net\"",
        );
        assert!(e.starts_with("cdn.cloudfront.key_pair_id"), "{e}");
        let e = refused("[cdn]\nenabled = true\nsecurity_key = \"k\"");
        assert!(e.starts_with("cdn.base_url"), "{e}");
        let e = refused("[cdn]\nfallback = [\"akamai\"]");
        assert!(e.starts_with("cdn.fallback"), "{e}");
    }

    #[test]
    fn validate_bunny_checks_secret_scheme_and_countries() {
        let e = refused("[cdn.bunny]\norigin_secret = \"hunter2\"");
        assert!(e.starts_with("cdn.bunny.origin_secret"), "{e}");
        assert!(from_toml_str("[cdn.bunny]\norigin_secret = \"0123456789abcdef\"").is_ok());
        let c = from_toml_str("[cdn.bunny]\ncountries_allowed = [\"fr\", \"BE\"]").unwrap();
        assert_eq!(c.cdn.bunny.countries_allowed, vec!["FR", "BE"]);
        assert!(from_toml_str("[cdn.bunny]\ncountries_blocked = [\"FRA\"]").is_err());
        assert!(refused("[cdn.bunny]\nscheme = \"md5\"").starts_with("cdn.bunny.scheme"));
    }

    #[test]
    fn validate_signing_sections_have_defaults_and_checks() {
        let c = from_toml_str("").unwrap();
        assert_eq!(c.cdn.nginx.expression, "{expires}{uri} {secret}");
        assert_eq!(c.cdn.cloudflare.param, "verify");
        assert!(c.cdn.local.key.is_empty() && c.cdn.cloudfront.private_key_path.is_none());
        let e = refused("[cdn.local]\nkey = \"short\"");
        assert!(e.starts_with("cdn.local.key"), "{e}");
        assert!(!e.contains("short\""), "{e}");
        let e = refused("[cdn.nginx]\nexpression = \"{uri} {secret}\"");
        assert!(e.starts_with("cdn.nginx.expression"), "{e}");
        let e = refused("[cdn.nginx]\nexpression = \"{expires}{url} {secret}\"");
        assert!(e.contains("{url}"), "{e}");
        let e = refused("[cdn.cloudflare]\nparam = \"a b\"");
        assert!(e.starts_with("cdn.cloudflare.param"), "{e}");
    }

    #[test]
    fn validate_hls_sorts_the_ladder_and_checks_programs() {
        let c = from_toml_str("[hls]\nladder_kbps = [256, 64, 64]").unwrap();
        assert_eq!(c.hls.ladder_kbps, vec![64, 256]);
        assert!(refused("[hls]\nladder_kbps = []").starts_with("hls.ladder_kbps"));
        assert!(refused("[hls]\nffprobe = \" \"").starts_with("hls.ffprobe"));
        assert!(refused("[hls]\nsegment_secs = 31").starts_with("hls.segment_secs"));
    }

    #[test]
    fn validate_jobs_orders_the_retry_bounds() {
        let e = refused("[jobs]\nretry_base_secs = 60\nretry_max_secs = 30");
        assert!(e.starts_with("jobs.retry_max_secs"), "{e}");
        assert!(refused("[jobs]\nworkers = 0").starts_with("jobs.workers"));
    }

    #[test]
    fn validate_small_sections_check_their_ranges() {
        for (toml, key) in [
            (
                "[stream]\nrate_limit_per_min = 0",
                "stream.rate_limit_per_min",
            ),
            (
                "[cache]\nmetadata_ttl_secs = 3601",
                "cache.metadata_ttl_secs",
            ),
            ("[metrics]\nstore_scan_secs = 1", "metrics.store_scan_secs"),
            ("[auth]\nhash_concurrency = 0", "auth.hash_concurrency"),
            ("[rum]\nmax_routes = 0", "rum.max_routes"),
            ("[rum]\ncors_origins = [\"ftp://x\"]", "rum.cors_origins"),
            ("[log]\nformat = \"xml\"", "log.format"),
        ] {
            let e = refused(toml);
            assert!(e.starts_with(key), "{toml}: {e}");
        }
    }
}
