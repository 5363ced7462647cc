//! Cloudflare WAF token authentication, `is_timed_hmac_valid_v0` (docs/SIGNING.md §6):
//!
//! ```text
//! URL  = {base}{path}[?{query}]{?|&}verify={ts}-{urlencode(base64(HMAC-SHA256(key, message ‖ ts)))}
//! message = the request URI before the separator: path as sent, plus `?{query}` if any
//! rule: is_timed_hmac_valid_v0("KEY", http.request.uri, TTL, http.request.timestamp.sec, 8)
//! ```
//!
//! The timestamp is the issue time and the lifetime lives in the rule, so the rule's TTL must
//! equal `cdn.ttl_secs`; `expires_at` is `ts + ttl`. The separator length in the rule is
//! `len("?verify=")` = 8 for the default parameter name.

use super::{
    SignRequest, Signed, Signer, SigningError, check_path, check_query, encode_path, encode_query,
    encode_value, hmac_sha256,
};
use crate::config::{CdnProvider, Config, Secret};

/// Signs Cloudflare timed-HMAC URLs.
#[derive(Debug, Clone)]
pub struct CloudflareSigner {
    /// `scheme://host[:port]`.
    origin: String,
    /// Base URL path as sent, without trailing `/`.
    prefix: String,
    key: Secret,
    param: String,
    ttl: u64,
}

impl CloudflareSigner {
    /// From `cdn.base_url`, `cdn.security_key` and `cdn.cloudflare.param`.
    pub fn from_config(cfg: &Config) -> Result<Self, SigningError> {
        let (base, key) = super::cdn_base_and_key(cfg, CdnProvider::Cloudflare)?;
        Ok(Self::new(
            &base,
            key,
            &cfg.cdn.cloudflare.param,
            cfg.cdn.ttl_secs,
        ))
    }

    /// A signer for URLs under `base` with the token in query parameter `param`.
    pub fn new(base: &str, key: Secret, param: &str, ttl: u64) -> Self {
        let (origin, prefix) = match url::Url::parse(base) {
            Ok(u) => (
                u.origin().ascii_serialization(),
                u.path().trim_end_matches('/').to_owned(),
            ),
            Err(_) => (base.trim_end_matches('/').to_owned(), String::new()),
        };
        Self {
            origin,
            prefix,
            key,
            param: param.to_owned(),
            ttl,
        }
    }
}

impl Signer for CloudflareSigner {
    fn provider(&self) -> CdnProvider {
        CdnProvider::Cloudflare
    }

    fn sign(&self, req: &SignRequest) -> Result<Signed, SigningError> {
        check_path(&req.path)?;
        check_query(&req.query, &[self.param.as_str()])?;
        let ttl = req.ttl_or(self.ttl)?;
        // The URL carries the issue time; to end at `expires` it must have been issued ttl earlier.
        let ts = match req.expires {
            Some(e) => e.saturating_sub(ttl),
            None => req.now,
        };
        if !(1_000_000_000..=9_999_999_999).contains(&ts) {
            return Err(SigningError::BadInput(format!(
                "Cloudflare timestamps have 10 digits; {ts} does not"
            )));
        }
        let mut message = format!("{}{}", self.prefix, encode_path(&req.path));
        if !req.query.is_empty() {
            message.push('?');
            message.push_str(&encode_query(&req.query));
        }
        let mac = hmac_sha256(
            self.key.expose().as_bytes(),
            &[message.as_bytes(), ts.to_string().as_bytes()],
        );
        use base64::Engine as _;
        let mac = base64::engine::general_purpose::STANDARD.encode(mac);
        let sep = if message.contains('?') { '&' } else { '?' };
        let url = format!(
            "{}{message}{sep}{}={ts}-{}",
            self.origin,
            self.param,
            encode_value(&mac)
        );
        Ok(Signed {
            url,
            expires_at: ts + ttl,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `is_timed_hmac_valid_v0(key, uri, ttl, now, sep_len)` as the Cloudflare docs define it:
    /// MessageMAC = message ‖ separator ‖ 10-digit timestamp ‖ "-" ‖ urlencoded base64 MAC.
    fn cf_valid(key: &str, uri: &str, ttl: u64, now: u64, sep_len: usize) -> bool {
        let Some(dash) = uri.rfind('-') else {
            return false;
        };
        let (head, mac) = (&uri[..dash], &uri[dash + 1..]);
        if head.len() < 10 + sep_len {
            return false;
        }
        let (rest, ts) = head.split_at(head.len() - 10);
        let Ok(ts) = ts.parse::<u64>() else {
            return false;
        };
        let message = &rest[..rest.len() - sep_len];
        let want = hmac_sha256(
            key.as_bytes(),
            &[message.as_bytes(), ts.to_string().as_bytes()],
        );
        use base64::Engine as _;
        let got = super::super::decode(mac)
            .and_then(|m| base64::engine::general_purpose::STANDARD.decode(m).ok());
        got.as_deref() == Some(&want[..]) && now < ts + ttl
    }

    fn uri_of(url: &str) -> &str {
        &url["https://media.example.com".len()..]
    }

    #[test]
    fn matches_the_waf_docs_recipe_and_validates_under_the_rule() {
        let s = CloudflareSigner::new(
            "https://media.example.com",
            Secret::new("mysecrettoken"),
            "verify",
            10_800,
        );
        let signed = s
            .sign(&SignRequest::new("/tracks/a b.flac", 1_767_225_600))
            .unwrap();
        // Python in the docs: quote_plus(b64encode(hmac(key, path + ts)))
        use base64::Engine as _;
        let mac = base64::engine::general_purpose::STANDARD.encode(hmac_sha256(
            b"mysecrettoken",
            &[b"/tracks/a%20b.flac1767225600"],
        ));
        let mac = mac
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        assert_eq!(
            signed.url,
            format!("https://media.example.com/tracks/a%20b.flac?verify=1767225600-{mac}")
        );
        assert_eq!(signed.expires_at, 1_767_225_600 + 10_800);
        let uri = uri_of(&signed.url);
        assert!(cf_valid(
            "mysecrettoken",
            uri,
            10_800,
            1_767_225_600 + 10_799,
            8
        ));
        assert!(!cf_valid(
            "mysecrettoken",
            uri,
            10_800,
            1_767_225_600 + 10_800,
            8
        ));
        assert!(!cf_valid("other", uri, 10_800, 1_767_225_600, 8));
        assert!(!cf_valid(
            "mysecrettoken",
            &uri.replace("a%20b", "a%20c"),
            10_800,
            1_767_225_600,
            8
        ));
    }

    #[test]
    fn an_existing_query_is_part_of_the_message_and_expires_sets_the_issue_time() {
        let s = CloudflareSigner::new(
            "https://media.example.com/",
            Secret::new("k"),
            "verify",
            600,
        );
        let mut r = SignRequest::new("/a.flac", 0);
        r.query = vec![("dl".into(), "1".into())];
        r.expires = Some(1_767_225_600);
        let signed = s.sign(&r).unwrap();
        assert!(
            signed.url.contains("/a.flac?dl=1&verify=1767225000-"),
            "{}",
            signed.url
        );
        assert_eq!(signed.expires_at, 1_767_225_600);
        assert!(cf_valid("k", uri_of(&signed.url), 600, 1_767_225_599, 8));
        assert!(!cf_valid("k", uri_of(&signed.url), 600, 1_767_225_600, 8));
        r.expires = None;
        assert!(
            matches!(s.sign(&r), Err(SigningError::BadInput(_))),
            "a timestamp of 0 has one digit"
        );
    }
}
