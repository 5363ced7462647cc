//! Veza's own tokens for its `/media/` endpoints: the provider when no CDN is enabled, and the
//! last resort of the fallback chain.
//!
//! The token travels as the first path segment, like Bunny's path form, so a player resolving
//! the relative URIs of an HLS playlist keeps it:
//!
//! ```text
//! {public_url}/media/vzt.{expires}.{scope}.{mac}/tracks/7f3a9c/hls/master.m3u8
//! scope = f        the file alone          | d{N}  the first N directories of the path
//!         + "i"    when bound to the viewer's IP
//! mac   = b64url(HMAC-SHA256(key, "veza-local-v1\n" ‖ scope_path ‖ "\n" ‖ expires ‖ "\n" ‖
//!                            ip_bytes ‖ "\n" ‖ sorted k=v query))
//! ```
//!
//! Carrying the directory depth rather than the directory itself keeps `%2F` out of the path
//! (proxies that decode it break path-form URLs, SIGNING.md §1.6) and makes "outside the token
//! path" simply a different scope, hence a different MAC.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use super::{
    SignRequest, Signed, Signer, SigningError, b64url_nopad, check_path, check_query, ct_eq,
    decode, encode_path, encode_value, hmac_sha256, ip_bytes, token_path,
};
use crate::config::{CdnProvider, Config, Secret};

/// Name of the generated key file inside the data dir.
pub const KEY_FILE: &str = "signing.key";

const PREFIX: &str = "vzt.";
const DOMAIN: &[u8] = b"veza-local-v1\n";

/// Signs and verifies Veza's `/media/` URLs.
#[derive(Debug, Clone)]
pub struct LocalSigner {
    base: String,
    /// Current key first; older keys only verify.
    keys: Vec<Secret>,
    ttl: u64,
}

impl LocalSigner {
    /// From `server.public_url`, `cdn.local.key` (or `{data_dir}/signing.key`, created when
    /// missing) and `cdn.local.previous_key`.
    pub fn from_config(cfg: &Config) -> Result<Self, SigningError> {
        let key = if cfg.cdn.local.key.is_empty() {
            load_or_create_key(&cfg.data_dir)?
        } else {
            cfg.cdn.local.key.clone()
        };
        let mut keys = vec![key];
        if !cfg.cdn.local.previous_key.is_empty() {
            keys.push(cfg.cdn.local.previous_key.clone());
        }
        Ok(Self::new(
            &super::base_of(&cfg.server.public_url),
            keys,
            cfg.cdn.ttl_secs,
        ))
    }

    /// A signer for `{public_url}/media/…`; `keys[0]` signs, every key verifies.
    pub fn new(public_url: &str, keys: Vec<Secret>, ttl: u64) -> Self {
        assert!(!keys.is_empty(), "a local signer needs a key");
        Self {
            base: format!("{}/media", public_url.trim_end_matches('/')),
            keys,
            ttl,
        }
    }

