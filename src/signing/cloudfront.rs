//! CloudFront signed URLs with a canned policy (docs/SIGNING.md §4): RSA-SHA1 PKCS#1 v1.5 over
//! `{"Statement":[{"Resource":URL,"Condition":{"DateLessThan":{"AWS:EpochTime":E}}}]}`, with
//! CloudFront's own base64 alphabet (`+`→`-`, `=`→`_`, `/`→`~`, padding kept).
//!
//! The PEM key is read once when the signer is built; an unreadable key makes the chain fall
//! back rather than stopping playback.

use std::path::Path;

use rsa::RsaPrivateKey;
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::signature::{SignatureEncoding as _, Signer as _};
use sha1::Sha1;

use super::{
    SignRequest, Signed, Signer, SigningError, check_path, check_query, encode_path, encode_query,
};
use crate::config::{CdnProvider, Config};

/// Signs CloudFront canned-policy URLs.
#[derive(Clone)]
pub struct CloudFrontSigner {
    base: String,
    key_pair_id: String,
    key: SigningKey<Sha1>,
    ttl: u64,
}

impl std::fmt::Debug for CloudFrontSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudFrontSigner")
            .field("base", &self.base)
            .field("key_pair_id", &self.key_pair_id)
            .finish_non_exhaustive()
    }
}

impl CloudFrontSigner {
    /// From `cdn.base_url` and `[cdn.cloudfront]`; reads the private key file.
    pub fn from_config(cfg: &Config) -> Result<Self, SigningError> {
        let miss = |what: &str| SigningError::Misconfigured {
            provider: CdnProvider::Cloudfront,
            what: what.into(),
        };
        let base = cfg
            .cdn
            .base_url
            .as_ref()
            .ok_or_else(|| miss("cdn.base_url is empty"))?;
        let cf = &cfg.cdn.cloudfront;
        if cf.key_pair_id.is_empty() {
            return Err(miss("cdn.cloudfront.key_pair_id is empty"));
        }
        let path = cf
            .private_key_path
            .as_ref()
            .ok_or_else(|| miss("cdn.cloudfront.private_key_path is empty"))?;
        let key = read_private_key(path)?;
        Ok(Self::new(
            &super::base_of(base),
            &cf.key_pair_id,
            key,
            cfg.cdn.ttl_secs,
        ))
    }

    /// A signer for URLs under `base` (`https://d111111abcdef8.cloudfront.net`).
    pub fn new(base: &str, key_pair_id: &str, key: RsaPrivateKey, ttl: u64) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            key_pair_id: key_pair_id.to_owned(),
            key: SigningKey::<Sha1>::new(key),
            ttl,
        }
    }
}

/// Reads a PEM RSA private key, PKCS#8 (`BEGIN PRIVATE KEY`, what `openssl genrsa` writes
/// today) or PKCS#1 (`BEGIN RSA PRIVATE KEY`, what the CloudFront console docs show).
pub fn read_private_key(path: &Path) -> Result<RsaPrivateKey, SigningError> {
    let err = |reason: &str| SigningError::KeyFile {
        provider: CdnProvider::Cloudfront,
        path: path.display().to_string(),
        reason: reason.into(),
    };
    let pem = std::fs::read_to_string(path).map_err(|e| err(&e.to_string()))?;
    // Parse errors are summarised: their text could echo key material.
    RsaPrivateKey::from_pkcs8_pem(&pem)
        .or_else(|_| RsaPrivateKey::from_pkcs1_pem(&pem))
        .map_err(|_| err("not a PEM RSA private key (PKCS#1 or PKCS#8)"))
}

impl Signer for CloudFrontSigner {
    fn provider(&self) -> CdnProvider {
        CdnProvider::Cloudfront
    }

    fn sign(&self, req: &SignRequest) -> Result<Signed, SigningError> {
        check_path(&req.path)?;
        check_query(
            &req.query,
            &[
                "Expires",
                "Signature",
                "Key-Pair-Id",
                "Policy",
                "Hash-Algorithm",
            ],
        )?;
        let expires = req.expires_or(self.ttl)?;
        let mut resource = format!("{}{}", self.base, encode_path(&req.path));
        if !req.query.is_empty() {
            resource.push('?');
            resource.push_str(&encode_query(&req.query));
        }
        // Exactly this key order, no whitespace, expiry unquoted: CloudFront rebuilds the same
        // bytes from the request to check the signature.
        let policy = format!(
            r#"{{"Statement":[{{"Resource":"{resource}","Condition":{{"DateLessThan":{{"AWS:EpochTime":{expires}}}}}}}]}}"#
        );
        let sig = self.key.sign(policy.as_bytes()).to_vec();
        let sep = if resource.contains('?') { '&' } else { '?' };
        let url = format!(
            "{resource}{sep}Expires={expires}&Signature={}&Key-Pair-Id={}",
            cloudfront_b64(&sig),
            super::encode_value(&self.key_pair_id)
        );
        Ok(Signed {
            url,
            expires_at: expires,
        })
    }
}

