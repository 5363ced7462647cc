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

mod chain;
mod encoding;

pub(crate) use crate::encoding::{b64url_nopad, ct_eq, hex, hmac_sha256};
pub use chain::CdnService;
pub(crate) use encoding::*;
pub use encoding::{amz_date, normalise_ip, parse_time};

use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

use crate::config::CdnProvider;

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
