//! URL signing: every URL a player gets is signed here, for the CDN (Bunny, CloudFront,
//! nginx, Cloudflare), for the S3 bucket, or for Veza's own `/media/` endpoints.
//!
//! Each provider is one file behind the [`Signer`] trait and signs purely from
//! (config, object path, time, options); the only I/O is reading a key file when a signer is
//! built. [`CdnService`] strings them into the fallback chain `cdn.provider`, then each of
//! `cdn.fallback`, so playback goes on when one provider breaks. The algorithms, and the
//! places where the providers' own SDKs disagree, are in docs/SIGNING.md.

pub mod bunny;
pub mod cloudflare;
pub mod cloudfront;
pub mod local;
pub mod nginx;
pub mod s3;

use std::collections::HashMap;
use std::net::IpAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use prometheus::IntCounterVec;
use serde::Serialize;
use url::Url;

use crate::config::{CdnProvider, Config};
use crate::metrics::Metrics;

pub use bunny::BunnySigner;
pub use cloudflare::CloudflareSigner;
pub use cloudfront::CloudFrontSigner;
pub use local::LocalSigner;
pub use nginx::NginxSigner;
pub use s3::S3Signer;

/// A provider's failure is logged at most this often, so a broken CDN key cannot flood logs.
pub const WARN_INTERVAL: Duration = Duration::from_secs(60);

/// Longest lifetime any provider accepts (S3's limit; also `cdn.ttl_secs`' bound).
pub const MAX_TTL_SECS: u64 = 7 * 24 * 3600;

/// Why a URL could not be signed. Messages never contain key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    /// The request itself is unsignable (bad path, option, lifetime): no provider would do better.
    #[error("{0}")]
    BadInput(String),
    /// The provider lacks configuration it needs.
    #[error("{provider}: not configured: {what}")]
    Misconfigured {
        /// Which provider.
        provider: CdnProvider,
        /// What is missing or wrong.
        what: String,
    },
    /// A key file could not be read, parsed or created.
    #[error("{provider}: key file {path}: {reason}")]
    KeyFile {
        /// Which provider.
        provider: CdnProvider,
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The provider cannot sign this particular request (e.g. nginx needs the viewer IP).
    #[error("{provider}: cannot sign this request: {what}")]
    Unsupported {
        /// Which provider.
        provider: CdnProvider,
        /// Why.
        what: String,
    },
    /// The provider panicked; caught at the chain's boundary.
    #[error("{provider}: panicked while signing")]
    Panicked {
        /// Which provider.
        provider: CdnProvider,
    },
    /// Every provider in the chain failed.
    #[error("no provider could sign: {0}")]
    AllFailed(String),
}

impl SigningError {
    fn bad(msg: impl Into<String>) -> Self {
        SigningError::BadInput(msg.into())
    }
}

/// What to sign, and how. Options a provider cannot express are ignored by it (documented per
/// field); `Default` gives a plain file URL.
#[derive(Debug, Clone, Default)]
pub struct SignRequest {
    /// Decoded object path starting with `/` (`/tracks/7f3a9c/hls/master.m3u8`); the URL
    /// carries it percent-encoded. For S3 it is the object key (the leading `/` is dropped).
    pub path: String,
    /// Signing time, Unix seconds (S3's `X-Amz-Date`, Cloudflare's timestamp).
    pub now: u64,
    /// Absolute expiry, Unix seconds; `None` = `now + ttl`.
    pub expires: Option<u64>,
    /// Lifetime; `None` = `cdn.ttl_secs`.
    pub ttl: Option<u64>,
    /// Directory token: one URL authorises every file below it (Bunny, local). Must hold
    /// `path`; a missing trailing `/` is added. S3, CloudFront, nginx and Cloudflare sign the
    /// object alone.
    pub token_path: Option<String>,
    /// Bunny path form (`/bcdn_token=…/path`) instead of query form; `None` = config.
    pub path_form: Option<bool>,
    /// Bind the URL to this viewer address (Bunny, local, nginx with `{remote_addr}`); callers
    /// pass it only when binding is wanted. IPv4-mapped IPv6 counts as IPv4.
    pub ip: Option<IpAddr>,
    /// Bunny `token_countries`; `None` = config.
    pub countries_allowed: Option<Vec<String>>,
    /// Bunny `token_countries_blocked`; `None` = config.
    pub countries_blocked: Option<Vec<String>>,
    /// Bunny `limit` in kB/s (0 = none); `None` = config.
    pub speed_limit_kbps: Option<u64>,
    /// Bunny `token_ignore_params=true`: players may add query parameters later.
    pub ignore_params: bool,
    /// Extra query parameters, signed (raw values; the URL percent-encodes them).
    pub query: Vec<(String, String)>,
}