    /// Checks a `/media/` request target (`/media/vzt.…/path?query`, with or without the
    /// `/media` prefix or a scheme and host) and returns the decoded object path it may serve.
    pub fn verify(
        &self,
        target: &str,
        now: u64,
        client_ip: Option<IpAddr>,
    ) -> Result<LocalVerified, LocalVerifyError> {
        use LocalVerifyError::{BadToken, Expired, Malformed};

        let target = match target.split_once("://") {
            Some((_, rest)) if !target.starts_with('/') => {
                rest.find('/').map_or("/", |i| &rest[i..])
            }
            _ => target,
        };
        let target = target.split('#').next().unwrap_or_default();
        let (path_part, query) = target.split_once('?').unwrap_or((target, ""));
        let path_part = path_part.strip_prefix("/media").unwrap_or(path_part);
        let rest = path_part
            .strip_prefix('/')
            .and_then(|p| p.strip_prefix(PREFIX))
            .ok_or(Malformed("no token segment"))?;
        let (segment, wire_path) = rest.split_at(rest.find('/').ok_or(Malformed("no path"))?);
        let mut fields = segment.split('.');
        let (Some(exp), Some(scope), Some(given), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(Malformed("token segment is not expires.scope.mac"));
        };
        if exp.is_empty() || !exp.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Malformed("expires is not decimal seconds"));
        }
        // One spelling per URL: `0001…` or `%74racks` would name the same object under
        // endless distinct URLs, each a CDN cache miss.
        if exp.len() > 1 && exp.starts_with('0') {
            return Err(Malformed("expires has leading zeros"));
        }
        let expires: u64 = exp.parse().map_err(|_| Malformed("expires out of range"))?;
        let (scope, bound) = match scope.strip_suffix('i') {
            Some(s) => (s, true),
            None => (scope, false),
        };
        let depth = match scope {
            "f" => None,
            d => Some(
                d.strip_prefix('d')
                    .filter(|n| {
                        !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit())
                    })
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or(Malformed("unknown scope"))?,
            ),
        };
        let path = decode(wire_path).ok_or(Malformed("path is not valid percent-encoded UTF-8"))?;
        check_path(&path).map_err(|_| Malformed("path has empty, '.' or '..' segments"))?;
        if encode_path(&path) != wire_path {
            return Err(Malformed("path is not in its canonical percent-encoding"));
        }
        let scope_path = match depth {
            None => path.clone(),
            Some(n) => {
                directory_prefix(&path, n).ok_or(Malformed("path is shallower than its scope"))?
            }
        };

        let mut params = BTreeMap::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = decode(k).ok_or(Malformed("undecodable parameter"))?;
            let v = decode(v).ok_or(Malformed("undecodable parameter"))?;
            if params.insert(k, v).is_some() {
                return Err(Malformed("duplicate parameter"));
            }
        }
        let ip = if bound {
            Some(client_ip.ok_or(BadToken)?)
        } else {
            None
        };
        let scope_label = scope_label(depth, bound);
        // Every key is tried, so the time taken does not tell which one matched.
        let mut ok = false;
        for key in &self.keys {
            let want = mac(key, &scope_label, &scope_path, expires, ip, &params);
            ok |= ct_eq(want.as_bytes(), given.as_bytes());
        }
        if !ok {
            return Err(BadToken);
        }
        if now > expires {
            return Err(Expired);
        }
        Ok(LocalVerified {
            path,
            scope: scope_path,
            expires,
        })
    }
}

impl Signer for LocalSigner {
    fn provider(&self) -> CdnProvider {
        CdnProvider::Local
    }

    fn covers_directories(&self) -> bool {
        true
    }

    fn sign(&self, req: &SignRequest) -> Result<Signed, SigningError> {
        check_path(&req.path)?;
        if req.path.ends_with('/') {
            return Err(SigningError::BadInput(format!(
                "path {:?} names a directory; sign a file in it with token_path set to it",
                req.path
            )));
        }
        check_query(&req.query, &[])?;
        let expires = req.expires_or(self.ttl)?;
        let (depth, scope_path) = match token_path(req)? {
            Some(tp) => (Some(tp[1..].matches('/').count()), tp),
            None => (None, req.path.clone()),
        };
        let bound = req.ip.is_some();
        let label = scope_label(depth, bound);
        let params: BTreeMap<String, String> = req.query.iter().cloned().collect();
        let m = mac(&self.keys[0], &label, &scope_path, expires, req.ip, &params);
        let mut url = format!(
            "{}/{PREFIX}{expires}.{label}.{m}{}",
            self.base,
            encode_path(&req.path)
        );
        if !params.is_empty() {
            url.push('?');
            let pairs: Vec<String> = params
                .iter()
                .map(|(k, v)| format!("{}={}", encode_value(k), encode_value(v)))
                .collect();
            url.push_str(&pairs.join("&"));
        }
        Ok(Signed {
            url,
            expires_at: expires,
        })
    }
}

/// Why a `/media/` token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalVerifyError {
    /// Not a Veza token URL.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// Wrong MAC: tampered, outside its directory, wrong key or wrong IP.
    #[error("token mismatch")]
    BadToken,
    /// Valid but `now > expires`.
    #[error("expired")]
    Expired,
}

