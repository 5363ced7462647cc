//! S3 SigV4 query-string presigned GET (docs/SIGNING.md §3) for the `[storage.s3]` bucket:
//! AWS, MinIO, Garage, R2 (`region = "auto"`). Path-style or virtual-hosted, a non-default port
//! kept in the signed host, `UNSIGNED-PAYLOAD`, optional session token.

use sha2::{Digest, Sha256};

use super::{
    SignRequest, Signed, Signer, SigningError, amz_date, check_path, check_query, encode_path,
    encode_value, hex, hmac_sha256,
};
use crate::config::{CdnProvider, Config, Secret};

/// Signs presigned GET URLs for one bucket.
#[derive(Debug, Clone)]
pub struct S3Signer {
    scheme: String,
    /// `host[:port]` of the endpoint, lower-case, port only when not the scheme's default.
    host: String,
    /// Path of the endpoint URL without trailing `/` (usually empty).
    prefix: String,
    bucket: String,
    region: String,
    access_key_id: String,
    secret: Secret,
    session_token: Secret,
    path_style: bool,
    ttl: u64,
}

/// The intermediate SigV4 strings, for tests and debugging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presigned {
    /// The URL.
    pub url: String,
    /// The canonical request that was hashed.
    pub canonical_request: String,
    /// The string to sign.
    pub string_to_sign: String,
    /// Lower-case hex signature.
    pub signature: String,
    /// `X-Amz-Expires`.
    pub expires_in: u64,
}

impl S3Signer {
    /// From `[storage.s3]`: needs endpoint, bucket, access key id and secret.
    pub fn from_config(cfg: &Config) -> Result<Self, SigningError> {
        let s3 = &cfg.storage.s3;
        let miss = |what: &str| SigningError::Misconfigured {
            provider: CdnProvider::S3,
            what: format!("storage.s3.{what} is empty"),
        };
        let endpoint = s3.endpoint.as_ref().ok_or_else(|| miss("endpoint"))?;
        if s3.bucket.is_empty() {
            return Err(miss("bucket"));
        }
        if s3.access_key_id.is_empty() {
            return Err(miss("access_key_id"));
        }
        if s3.secret_access_key.is_empty() {
            return Err(miss("secret_access_key"));
        }
        let host = endpoint.host_str().ok_or_else(|| miss("endpoint host"))?;
        let host = match endpoint.port() {
            // `Url::port` is `None` for the scheme's default port: botocore drops :443/:80 too.
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        Ok(Self {
            scheme: endpoint.scheme().to_owned(),
            host: host.to_ascii_lowercase(),
            prefix: endpoint.path().trim_end_matches('/').to_owned(),
            bucket: s3.bucket.clone(),
            region: s3.region.clone(),
            access_key_id: s3.access_key_id.clone(),
            secret: s3.secret_access_key.clone(),
            session_token: s3.session_token.clone(),
            path_style: s3.path_style,
            ttl: cfg.cdn.ttl_secs,
        })
    }

    /// Presigns a GET and returns every intermediate string.
    pub fn presign(&self, req: &SignRequest) -> Result<Presigned, SigningError> {
        let key = req.path.strip_prefix('/').unwrap_or(&req.path);
        if key.is_empty() {
            return Err(SigningError::BadInput("empty object key".into()));
        }
        check_path(&format!("/{key}"))?;
        // S3 reserves these; a caller may add response-* overrides.
        check_query(&req.query, &[])?;
        if let Some((k, _)) = req
            .query
            .iter()
            .find(|(k, _)| k.to_ascii_lowercase().starts_with("x-amz-"))
        {
            return Err(SigningError::BadInput(format!(
                "query parameter {k:?} is reserved by SigV4"
            )));
        }
        let expires_in = match req.expires {
            Some(e) => e.checked_sub(req.now).filter(|d| *d > 0).ok_or_else(|| {
                SigningError::BadInput(format!("expires {e} is not after now {}", req.now))
            })?,
            None => req.ttl_or(self.ttl)?,
        };
        if !(1..=super::MAX_TTL_SECS).contains(&expires_in) {
            return Err(SigningError::BadInput(format!(
                "X-Amz-Expires {expires_in} is outside 1..=604800"
            )));
        }

        let datetime = amz_date(req.now);
        let date = &datetime[..8];
        let scope = format!("{date}/{}/s3/aws4_request", self.region);
        let (host, uri) = if self.path_style {
            (
                self.host.clone(),
                format!(
                    "{}/{}/{}",
                    self.prefix,
                    encode_value(&self.bucket),
                    encode_path(key)
                ),
            )
        } else {
            (
                format!("{}.{}", self.bucket, self.host),
                format!("{}/{}", self.prefix, encode_path(key)),
            )
        };

        let mut params: Vec<(String, String)> = vec![
            ("X-Amz-Algorithm".into(), "AWS4-HMAC-SHA256".into()),
            (
                "X-Amz-Credential".into(),
                format!("{}/{scope}", self.access_key_id),
            ),
            ("X-Amz-Date".into(), datetime.clone()),
            ("X-Amz-Expires".into(), expires_in.to_string()),
            ("X-Amz-SignedHeaders".into(), "host".into()),
        ];
        if !self.session_token.is_empty() {
            params.push((
                "X-Amz-Security-Token".into(),
                self.session_token.expose().to_owned(),
            ));
        }
        params.extend(req.query.iter().cloned());
        // Sorted by encoded name: upper-case X-Amz-* before lower-case response-*.
        let mut encoded: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (encode_value(k), encode_value(v)))
            .collect();
        encoded.sort();
        let canonical_query = encoded
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");

        let canonical_request =
            format!("GET\n{uri}\n{canonical_query}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD");
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{datetime}\n{scope}\n{}",
            hex(&Sha256::digest(canonical_request.as_bytes()))
        );
        let k_date = hmac_sha256(
            format!("AWS4{}", self.secret.expose()).as_bytes(),
            &[date.as_bytes()],
        );
        let k_region = hmac_sha256(&k_date, &[self.region.as_bytes()]);
        let k_service = hmac_sha256(&k_region, &[b"s3"]);
        let k_signing = hmac_sha256(&k_service, &[b"aws4_request"]);
        let signature = hex(&hmac_sha256(&k_signing, &[string_to_sign.as_bytes()]));
        let url = format!(
            "{}://{host}{uri}?{canonical_query}&X-Amz-Signature={signature}",
            self.scheme
        );
        Ok(Presigned {
            url,
            canonical_request,
            string_to_sign,
            signature,
            expires_in,
        })
    }
}