impl SignRequest {
    /// A request for `path` at `now`, everything else default.
    pub fn new(path: impl Into<String>, now: u64) -> Self {
        Self {
            path: path.into(),
            now,
            ..Self::default()
        }
    }

    /// Checks what every provider requires: path shape, token_path, country codes, query names,
    /// lifetime.
    pub fn validate(&self) -> Result<(), SigningError> {
        check_path(&self.path)?;
        token_path(self)?;
        check_query(&self.query, &[])?;
        for c in self
            .countries_allowed
            .iter()
            .chain(&self.countries_blocked)
            .flatten()
        {
            let c = c.trim();
            if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(SigningError::bad(format!(
                    "{c:?} is not an ISO 3166-1 alpha-2 country code such as \"FR\""
                )));
            }
        }
        if let Some(ttl) = self.ttl {
            self.ttl_or(ttl)?;
        }
        Ok(())
    }

    /// The lifetime to use, checked against 1..=[`MAX_TTL_SECS`].
    pub(crate) fn ttl_or(&self, default_ttl: u64) -> Result<u64, SigningError> {
        let ttl = self.ttl.unwrap_or(default_ttl);
        if !(1..=MAX_TTL_SECS).contains(&ttl) {
            return Err(SigningError::bad(format!(
                "ttl {ttl} is outside 1..={MAX_TTL_SECS} seconds"
            )));
        }
        Ok(ttl)
    }

    /// The absolute expiry: `expires`, else `now + ttl`.
    pub(crate) fn expires_or(&self, default_ttl: u64) -> Result<u64, SigningError> {
        match self.expires {
            Some(e) => Ok(e),
            None => Ok(self.now.saturating_add(self.ttl_or(default_ttl)?)),
        }
    }
}

/// A signed URL, as `veza sign --json` and the stream API return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignedUrl {
    /// The URL to hand to the player.
    pub url: String,
    /// When it stops working, Unix seconds.
    pub expires_at: u64,
    /// Which provider signed it.
    #[serde(serialize_with = "provider_name")]
    pub provider: CdnProvider,
    /// True when an earlier provider in the chain failed.
    pub fallback: bool,
}

fn provider_name<S: serde::Serializer>(p: &CdnProvider, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.as_str())
}

/// One URL from one provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The URL.
    pub url: String,
    /// Expiry, Unix seconds.
    pub expires_at: u64,
}

/// A URL-signing provider.
pub trait Signer: Send + Sync {
    /// Which provider this is.
    fn provider(&self) -> CdnProvider;
    /// Signs `req`: pure, no I/O.
    fn sign(&self, req: &SignRequest) -> Result<Signed, SigningError>;
    /// Whether a `token_path` URL opens every file below it even after a player resolves
    /// relative URIs against it (a path-carried directory token). Query-string schemes sign
    /// the one file, which breaks an HLS tree.
    fn covers_directories(&self) -> bool {
        false
    }
}

// ---------------------------------------------------------------------------------------------
// The chain.

type Built = Result<Arc<dyn Signer>, SigningError>;

struct Slot {
    provider: CdnProvider,
    // Built on first use: `veza sign --provider bunny` must not create a local key file it
    // never needs, and a broken provider is diagnosed once, not per URL.
    signer: OnceLock<Built>,
}

/// The signing service: a primary provider and its fallbacks, always built; [`Self::is_enabled`]
/// says whether URLs go to a CDN at all.
pub struct CdnService {
    enabled: bool,
    config: Option<Arc<Config>>,
    chain: Vec<Slot>,
    local: OnceLock<Result<Arc<LocalSigner>, SigningError>>,
    counter: IntCounterVec,
    last_warned: Mutex<HashMap<CdnProvider, Instant>>,
}

