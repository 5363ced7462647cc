//! Small reusable filters: state injection, client address, bounded JSON bodies.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use warp::{Buf, Filter, Rejection};

use crate::error::ApiError;
use crate::state::AppState;

/// Injects a clone of the state.
pub(crate) fn with_state(
    s: &AppState,
) -> impl Filter<Extract = (AppState,), Error = std::convert::Infallible> + Clone + use<> {
    let s = s.clone();
    warp::any().map(move || s.clone())
}

/// The peer's IP address (unspecified when the transport has none).
pub(crate) fn client_ip()
-> impl Filter<Extract = (IpAddr,), Error = std::convert::Infallible> + Clone {
    warp::addr::remote().map(|a: Option<SocketAddr>| {
        a.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| match a.ip() {
            // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; key them as IPv4.
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        })
    })
}

/// A JSON body: `content-type` among `accepted` (else 415), at most `limit` bytes whether or
/// not a length is declared (else 413), and deserialised with the failing field named (400).
pub(crate) fn json_body<T>(
    limit: u64,
    accepted: &'static [&'static str],
) -> impl Filter<Extract = (T,), Error = Rejection> + Clone
where
    T: DeserializeOwned + Send + 'static,
{
    warp::header::optional::<String>("content-type")
        .and(warp::header::optional::<u64>("content-length"))
        .and_then(move |ct: Option<String>, len: Option<u64>| async move {
            check_content_type(ct.as_deref(), accepted).map_err(warp::reject::custom)?;
            if len.is_some_and(|l| l > limit) {
                return Err(warp::reject::custom(ApiError::PayloadTooLarge { limit }));
            }
            Ok::<(), Rejection>(())
        })
        .untuple_one()
        .and(warp::body::stream())
        .and_then(move |body| async move {
            let bytes = read_limited(body, limit)
                .await
                .map_err(warp::reject::custom)?;
            decode_json::<T>(&bytes).map_err(warp::reject::custom)
        })
}

fn check_content_type(ct: Option<&str>, accepted: &[&str]) -> Result<(), ApiError> {
    let essence = ct
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase());
    match essence {
        Some(e) if accepted.contains(&e.as_str()) => Ok(()),
        _ => Err(ApiError::UnsupportedMediaType {
            expected: accepted.join(" or "),
        }),
    }
}

async fn read_limited<S, B>(body: S, limit: u64) -> Result<Vec<u8>, ApiError>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut body = std::pin::pin!(body);
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| ApiError::BadRequest {
            code: "body_read_failed",
            message: format!("could not read the request body: {e}"),
        })?;
        if out.len() as u64 + chunk.remaining() as u64 > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            out.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(out)
}

/// Deserialises JSON, naming the failing field in the message (`[0].value: invalid type…`).
pub(crate) fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = if path == "." || path.is_empty() {
            format!("invalid JSON: {inner}")
        } else {
            format!("invalid JSON at {path}: {inner}")
        };
        ApiError::InvalidJson(msg)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct T {
        a: u32,
    }

    #[test]
    fn json_errors_name_the_field() {
        let e = decode_json::<T>(br#"{"a":"x"}"#).unwrap_err();
        assert!(e.to_string().contains("at a:"), "{e}");
    }

    #[test]
    fn content_type_parameters_are_ignored() {
        assert!(
            check_content_type(
                Some("application/JSON; charset=utf-8"),
                &["application/json"]
            )
            .is_ok()
        );
        assert!(check_content_type(Some("text/xml"), &["application/json"]).is_err());
        assert!(check_content_type(None, &["application/json"]).is_err());
    }
}