impl Signer for S3Signer {
    fn provider(&self) -> CdnProvider {
        CdnProvider::S3
    }

    fn sign(&self, req: &SignRequest) -> Result<Signed, SigningError> {
        let p = self.presign(req)?;
        Ok(Signed {
            url: p.url,
            expires_at: req.now + p.expires_in,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Config {
        let endpoint = if extra.contains("endpoint") {
            ""
        } else {
            "endpoint = \"https://s3.amazonaws.com\"\n"
        };
        crate::config::from_toml_str(&format!(
            "[storage.s3]\n{endpoint}bucket = \"examplebucket\"\n\
             access_key_id = \"AKIAIOSFODNN7EXAMPLE\"\nsecret_access_key = \"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\"\n{extra}"
        ))
        .unwrap()
    }

    fn at(path: &str) -> SignRequest {
        let mut r = SignRequest::new(path, 1_369_353_600); // 20130524T000000Z
        r.ttl = Some(86_400);
        r
    }

    #[test]
    fn reproduces_the_aws_documentation_example_byte_for_byte() {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/signing-examples.json"))
                .unwrap();
        let case = &v["schemes"]["s3_sigv4_presign"][0];
        let exp = &case["expected"];
        let s = S3Signer::from_config(&cfg("path_style = false")).unwrap();
        let p = s.presign(&at("/test.txt")).unwrap();
        assert_eq!(
            p.canonical_request,
            exp["canonical_request"].as_str().unwrap()
        );
        assert_eq!(p.string_to_sign, exp["string_to_sign"].as_str().unwrap());
        assert!(
            p.string_to_sign
                .ends_with("3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04")
        );
        assert_eq!(
            p.signature,
            "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
        assert_eq!(p.url, exp["url"].as_str().unwrap());
        assert_eq!(
            s.sign(&at("test.txt")).unwrap().expires_at,
            1_369_353_600 + 86_400
        );
    }

    #[test]
    fn path_style_keeps_the_port_and_encodes_keys_per_sigv4() {
        let c = cfg("path_style = true\nendpoint = \"http://127.0.0.1:9000\"\nregion = \"auto\"");
        let p = S3Signer::from_config(&c)
            .unwrap()
            .presign(&at("/tracks/a b+c/é.flac"))
            .unwrap();
        assert!(
            p.canonical_request
                .starts_with("GET\n/examplebucket/tracks/a%20b%2Bc/%C3%A9.flac\n"),
            "{}",
            p.canonical_request
        );
        assert!(p.canonical_request.contains("\nhost:127.0.0.1:9000\n"));
        assert!(
            p.string_to_sign
                .contains("\n20130524/auto/s3/aws4_request\n")
        );
        assert!(
            p.url.starts_with(
                "http://127.0.0.1:9000/examplebucket/tracks/a%20b%2Bc/%C3%A9.flac?X-Amz-Algorithm="
            ),
            "{}",
            p.url
        );
    }

    #[test]
    fn default_ports_are_dropped_from_the_host() {
        let c = cfg("endpoint = \"https://minio.example:443\"");
        let p = S3Signer::from_config(&c)
            .unwrap()
            .presign(&at("a"))
            .unwrap();
        assert!(
            p.canonical_request.contains("\nhost:minio.example\n"),
            "{}",
            p.canonical_request
        );
    }

    #[test]
    fn session_token_and_response_overrides_are_signed_in_byte_order() {
        let c = cfg("session_token = \"tok/en+=\"");
        let mut r = at("a.flac");
        r.query = vec![(
            "response-content-disposition".into(),
            "attachment; filename=\"a b.flac\"".into(),
        )];
        let p = S3Signer::from_config(&c).unwrap().presign(&r).unwrap();
        let q = p.canonical_request.lines().nth(2).unwrap();
        let names: Vec<&str> = q
            .split('&')
            .map(|kv| kv.split('=').next().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "X-Amz-Algorithm",
                "X-Amz-Credential",
                "X-Amz-Date",
                "X-Amz-Expires",
                "X-Amz-Security-Token",
                "X-Amz-SignedHeaders",
                "response-content-disposition"
            ]
        );
        assert!(q.contains("X-Amz-Security-Token=tok%2Fen%2B%3D"));
        assert!(
            q.contains("response-content-disposition=attachment%3B%20filename%3D%22a%20b.flac%22")
        );
        assert!(
            p.url
                .ends_with(&format!("&X-Amz-Signature={}", p.signature))
        );
    }

    #[test]
    fn expires_becomes_a_lifetime_and_is_bounded() {
        let s = S3Signer::from_config(&cfg("")).unwrap();
        let mut r = at("a");
        r.expires = Some(1_369_353_600 + 60);
        assert_eq!(s.presign(&r).unwrap().expires_in, 60);
        r.expires = Some(1_369_353_600);
        assert!(matches!(s.presign(&r), Err(SigningError::BadInput(_))));
        let mut r = at("a");
        r.ttl = Some(604_801);
        assert!(matches!(s.presign(&r), Err(SigningError::BadInput(_))));
        assert!(matches!(
            s.presign(&at("/")),
            Err(SigningError::BadInput(_))
        ));
        let mut r = at("a");
        r.query = vec![("X-Amz-Signature".into(), "x".into())];
        assert!(matches!(s.presign(&r), Err(SigningError::BadInput(_))));
    }

    #[test]
    fn an_unconfigured_bucket_cannot_sign() {
        let e = S3Signer::from_config(&crate::config::from_toml_str("").unwrap()).unwrap_err();
        assert!(
            matches!(
                e,
                SigningError::Misconfigured {
                    provider: CdnProvider::S3,
                    ..
                }
            ),
            "{e}"
        );
    }
}