/// A `/media/` request that passed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalVerified {
    /// The decoded object path to serve (`/tracks/…`).
    pub path: String,
    /// What the token covers: `path` itself, or the directory (ending in `/`) it opens.
    pub scope: String,
    /// Expiry, Unix seconds.
    pub expires: u64,
}

fn scope_label(depth: Option<usize>, bound: bool) -> String {
    let base = depth.map_or_else(|| "f".to_owned(), |n| format!("d{n}"));
    if bound { format!("{base}i") } else { base }
}

/// `/a/b/c.m4s` with depth 2 → `/a/b/`; the file must lie below it.
fn directory_prefix(path: &str, depth: usize) -> Option<String> {
    let mut end = 0;
    for _ in 0..depth {
        end += 1 + path[end + 1..].find('/')?;
    }
    (end + 1 < path.len()).then(|| path[..=end].to_owned())
}

fn mac(
    key: &Secret,
    label: &str,
    scope_path: &str,
    expires: u64,
    ip: Option<IpAddr>,
    params: &BTreeMap<String, String>,
) -> String {
    let ipb = ip.map(ip_bytes).unwrap_or_default();
    let query = params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let m = hmac_sha256(
        key.expose().as_bytes(),
        &[
            DOMAIN,
            label.as_bytes(),
            b"\n",
            scope_path.as_bytes(),
            b"\n",
            expires.to_string().as_bytes(),
            b"\n",
            &ipb,
            b"\n",
            query.as_bytes(),
        ],
    );
    b64url_nopad(&m)
}