impl CdnService {
    /// The app's service: `cdn.provider` first when `cdn.enabled`, else `local`; then
    /// `cdn.fallback` in order.
    pub fn new(cfg: &Config, metrics: &Metrics) -> Self {
        let primary = if cfg.cdn.enabled {
            cfg.cdn.provider
        } else {
            CdnProvider::Local
        };
        Self::with_primary(cfg, metrics, primary)
    }

    /// Like [`Self::new`] with another first provider (`veza sign --provider`).
    pub fn with_primary(cfg: &Config, metrics: &Metrics, primary: CdnProvider) -> Self {
        let mut order = vec![primary];
        for p in &cfg.cdn.fallback {
            if !order.contains(p) {
                order.push(*p);
            }
        }
        Self {
            enabled: cfg.cdn.enabled,
            config: Some(Arc::new(cfg.clone())),
            chain: order
                .into_iter()
                .map(|provider| Slot {
                    provider,
                    signer: OnceLock::new(),
                })
                .collect(),
            local: OnceLock::new(),
            counter: metrics.signing.clone(),
            last_warned: Mutex::new(HashMap::new()),
        }
    }

    /// A chain of ready signers, in order (tests and embedding).
    pub fn from_signers(enabled: bool, signers: Vec<Arc<dyn Signer>>, metrics: &Metrics) -> Self {
        Self {
            enabled,
            config: None,
            chain: signers
                .into_iter()
                .map(|s| Slot {
                    provider: s.provider(),
                    signer: OnceLock::from(Ok(s)),
                })
                .collect(),
            local: OnceLock::new(),
            counter: metrics.signing.clone(),
            last_warned: Mutex::new(HashMap::new()),
        }
    }

    /// Whether URLs are signed for a CDN (`cdn.enabled`); otherwise the chain starts at `local`.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The providers tried, in order.
    pub fn chain(&self) -> Vec<CdnProvider> {
        self.chain.iter().map(|s| s.provider).collect()
    }

    /// Builds every signer of the chain now and returns the ones that cannot sign, so start-up
    /// can report a broken provider before the first player asks.
    pub fn warm(&self) -> Vec<(CdnProvider, SigningError)> {
        self.chain
            .iter()
            .filter_map(|slot| match self.signer(slot) {
                Ok(_) => None,
                Err(e) => Some((slot.provider, e.clone())),
            })
            .collect()
    }

    /// The local signer, also used by the origin to verify `/media/` tokens.
    pub fn local(&self) -> Result<Arc<LocalSigner>, SigningError> {
        self.local
            .get_or_init(|| match &self.config {
                Some(cfg) => guard(CdnProvider::Local, || LocalSigner::from_config(cfg))
                    .and_then(|r| r)
                    .map(Arc::new),
                None => Err(SigningError::Misconfigured {
                    provider: CdnProvider::Local,
                    what: "no configuration".into(),
                }),
            })
            .clone()
    }

    fn signer<'a>(&'a self, slot: &'a Slot) -> &'a Built {
        slot.signer.get_or_init(|| {
            let Some(cfg) = &self.config else {
                return Err(SigningError::Misconfigured {
                    provider: slot.provider,
                    what: "no configuration".into(),
                });
            };
            let built = guard(slot.provider, || -> Built {
                Ok(match slot.provider {
                    CdnProvider::Bunny => Arc::new(BunnySigner::from_config(cfg)?),
                    CdnProvider::S3 => Arc::new(S3Signer::from_config(cfg)?),
                    CdnProvider::Local => self.local()?,
                    CdnProvider::Cloudfront => Arc::new(CloudFrontSigner::from_config(cfg)?),
                    CdnProvider::Nginx => Arc::new(NginxSigner::from_config(cfg)?),
                    CdnProvider::Cloudflare => Arc::new(CloudflareSigner::from_config(cfg)?),
                })
            });
            built.and_then(|r| r)
        })
    }

    /// Signs with the first provider that can; later ones only when earlier ones fail.
    /// A bad request is returned at once: no provider would sign it better.
    pub fn sign(&self, req: &SignRequest) -> Result<SignedUrl, SigningError> {
        self.sign_chain(req, false)
    }

