//! Gate 1, who asks: the token segment or query of a `/media/` target, checked by the
//! configured scheme, or the CDN's origin-secret header.

use crate::clock::now;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::signing::bunny::{self, BunnyVerifyError};
use crate::signing::local::LocalVerifyError;
use crate::storage::BlobKey;

use super::*;

// The request target: an optional token segment, then the object path.

/// Where the token travels, if in the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TokenSegment {
    /// `vzt.{expires}.{scope}.{mac}`: Veza's own.
    Local,
    /// `bcdn_token=…&expires=…`: Bunny's path form.
    Bunny,
    /// None in the path (a Bunny query-form token may be in the query).
    None,
}

/// The parts of `/media/{tail}`.
#[derive(Debug)]
pub(super) struct Target {
    pub(super) segment: TokenSegment,
    /// The decoded object path without the leading `/`.
    pub(super) key: BlobKey,
}

pub(super) fn split_target(tail: &str) -> Option<Target> {
    let (segment, wire) = if tail.starts_with("vzt.") {
        (TokenSegment::Local, tail.split_once('/')?.1)
    } else if tail.starts_with("bcdn_token=") {
        (TokenSegment::Bunny, tail.split_once('/')?.1)
    } else {
        (TokenSegment::None, tail)
    };
    let path = percent_encoding::percent_decode_str(wire)
        .decode_utf8()
        .ok()?;
    let key = BlobKey::parse(&path).ok()?;
    Some(Target { segment, key })
}

// Gate 1: who asks.

/// How a request proved it may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Access {
    /// The CDN's origin secret: the edge checked the viewer's token itself.
    Edge,
    /// A signed URL whose token covers `scope`: the file itself, or a directory ending in `/`.
    Token {
        /// `/…` as signed.
        scope: String,
    },
}

pub(super) fn denied(code: &'static str, message: &str) -> ApiError {
    ApiError::Denied {
        code,
        message: message.to_owned(),
    }
}

pub(super) fn authenticate(
    req: &MediaRequest,
    s: &AppState,
    target: &Target,
) -> Result<Access, ApiError> {
    let cdn = &s.config.cdn;
    let secret = &cdn.bunny.origin_secret;
    if !secret.is_empty()
        && let Some(given) = req.headers.get(ORIGIN_SECRET_HEADER)
        && crate::encoding::ct_eq(given.as_bytes(), secret.expose().as_bytes())
    {
        return Ok(Access::Edge);
    }
    // What the verifiers read: the token segment (or query) and the object path as sent.
    let full = if req.query.is_empty() {
        format!("/{}", req.tail)
    } else {
        format!("/{}?{}", req.tail, req.query)
    };
    let now = u64::try_from(now()).unwrap_or_default();
    let bunny_query = target.segment == TokenSegment::None
        && req
            .query
            .split('&')
            .any(|p| p.starts_with("token=") || p == "token");
    match target.segment {
        TokenSegment::Local => {
            let signer = s.cdn.local().map_err(|e| {
                tracing::error!(error = %e, "local signer unavailable; cannot check /media/ tokens");
                ApiError::Internal
            })?;
            match signer.verify(&full, now, Some(req.ip)) {
                Ok(v) => Ok(Access::Token { scope: v.scope }),
                Err(LocalVerifyError::Expired) => Err(expired()),
                Err(LocalVerifyError::BadToken | LocalVerifyError::Malformed(_)) => Err(invalid()),
            }
        }
        TokenSegment::Bunny | TokenSegment::None
            if target.segment == TokenSegment::Bunny || bunny_query =>
        {
            if !cdn.bunny.verify_tokens || cdn.security_key.is_empty() {
                return Err(denied(
                    "token_not_accepted",
                    "this origin does not check Bunny tokens (cdn.bunny.verify_tokens is off); the CDN must send the origin secret header",
                ));
            }
            let country = req
                .headers
                .get("cdn-requestcountrycode")
                .and_then(|v| v.to_str().ok());
            let key = cdn.security_key.expose();
            match bunny::verify_scheme(&full, key, cdn.bunny.scheme, now, Some(req.ip)) {
                Ok(v) if v.allows_country(country) => Ok(Access::Token {
                    scope: v.token_path.unwrap_or(v.path),
                }),
                Ok(_) => Err(denied(
                    "token_country",
                    "this signed URL is not valid in the viewer's country",
                )),
                Err(BunnyVerifyError::Expired) => Err(expired()),
                Err(_) => Err(invalid()),
            }
        }
        TokenSegment::Bunny | TokenSegment::None => Err(denied(
            "token_missing",
            "a signed URL is required; ask GET /api/v1/tracks/{id}/stream for one",
        )),
    }
}

pub(super) fn expired() -> ApiError {
    denied(
        "token_expired",
        "this signed URL has expired; ask the stream API for a new one",
    )
}

pub(super) fn invalid() -> ApiError {
    denied(
        "token_invalid",
        "this signed URL is not valid for this object (tampered, outside its directory, or for another viewer)",
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// Arbitrary `/media/` tails never panic the target and object parsers.
        #[test]
        fn any_media_tail_parses_safely(raw in proptest::collection::vec(any::<u8>(), 0..120)) {
            let tail = String::from_utf8_lossy(&raw);
            if let Some(t) = split_target(&tail) {
                let _ = Object::of(t.key);
            }
        }
    }

    const ID: &str = "0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b";

    #[test]
    fn targets_split_off_the_token_and_refuse_traversal() {
        let t = split_target(&format!("vzt.1.d3.abc/tracks/{ID}/hls/master.m3u8")).unwrap();
        assert_eq!(t.segment, TokenSegment::Local);
        assert_eq!(t.key.as_str(), format!("tracks/{ID}/hls/master.m3u8"));
        let t = split_target("bcdn_token=x&token_path=%2Ftracks%2F&expires=1/covers/a").unwrap();
        assert_eq!(
            (t.segment, t.key.as_str()),
            (TokenSegment::Bunny, "covers/a")
        );
        for bad in [
            "vzt.1.f.m",
            "a/%2e%2e/b",
            "%2e%2e/x",
            "a//b",
            "a%00b",
            ".tmp/x",
        ] {
            assert!(split_target(bad).is_none(), "{bad}");
        }
    }
}
