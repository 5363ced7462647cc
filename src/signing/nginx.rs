//! nginx `secure_link` / `secure_link_md5` (docs/SIGNING.md §5), so an nginx in front of Veza
//! or MinIO can check links:
//!
//! ```nginx
//! secure_link     $arg_md5,$arg_expires;
//! secure_link_md5 "$secure_link_expires$uri $SECRET";   # = cdn.nginx.expression
//! if ($secure_link = "")  { return 403; }
//! if ($secure_link = "0") { return 410; }
//! ```
//!
//! `md5 = b64url_nopad(MD5(expression))`, with `{uri}` the decoded path (nginx's `$uri` is
//! normalised and percent-decoded).

use md5::{Digest, Md5};

use super::{
    SignRequest, Signed, Signer, SigningError, b64url_nopad, check_path, check_query, decode,
    encode_path, encode_query, normalise_ip,
};
use crate::config::{CdnProvider, Config, Secret};

/// Signs nginx `secure_link` URLs.
#[derive(Debug, Clone)]
pub struct NginxSigner {
    base: String,
    /// Decoded path of the base URL (part of nginx's `$uri`), without trailing `/`.
    base_path: String,
    secret: Secret,
    expression: String,
    ttl: u64,
}

impl NginxSigner {
    /// From `cdn.base_url`, `cdn.security_key` and `cdn.nginx.expression`.
    pub fn from_config(cfg: &Config) -> Result<Self, SigningError> {
        let (base, key) = super::cdn_base_and_key(cfg, CdnProvider::Nginx)?;
        Ok(Self::new(
            &base,
            key,
            &cfg.cdn.nginx.expression,
            cfg.cdn.ttl_secs,
        ))
    }

    /// A signer for URLs under `base` hashing `expression` (placeholders as in the config).
    pub fn new(base: &str, secret: Secret, expression: &str, ttl: u64) -> Self {
        let base = base.trim_end_matches('/').to_owned();
        let base_path = url::Url::parse(&base)
            .ok()
            .and_then(|u| decode(u.path()))
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_owned();
        Self {
            base,
            base_path,
            secret,
            expression: expression.to_owned(),
            ttl,
        }
    }

    /// Expands the expression in one pass, so a `{` inside the secret or the path is never
    /// taken for a placeholder.
    fn expand(&self, expires: u64, uri: &str, addr: &str) -> String {
        let mut out = String::with_capacity(self.expression.len() + uri.len() + 64);
        let mut rest = self.expression.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open..];
            let (value, len) = [
                ("{expires}", expires.to_string()),
                ("{uri}", uri.to_owned()),
                ("{remote_addr}", addr.to_owned()),
                ("{secret}", self.secret.expose().to_owned()),
            ]
            .into_iter()
            .find(|(name, _)| after.starts_with(name))
            .map_or(("{".to_owned(), 1), |(name, v)| (v, name.len()));
            out.push_str(&value);
            rest = &after[len..];
        }
        out.push_str(rest);
        out
    }
}

impl Signer for NginxSigner {
    fn provider(&self) -> CdnProvider {
        CdnProvider::Nginx
    }

    fn sign(&self, req: &SignRequest) -> Result<Signed, SigningError> {
        check_path(&req.path)?;
        check_query(&req.query, &["md5", "expires"])?;
        let expires = req.expires_or(self.ttl)?;
        let addr = if self.expression.contains("{remote_addr}") {
            let ip = req.ip.ok_or_else(|| SigningError::Unsupported {
                provider: CdnProvider::Nginx,
                what: "cdn.nginx.expression uses {remote_addr} but no viewer IP was given".into(),
            })?;
            normalise_ip(ip).to_string()
        } else {
            String::new()
        };
        let uri = format!("{}{}", self.base_path, req.path);
        let hash = b64url_nopad(&Md5::digest(self.expand(expires, &uri, &addr).as_bytes()));
        let mut query = encode_query(&req.query);
        if !query.is_empty() {
            query.push('&');
        }
        let url = format!(
            "{}{}?{query}md5={hash}&expires={expires}",
            self.base,
            encode_path(&req.path)
        );
        Ok(Signed {
            url,
            expires_at: expires,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproduces_the_nginx_documentation_example() {
        // secure_link_md5 "$secure_link_expires$uri$remote_addr secret";
        // 2147483647/s/link127.0.0.1 secret → _e4Nc3iduzkWRm01TBBNYw
        let s = NginxSigner::new(
            "http://127.0.0.1",
            Secret::new("secret"),
            "{expires}{uri}{remote_addr} {secret}",
            60,
        );
        let mut r = SignRequest::new("/s/link", 0);
        r.expires = Some(2_147_483_647);
        r.ip = Some("::ffff:127.0.0.1".parse().unwrap());
        assert_eq!(
            s.sign(&r).unwrap().url,
            "http://127.0.0.1/s/link?md5=_e4Nc3iduzkWRm01TBBNYw&expires=2147483647"
        );
        r.ip = None;
        assert!(matches!(s.sign(&r), Err(SigningError::Unsupported { .. })));
    }

    #[test]
    fn the_decoded_uri_with_the_base_path_is_hashed() {
        let s = NginxSigner::new(
            "https://edge.example/music%20box/",
            Secret::new("k{uri}"),
            "{expires}{uri} {secret}",
            60,
        );
        let mut r = SignRequest::new("/My Song.flac", 100);
        r.query = vec![("dl".into(), "1".into())];
        let signed = s.sign(&r).unwrap();
        let want = b64url_nopad(&Md5::digest(b"160/music box/My Song.flac k{uri}"));
        assert_eq!(
            signed.url,
            format!("https://edge.example/music%20box/My%20Song.flac?dl=1&md5={want}&expires=160")
        );
        assert_eq!(signed.expires_at, 160);
    }
}