    /// Like [`Self::sign`] for a whole directory (an HLS tree): `req.token_path` is required,
    /// and providers whose URLs cannot cover a directory (S3, CloudFront, nginx, Cloudflare)
    /// are passed over, so the player never gets a master playlist whose segments 403.
    pub fn sign_directory(&self, req: &SignRequest) -> Result<SignedUrl, SigningError> {
        if req.token_path.is_none() {
            return Err(SigningError::bad("a directory URL needs token_path"));
        }
        self.sign_chain(req, true)
    }

    fn sign_chain(&self, req: &SignRequest, directory: bool) -> Result<SignedUrl, SigningError> {
        // Checked once up front, so a bad request is refused even when the provider that would
        // have noticed it is the broken one.
        req.validate()?;
        let mut failures = Vec::new();
        for (i, slot) in self.chain.iter().enumerate() {
            let outcome = match self.signer(slot) {
                Ok(signer) if directory && !signer.covers_directories() => {
                    Err(SigningError::Unsupported {
                        provider: slot.provider,
                        what: "its URLs cannot cover a directory (HLS tree)".into(),
                    })
                }
                Ok(signer) => guard(slot.provider, || signer.sign(req)).and_then(|r| r),
                Err(e) => Err(e.clone()),
            };
            match outcome {
                Ok(signed) => {
                    let fallback = i > 0;
                    let label = if fallback { "fallback" } else { "ok" };
                    self.count(slot.provider, label);
                    return Ok(SignedUrl {
                        url: signed.url,
                        expires_at: signed.expires_at,
                        provider: slot.provider,
                        fallback,
                    });
                }
                Err(e @ SigningError::BadInput(_)) => return Err(e),
                Err(e) => {
                    self.count(slot.provider, "error");
                    self.warn(slot.provider, &e);
                    failures.push(e.to_string());
                }
            }
        }
        Err(SigningError::AllFailed(failures.join("; ")))
    }

    fn count(&self, provider: CdnProvider, outcome: &str) {
        self.counter
            .with_label_values(&[provider.as_str(), outcome])
            .inc();
    }

    fn warn(&self, provider: CdnProvider, e: &SigningError) {
        let now = Instant::now();
        let mut last = self
            .last_warned
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let due = last
            .get(&provider)
            .is_none_or(|t| now.duration_since(*t) >= WARN_INTERVAL);
        if due {
            last.insert(provider, now);
            tracing::warn!(provider = provider.as_str(), error = %e, "signing provider failed; trying the next one (logged at most once a minute)");
        }
    }
}

/// Runs `f`, turning a panic into [`SigningError::Panicked`]: one provider's bug must not stop
/// playback.
fn guard<T>(provider: CdnProvider, f: impl FnOnce() -> T) -> Result<T, SigningError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| SigningError::Panicked { provider })
}

// ---------------------------------------------------------------------------------------------
// Shared encoding rules.