/// Standard base64 with `+`→`-`, `=`→`_`, `/`→`~`.
fn cloudfront_b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .encode(bytes)
        .chars()
        .map(|c| match c {
            '+' => '-',
            '=' => '_',
            '/' => '~',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::signature::Verifier as _;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    const BASE: &str = "https://d111111abcdef8.cloudfront.net";

    fn key(name: &str) -> RsaPrivateKey {
        read_private_key(&Path::new(FIXTURES).join(name)).unwrap()
    }

    fn req() -> SignRequest {
        let mut r = SignRequest::new("/tracks/7f3a9c/my song.flac", 0);
        r.expires = Some(1_767_225_600);
        r.query = vec![("dl".into(), "1".into())];
        r
    }

    // Computed with: printf '%s' "$policy" | openssl dgst -sha1 -sign cloudfront-test-key.pem
    //   | base64 -w0 | tr '+=/' '-_~'
    const OPENSSL_SIG: &str = "q5CLXzWeALfPvt31bC9RlxlwUA4ghCIxIGnpkSwvVfUuzGVT2psgoH6f53kQu~trAdQmIRAzy7V8NxVaVUPBRTWOcF-j222~hgE-WJcMjl8t-rRWMvUIfwiCPIRLNc40cqQcfEmOvHgUldeXGYxE3oBlWfJ6G54HHLQiaS0M0OUAwlp8GzFvFyLXNN71FXMWvci4lJ~EkZHj6IkOGBKrqTV-zVv6kAemhL1OsXFKFxO-wEYIlRGQPcD1tsqYrh-yGeXKLKerxqieFfwGGNw9TZLq-P8aV34PsesJdrfUuzVeeHeVR9E-xV8QMRuXCRk34sjGzbVzI358pH9jTf7rqg__";

    #[test]
    fn matches_an_openssl_signature_of_the_canned_policy() {
        for pem in ["cloudfront-test-key.pem", "cloudfront-test-key.pkcs1.pem"] {
            let s = CloudFrontSigner::new(BASE, "K2JCJMDEHXQW5F", key(pem), 3600);
            let signed = s.sign(&req()).unwrap();
            assert_eq!(
                signed.url,
                format!(
                    "{BASE}/tracks/7f3a9c/my%20song.flac?dl=1&Expires=1767225600&Signature={OPENSSL_SIG}&Key-Pair-Id=K2JCJMDEHXQW5F"
                ),
                "{pem}"
            );
        }
    }

    #[test]
    fn the_signature_verifies_with_the_public_key() {
        let k = key("cloudfront-test-key.pem");
        let s = CloudFrontSigner::new(BASE, "K1", k.clone(), 3600);
        let mut r = SignRequest::new("/a.flac", 1_000);
        r.ttl = Some(60);
        let signed = s.sign(&r).unwrap();
        assert_eq!(signed.expires_at, 1_060);
        let b64 = signed
            .url
            .split("Signature=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap();
        use base64::Engine as _;
        let std: String = b64
            .chars()
            .map(|c| match c {
                '-' => '+',
                '_' => '=',
                '~' => '/',
                c => c,
            })
            .collect();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(std)
            .unwrap();
        let policy = format!(
            r#"{{"Statement":[{{"Resource":"{BASE}/a.flac","Condition":{{"DateLessThan":{{"AWS:EpochTime":1060}}}}}}]}}"#
        );
        let vk = VerifyingKey::<Sha1>::new(k.to_public_key());
        let sig = Signature::try_from(raw.as_slice()).unwrap();
        assert!(vk.verify(policy.as_bytes(), &sig).is_ok());
        assert!(
            vk.verify(policy.replace("1060", "1061").as_bytes(), &sig)
                .is_err()
        );
    }

    #[test]
    fn reserved_params_and_unreadable_keys_are_refused() {
        let s = CloudFrontSigner::new(BASE, "K1", key("cloudfront-test-key.pem"), 3600);
        let mut r = req();
        r.query = vec![("Expires".into(), "1".into())];
        assert!(matches!(s.sign(&r), Err(SigningError::BadInput(_))));
        let e = read_private_key(Path::new("/nonexistent/key.pem")).unwrap_err();
        assert!(matches!(e, SigningError::KeyFile { .. }), "{e}");
        let e = read_private_key(&Path::new(FIXTURES).join("signing-examples.json")).unwrap_err();
        assert!(e.to_string().contains("not a PEM RSA private key"), "{e}");
    }
}