/// Reads `{data_dir}/signing.key`, or creates it (32 random bytes as hex, mode 0600) when
/// missing. Safe against a concurrent first start: the file is created exclusively.
/// `veza sign` uses this too; it never touches the database.
pub fn load_or_create_key(data_dir: &Path) -> Result<Secret, SigningError> {
    let path = data_dir.join(KEY_FILE);
    crate::datadir::load_or_create_key(&path)
        .map(Secret::new)
        .map_err(|e| SigningError::KeyFile {
            provider: CdnProvider::Local,
            path: path.display().to_string(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: u64 = 1_767_225_600;

    fn signer() -> LocalSigner {
        LocalSigner::new(
            "http://127.0.0.1:8080/",
            vec![Secret::new("k".repeat(32))],
            600,
        )
    }

    fn req(path: &str) -> SignRequest {
        SignRequest::new(path, NOW)
    }

    #[test]
    fn a_file_url_matches_the_documented_layout() {
        let s = signer().sign(&req("/tracks/7f3a9c/original.flac")).unwrap();
        let key = "k".repeat(32);
        let m = b64url_nopad(&hmac_sha256(
            key.as_bytes(),
            &[b"veza-local-v1\nf\n/tracks/7f3a9c/original.flac\n1767226200\n\n"],
        ));
        assert_eq!(
            s.url,
            format!("http://127.0.0.1:8080/media/vzt.1767226200.f.{m}/tracks/7f3a9c/original.flac")
        );
        assert_eq!(s.expires_at, NOW + 600);
        let v = signer().verify(&s.url, NOW, None).unwrap();
        assert_eq!(v.path, "/tracks/7f3a9c/original.flac");
    }

    #[test]
    fn a_directory_token_covers_relative_playlist_uris() {
        let mut r = req("/tracks/7f3a9c/hls/master.m3u8");
        r.token_path = Some("/tracks/7f3a9c/hls/".into());
        let s = signer().sign(&r).unwrap();
        assert!(s.url.contains(".d3."), "{}", s.url);
        let seg = s.url.replace("master.m3u8", "v0/seg%201.m4s");
        assert_eq!(
            signer().verify(&seg, NOW, None).unwrap().path,
            "/tracks/7f3a9c/hls/v0/seg 1.m4s"
        );
        let sibling = s.url.replace("/hls/master.m3u8", "/hls2/master.m3u8");
        assert_eq!(
            signer().verify(&sibling, NOW, None),
            Err(LocalVerifyError::BadToken)
        );
        let up = s.url.replace(
            "/tracks/7f3a9c/hls/master.m3u8",
            "/tracks/other/hls/master.m3u8",
        );
        assert_eq!(
            signer().verify(&up, NOW, None),
            Err(LocalVerifyError::BadToken)
        );
        let shallow = s
            .url
            .replace("/tracks/7f3a9c/hls/master.m3u8", "/tracks/7f3a9c/hls/");
        assert!(signer().verify(&shallow, NOW, None).is_err());
    }

    #[test]
    fn targets_with_and_without_origin_or_prefix_verify() {
        let s = signer().sign(&req("/a/b.flac")).unwrap();
        let path = s.url.strip_prefix("http://127.0.0.1:8080").unwrap();
        assert!(signer().verify(path, NOW, None).is_ok());
        assert!(
            signer()
                .verify(path.strip_prefix("/media").unwrap(), NOW, None)
                .is_ok()
        );
    }

    #[test]
    fn ip_binding_query_and_expiry_are_enforced() {
        let mut r = req("/a/b.flac");
        r.ip = Some("::ffff:192.0.2.1".parse().unwrap());
        r.query = vec![("dl".into(), "1 2".into())];
        let s = signer().sign(&r).unwrap();
        assert!(s.url.ends_with("/a/b.flac?dl=1%202"), "{}", s.url);
        let v4 = Some("192.0.2.1".parse().unwrap());
        assert!(signer().verify(&s.url, NOW, v4).is_ok());
        assert_eq!(
            signer().verify(&s.url, NOW, Some("192.0.2.2".parse().unwrap())),
            Err(LocalVerifyError::BadToken)
        );
        assert_eq!(
            signer().verify(&s.url, NOW, None),
            Err(LocalVerifyError::BadToken)
        );
        assert_eq!(
            signer().verify(&s.url.replace("dl=1", "dl=2"), NOW, v4),
            Err(LocalVerifyError::BadToken)
        );
        assert_eq!(
            signer().verify(&format!("{}&x=1", s.url), NOW, v4),
            Err(LocalVerifyError::BadToken)
        );
        assert!(signer().verify(&s.url, s.expires_at, v4).is_ok());
        assert_eq!(
            signer().verify(&s.url, s.expires_at + 1, v4),
            Err(LocalVerifyError::Expired)
        );
    }

    #[test]
    fn a_previous_key_still_verifies_but_never_signs() {
        let old = LocalSigner::new("http://h", vec![Secret::new("o".repeat(32))], 600);
        let rotated = LocalSigner::new(
            "http://h",
            vec![Secret::new("n".repeat(32)), Secret::new("o".repeat(32))],
            600,
        );
        let url = old.sign(&req("/a.flac")).unwrap().url;
        assert!(rotated.verify(&url, NOW, None).is_ok());
        let fresh = rotated.sign(&req("/a.flac")).unwrap().url;
        assert_eq!(
            old.verify(&fresh, NOW, None),
            Err(LocalVerifyError::BadToken)
        );
    }

    #[test]
    fn malformed_targets_are_refused() {
        for t in [
            "/media/a.flac",
            "/media/vzt.1.f/a",
            "/media/vzt.x.f.m/a",
            "/media/vzt.1.q.m/a",
            "/media/vzt.1.d1.m/a",
            "/media/vzt.1.f.m/a/../b",
        ] {
            assert!(
                matches!(
                    signer().verify(t, 0, None),
                    Err(LocalVerifyError::Malformed(_))
                ),
                "{t}"
            );
        }
    }

    #[test]
    fn the_key_file_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let k1 = load_or_create_key(&data).unwrap();
        let k2 = load_or_create_key(&data).unwrap();
        assert_eq!(k1, k2);
        assert_eq!(k1.expose().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(data.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!data.join("veza.db").exists());
        std::fs::write(data.join(KEY_FILE), "short").unwrap();
        let e = load_or_create_key(&data).unwrap_err();
        assert!(matches!(e, SigningError::KeyFile { .. }), "{e}");
    }

    #[test]
    fn only_the_canonical_spelling_of_a_url_verifies() {
        let mut r = req("/tracks/a b/x.m4s");
        r.expires = Some(2_000_000_000);
        let url = signer().sign(&r).unwrap().url;
        assert!(signer().verify(&url, 1_999_999_999, None).is_ok());
        let zeros = url.replacen("vzt.2000000000.", "vzt.02000000000.", 1);
        assert_ne!(zeros, url);
        assert!(matches!(
            signer().verify(&zeros, 1_999_999_999, None),
            Err(LocalVerifyError::Malformed(_))
        ));
        let encoded = url.replacen("/tracks/", "/%74racks/", 1);
        assert_ne!(encoded, url);
        assert!(matches!(
            signer().verify(&encoded, 1_999_999_999, None),
            Err(LocalVerifyError::Malformed(_))
        ));
    }

    #[test]
    fn directory_prefix_needs_a_file_below() {
        assert_eq!(directory_prefix("/a/b/c", 2).as_deref(), Some("/a/b/"));
        assert_eq!(directory_prefix("/a/b/c", 0).as_deref(), Some("/"));
        assert_eq!(directory_prefix("/a/b/", 2), None);
        assert_eq!(directory_prefix("/a", 1), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn verify_never_panics_on_arbitrary_targets(
            raw in proptest::collection::vec(any::<u8>(), 0..200),
            prefixed in any::<bool>(),
        ) {
            let text = String::from_utf8_lossy(&raw);
            let target = if prefixed { format!("/media/vzt.{text}") } else { text.into_owned() };
            let _ = signer().verify(&target, 1_900_000_000, None);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn verify_accepts_what_sign_makes_and_refuses_any_change(
            segs in proptest::collection::vec("[A-Za-z0-9 _~+é-]{1,8}", 1..4),
            dir_token in any::<bool>(),
            v4 in any::<[u8; 4]>(),
            bind in any::<bool>(),
            expires in 1_000_000_000u64..4_000_000_000,
            pick in any::<prop::sample::Index>(),
            replacement in any::<u8>(),
        ) {
            let path = format!("/t/{}", segs.join("/"));
            let mut r = SignRequest::new(path.clone(), 0);
            r.expires = Some(expires);
            if dir_token { r.token_path = Some("/t/".into()); }
            let ip = IpAddr::from(v4);
            if bind { r.ip = Some(ip); }
            let url = signer().sign(&r).unwrap().url;
            let client = Some(ip);
            prop_assert_eq!(signer().verify(&url, expires, client).unwrap().path, path);
            prop_assert_eq!(signer().verify(&url, expires + 1, client), Err(LocalVerifyError::Expired));
            if bind {
                let other = IpAddr::from([v4[0], v4[1], v4[2], v4[3].wrapping_add(1)]);
                prop_assert!(signer().verify(&url, expires, Some(other)).is_err());
            }
            // The token segment is base64url and digits: the first `/t/` is the path's.
            let file_at = url.find("/t/").unwrap() + 3;
            if dir_token {
                let outside = url.replacen("/t/", "/u/", 1);
                prop_assert!(signer().verify(&outside, expires, client).is_err());
            }
            let base = "http://127.0.0.1:8080/media/";
            let i = base.len() + pick.index(url.len() - base.len());
            prop_assume!(!(dir_token && i >= file_at));
            let mut bytes = url.clone().into_bytes();
            let new = if replacement.is_ascii_alphanumeric() { replacement } else { b'A' + replacement % 26 };
            prop_assume!(bytes[i] != new);
            bytes[i] = new;
            let tampered = String::from_utf8_lossy(&bytes).into_owned();
            prop_assume!(decode(&tampered) != decode(&url));
            prop_assert!(signer().verify(&tampered, expires, client).is_err(), "accepted {}", tampered);
        }
    }
}