/// RFC 3986 unreserved characters stay, everything else is percent-encoded (`quote(v, safe='')`,
/// `rawurlencode`, SigV4's `UriEncode`).
pub(crate) const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a query name or value.
pub(crate) fn encode_value(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

/// Percent-encodes a decoded path segment by segment, keeping `/`.
pub(crate) fn encode_path(path: &str) -> String {
    path.split('/')
        .map(encode_value)
        .collect::<Vec<_>>()
        .join("/")
}

/// Strict percent-decoding to UTF-8 (`+` stays `+`).
pub(crate) fn decode(s: &str) -> Option<String> {
    percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// A decoded object path every provider and checker reads the same way: starts with `/`, no
/// control characters, no `.`/`..` segments and no `//` (nginx's `$uri` collapses those, so
/// they would hash differently). A trailing `/` (a directory) is allowed.
pub(crate) fn check_path(path: &str) -> Result<(), SigningError> {
    if !path.starts_with('/') {
        return Err(SigningError::bad(format!(
            "path {path:?} must start with '/'"
        )));
    }
    if path.chars().any(char::is_control) {
        return Err(SigningError::bad("path contains a control character"));
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len() - 1;
    for (i, seg) in segments.iter().enumerate() {
        if *seg == "." || *seg == ".." {
            return Err(SigningError::bad(format!(
                "path {path:?} has a '.' or '..' segment"
            )));
        }
        if seg.is_empty() && i != last {
            return Err(SigningError::bad(format!(
                "path {path:?} has an empty segment"
            )));
        }
    }
    Ok(())
}

/// The checked directory token for `req`, ending in `/`, holding `req.path`.
pub(crate) fn token_path(req: &SignRequest) -> Result<Option<String>, SigningError> {
    let Some(tp) = &req.token_path else {
        return Ok(None);
    };
    let mut tp = tp.clone();
    if !tp.ends_with('/') {
        // A token for `/a/hls` would also open `/a/hls2/…` (plain prefix match).
        tp.push('/');
    }
    check_path(&tp)?;
    if !req.path.starts_with(&tp) {
        return Err(SigningError::bad(format!(
            "path {:?} is outside token_path {tp:?}",
            req.path
        )));
    }
    Ok(Some(tp))
}

/// Checks extra query parameters: non-empty names, no duplicates, none of `reserved`.
pub(crate) fn check_query(
    query: &[(String, String)],
    reserved: &[&str],
) -> Result<(), SigningError> {
    let mut seen = std::collections::HashSet::new();
    for (k, _) in query {
        if k.is_empty() {
            return Err(SigningError::bad("query parameter with an empty name"));
        }
        if reserved.iter().any(|r| r.eq_ignore_ascii_case(k)) {
            return Err(SigningError::bad(format!(
                "query parameter {k:?} is reserved by the signing scheme"
            )));
        }
        if !seen.insert(k.as_str()) {
            return Err(SigningError::bad(format!(
                "query parameter {k:?} given twice"
            )));
        }
    }
    Ok(())
}

/// `k=pct(v)&k=pct(v)` in the given order.
pub(crate) fn encode_query(query: &[(String, String)]) -> String {
    query
        .iter()
        .map(|(k, v)| format!("{}={}", encode_value(k), encode_value(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`, what a dual-stack socket reports) as plain IPv4.
pub fn normalise_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The bytes an IP binds: IPv4 as its 4 bytes, IPv6 as its /64 (16 bytes, last 8 zeroed).
pub(crate) fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match normalise_ip(ip) {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => {
            let mut b = v6.octets();
            b[8..].fill(0);
            b.to_vec()
        }
    }
}

/// Base64url without padding (Bunny, local).
pub(crate) fn b64url_nopad(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// `cdn.base_url` (as [`base_of`]) and `cdn.security_key`, both required by the CDN-facing
/// shared-key providers (bunny, nginx, cloudflare).
pub(crate) fn cdn_base_and_key(
    cfg: &Config,
    provider: CdnProvider,
) -> Result<(String, crate::config::Secret), SigningError> {
    let miss = |what: &str| SigningError::Misconfigured {
        provider,
        what: what.into(),
    };
    let base = cfg
        .cdn
        .base_url
        .as_ref()
        .ok_or_else(|| miss("cdn.base_url is empty"))?;
    if cfg.cdn.security_key.is_empty() {
        return Err(miss("cdn.security_key is empty"));
    }
    Ok((base_of(base), cfg.cdn.security_key.clone()))
}

/// A base URL without query, fragment or trailing `/`: `https://zone.b-cdn.net`.
pub(crate) fn base_of(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.as_str().trim_end_matches('/').to_owned()
}

/// HMAC-SHA256 of the concatenated parts.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Constant-time equality of two tokens (lengths are public).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

// ---------------------------------------------------------------------------------------------
// Time: SigV4 and `veza sign --now` use UTC `YYYYMMDDTHHMMSSZ`.

const AMZ_FORMAT: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");

/// `YYYYMMDDTHHMMSSZ` for Unix seconds.
pub fn amz_date(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(AMZ_FORMAT).ok())
        .unwrap_or_else(|| "99991231T235959Z".to_owned())
}

/// Parses Unix seconds (`1767225600`) or `YYYYMMDDTHHMMSSZ` (`20130524T000000Z`).
pub fn parse_time(s: &str) -> Option<u64> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    if s.len() != 16 {
        return None;
    }
    let t = time::PrimitiveDateTime::parse(s, AMZ_FORMAT).ok()?;
    u64::try_from(t.assume_utc().unix_timestamp()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(CdnProvider, Result<Signed, SigningError>);
    impl Signer for Fixed {
        fn provider(&self) -> CdnProvider {
            self.0
        }
        fn sign(&self, _: &SignRequest) -> Result<Signed, SigningError> {
            self.1.clone()
        }
    }

    struct Panics;
    impl Signer for Panics {
        fn provider(&self) -> CdnProvider {
            CdnProvider::Cloudfront
        }
        fn sign(&self, _: &SignRequest) -> Result<Signed, SigningError> {
            panic!("provider bug")
        }
    }

    fn ok(p: CdnProvider) -> Arc<dyn Signer> {
        Arc::new(Fixed(
            p,
            Ok(Signed {
                url: format!("https://{p}.example/x"),
                expires_at: 7,
            }),
        ))
    }

    fn failing(p: CdnProvider) -> Arc<dyn Signer> {
        Arc::new(Fixed(
            p,
            Err(SigningError::Misconfigured {
                provider: p,
                what: "broken".into(),
            }),
        ))
    }

    fn count(m: &Metrics, p: &str, o: &str) -> u64 {
        m.signing.with_label_values(&[p, o]).get()
    }

    #[test]
    fn rfc4231_cases_pass_through_the_hmac_wiring() {
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], &[b"Hi There"])),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        assert_eq!(
            hex(&hmac_sha256(
                b"Jefe",
                &[b"what do ya want ", b"for nothing?"]
            )),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha256(
                &[0xaa; 131],
                &[b"Test Using Larger Than Block-Size Key - Hash Key First"]
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn first_provider_signs_when_it_can() {
        let m = Metrics::new("t", "t").unwrap();
        let s = CdnService::from_signers(
            true,
            vec![ok(CdnProvider::Bunny), ok(CdnProvider::Local)],
            &m,
        );
        let u = s.sign(&SignRequest::new("/a", 1)).unwrap();
        assert_eq!((u.provider, u.fallback), (CdnProvider::Bunny, false));
        assert_eq!(count(&m, "bunny", "ok"), 1);
        assert_eq!(count(&m, "local", "fallback"), 0);
    }

    #[test]
    fn a_broken_provider_falls_through_and_is_counted() {
        let m = Metrics::new("t", "t").unwrap();
        let s = CdnService::from_signers(
            true,
            vec![
                failing(CdnProvider::Bunny),
                failing(CdnProvider::S3),
                ok(CdnProvider::Local),
            ],
            &m,
        );
        for _ in 0..3 {
            let u = s.sign(&SignRequest::new("/a", 1)).unwrap();
            assert_eq!((u.provider, u.fallback), (CdnProvider::Local, true));
        }
        assert_eq!(count(&m, "bunny", "error"), 3);
        assert_eq!(count(&m, "s3", "error"), 3);
        assert_eq!(count(&m, "local", "fallback"), 3);
        // Warned once per provider despite three failures each.
        assert_eq!(s.last_warned.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_panicking_provider_is_caught_and_skipped() {
        let m = Metrics::new("t", "t").unwrap();
        let s = CdnService::from_signers(true, vec![Arc::new(Panics), ok(CdnProvider::S3)], &m);
        let u = s.sign(&SignRequest::new("/a", 1)).unwrap();
        assert_eq!((u.provider, u.fallback), (CdnProvider::S3, true));
        assert_eq!(count(&m, "cloudfront", "error"), 1);
    }

    #[test]
    fn bad_input_stops_the_chain_and_every_failure_is_reported() {
        let m = Metrics::new("t", "t").unwrap();
        let bad = Arc::new(Fixed(CdnProvider::Bunny, Err(SigningError::bad("no"))));
        let s = CdnService::from_signers(true, vec![bad, ok(CdnProvider::Local)], &m);
        assert_eq!(
            s.sign(&SignRequest::new("/a", 1)),
            Err(SigningError::bad("no"))
        );
        assert_eq!(count(&m, "local", "fallback"), 0);
        let s = CdnService::from_signers(
            true,
            vec![failing(CdnProvider::Bunny), failing(CdnProvider::Nginx)],
            &m,
        );
        let e = s.sign(&SignRequest::new("/a", 1)).unwrap_err().to_string();
        assert!(
            e.contains("bunny: not configured") && e.contains("nginx: not configured"),
            "{e}"
        );
    }

    struct Dir(CdnProvider);
    impl Signer for Dir {
        fn provider(&self) -> CdnProvider {
            self.0
        }
        fn sign(&self, _: &SignRequest) -> Result<Signed, SigningError> {
            Ok(Signed {
                url: "https://dir.example/t/x".into(),
                expires_at: 7,
            })
        }
        fn covers_directories(&self) -> bool {
            true
        }
    }

    #[test]
    fn directory_urls_skip_providers_that_sign_one_file() {
        let m = Metrics::new("t", "t").unwrap();
        let s = CdnService::from_signers(
            true,
            vec![ok(CdnProvider::S3), Arc::new(Dir(CdnProvider::Local))],
            &m,
        );
        let mut r = SignRequest::new("/t/hls/master.m3u8", 1);
        assert!(matches!(
            s.sign_directory(&r),
            Err(SigningError::BadInput(_))
        ));
        r.token_path = Some("/t/hls/".into());
        let u = s.sign_directory(&r).unwrap();
        assert_eq!((u.provider, u.fallback), (CdnProvider::Local, true));
        assert_eq!(count(&m, "s3", "error"), 1);
        // A plain file URL still goes to the first provider.
        assert_eq!(s.sign(&r).unwrap().provider, CdnProvider::S3);
    }

    #[test]
    fn chain_follows_config_without_duplicates() {
        let m = Metrics::new("t", "t").unwrap();
        let cfg = crate::config::from_toml_str("[cdn]\nfallback = [\"s3\", \"local\"]").unwrap();
        let s = CdnService::new(&cfg, &m);
        assert!(!s.is_enabled());
        assert_eq!(s.chain(), vec![CdnProvider::Local, CdnProvider::S3]);
        let s = CdnService::with_primary(&cfg, &m, CdnProvider::Nginx);
        assert_eq!(
            s.chain(),
            vec![CdnProvider::Nginx, CdnProvider::S3, CdnProvider::Local]
        );
    }

    #[test]
    fn paths_are_checked_and_encoded_per_segment() {
        assert!(check_path("/a/b.flac").is_ok());
        assert!(check_path("/abc/").is_ok());
        for bad in ["a", "/a/../b", "/a/./b", "//a", "/a//b", "/a\n"] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        assert_eq!(
            encode_path("/music/My Song+1 é.flac"),
            "/music/My%20Song%2B1%20%C3%A9.flac"
        );
        assert_eq!(encode_value("US,CA/~x"), "US%2CCA%2F~x");
        assert_eq!(decode("/a%20b+c").unwrap(), "/a b+c");
        assert!(decode("%ff").is_none());
    }

    #[test]
    fn token_path_gets_a_trailing_slash_and_must_hold_the_path() {
        let mut r = SignRequest::new("/t/1/hls/a.m3u8", 0);
        r.token_path = Some("/t/1/hls".into());
        assert_eq!(token_path(&r).unwrap().as_deref(), Some("/t/1/hls/"));
        r.path = "/t/1/hls2/a.m3u8".into();
        assert!(matches!(token_path(&r), Err(SigningError::BadInput(_))));
    }

    #[test]
    fn ips_normalise_and_bind_v4_or_the_v6_64() {
        let mapped: IpAddr = "::ffff:198.51.100.7".parse().unwrap();
        assert_eq!(normalise_ip(mapped).to_string(), "198.51.100.7");
        assert_eq!(ip_bytes(mapped), vec![198, 51, 100, 7]);
        let v6: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        let b = ip_bytes(v6);
        assert_eq!(b.len(), 16);
        assert_eq!(&b[8..], &[0; 8]);
        assert_eq!(b, ip_bytes("2001:db8:1:2:ffff::1".parse().unwrap()));
    }

    #[test]
    fn times_round_trip_between_unix_and_amz() {
        assert_eq!(amz_date(1_369_353_600), "20130524T000000Z");
        assert_eq!(parse_time("20130524T000000Z"), Some(1_369_353_600));
        assert_eq!(parse_time("1767225600"), Some(1_767_225_600));
        assert_eq!(amz_date(951_782_400), "20000229T000000Z");
        assert_eq!(parse_time("20000229T235959Z"), Some(951_868_799));
        for bad in [
            "",
            "2013-05-24",
            "20130532T000000Z",
            "20130229T000000Z",
            "20130524T240000Z",
            "x",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        for s in [0u64, 86_399, 1_767_225_600, 4_102_444_800] {
            assert_eq!(parse_time(&amz_date(s)), Some(s));
        }
    }
}
