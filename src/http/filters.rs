//! Small reusable filters: state injection, client address, bounded JSON bodies.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use futures_util::StreamExt;
use ipnet::IpNet;
use serde::de::DeserializeOwned;
use warp::http::HeaderMap;
use warp::{Buf, Filter, Rejection};

use crate::http::error::ApiError;
use crate::http::state::AppState;

/// Injects a clone of the state.
pub(crate) fn with_state(
    s: &AppState,
) -> impl Filter<Extract = (AppState,), Error = std::convert::Infallible> + Clone + use<> {
    let s = s.clone();
    warp::any().map(move || s.clone())
}

/// The client's IP address, as the connection loop resolved it (see [`client_addr`]);
/// unspecified when the request came from elsewhere (unit tests).
pub(crate) fn client_ip()
-> impl Filter<Extract = (IpAddr,), Error = std::convert::Infallible> + Clone {
    warp::ext::optional::<ClientIp>()
        .map(|c: Option<ClientIp>| c.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0))
}

/// The client of a request, stored in its extensions by the connection loop.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp(pub(crate) IpAddr);

/// The client's address: the TCP peer, or, when the peer is one of `server.trusted_proxies`,
/// the address that proxy reports in `X-Forwarded-For` (or `Forwarded`). Never read from
/// anyone else: any client can write those headers.
pub(crate) fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    if trusted.is_empty() {
        return peer;
    }
    forwarded_client(peer, headers, trusted)
}

/// A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; key them as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The client behind a chain of trusted proxies: walk the hops right to left (each proxy
/// appends the address it saw) and stop at the first one that is not trusted. A malformed
/// hop ends the walk at the last address a trusted proxy vouched for.
fn forwarded_client(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<Option<IpAddr>> = if headers.contains_key("x-forwarded-for") {
        headers
            .get_all("x-forwarded-for")
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("").split(','))
            .map(|h| parse_hop(h.trim()))
            .collect()
    } else {
        headers
            .get_all("forwarded")
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("").split(','))
            .filter_map(|elem| {
                elem.split(';').find_map(|pair| {
                    let (k, v) = pair.trim().split_once('=')?;
                    k.trim()
                        .eq_ignore_ascii_case("for")
                        .then(|| parse_hop(v.trim().trim_matches('"')))
                })
            })
            .collect()
    };
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        match hop {
            Some(ip) => {
                client = canonical(ip);
                if !is_trusted(&client) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

/// One hop: `203.0.113.7`, `203.0.113.7:4711`, `[2001:db8::1]:4711` or `2001:db8::1`.
fn parse_hop(h: &str) -> Option<IpAddr> {
    if let Ok(ip) = h.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = h.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    h.strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .and_then(|(ip, _)| ip.parse().ok())
}

/// A JSON body: `content-type` among `accepted` (else 415), at most `limit` bytes whether or
/// The raw query string ("" when absent), refused with `invalid_query` when its percent-escapes
/// decode to invalid UTF-8: the form decoder would otherwise turn them into U+FFFD silently and
/// a search for `%ff` would answer 200.
pub(crate) fn raw_query() -> impl Filter<Extract = (String,), Error = Rejection> + Clone {
    warp::query::raw()
        .or(warp::any().map(String::new))
        .unify()
        .and_then(|raw: String| async move {
            match percent_encoding::percent_decode_str(&raw).decode_utf8() {
                Ok(_) => Ok(raw),
                Err(_) => Err(warp::reject::custom(ApiError::InvalidQuery(
                    "the query string is not UTF-8 once percent-decoded".into(),
                ))),
            }
        })
}

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
        .and(body_timeout())
        .and(warp::body::stream())
        .and_then(move |idle: Duration, body| async move {
            let bytes = read_limited(stall_limited(body, idle), limit)
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
    S: futures_util::Stream<Item = Result<B, io::Error>>,
    B: Buf,
{
    let mut body = std::pin::pin!(body);
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(body_error)?;
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

/// How long a request body may send nothing; put in each request's extensions by the
/// connection loop (`server.body_timeout_secs`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyTimeout(pub(crate) Duration);

/// The body timeout of this request (60 s outside the connection loop, e.g. unit tests).
pub(crate) fn body_timeout()
-> impl Filter<Extract = (Duration,), Error = std::convert::Infallible> + Clone {
    warp::ext::optional::<BodyTimeout>()
        .map(|t: Option<BodyTimeout>| t.map_or(Duration::from_secs(60), |t| t.0))
}

/// A body stream that ends with a `TimedOut` error once it has sent nothing for `idle`: a
/// client trickling (or stalling) a body cannot hold a handler and its buffers for ever.
pub(crate) fn stall_limited<S, T, E>(
    body: S,
    idle: Duration,
) -> impl futures_util::Stream<Item = Result<T, io::Error>> + Send + 'static
where
    S: futures_util::Stream<Item = Result<T, E>> + Send + Unpin + 'static,
    T: Send + 'static,
    E: std::fmt::Display,
{
    futures_util::stream::unfold((body, false), move |(mut body, done)| async move {
        if done {
            return None;
        }
        match tokio::time::timeout(idle, body.next()).await {
            Ok(Some(Ok(x))) => Some((Ok(x), (body, false))),
            Ok(Some(Err(e))) => Some((Err(io::Error::other(e.to_string())), (body, true))),
            Ok(None) => None,
            Err(_) => Some((
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    Stalled {
                        secs: idle.as_secs(),
                    },
                )),
                (body, true),
            )),
        }
    })
}

/// What [`stall_limited`] ends a body with, inside an `io::Error` (multer carries it through).
#[derive(Debug, thiserror::Error)]
#[error("the request body sent nothing for {secs} s")]
struct Stalled {
    secs: u64,
}

/// A body read error as the client sees it: 408 for a stall, else 400.
pub(crate) fn body_error(e: io::Error) -> ApiError {
    if let Some(Stalled { secs }) = e.get_ref().and_then(|i| i.downcast_ref::<Stalled>()) {
        ApiError::BodyTimeout { secs: *secs }
    } else {
        ApiError::BadRequest {
            code: "body_read_failed",
            message: format!("could not read the request body: {e}"),
        }
    }
}

/// Deserialises JSON, naming the failing field in the message (`[0].value: invalid type…`).
pub(crate) fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let msg = if path == "." || path.is_empty() {
            format!("invalid JSON: {inner}")
        } else {
            format!("invalid JSON at {path}: {inner}")
        };
        ApiError::InvalidJson(msg)
    })?;
    // One document per body: `{"a":1} trailing garbage` is refused, not half-read.
    de.end()
        .map_err(|e| ApiError::InvalidJson(format!("invalid JSON after the document: {e}")))?;
    Ok(value)
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
    fn trailing_garbage_after_json_is_refused() {
        assert!(decode_json::<T>(br#"{"a":1}"#).is_ok());
        assert!(decode_json::<T>(b"{\"a\":1}  \n").is_ok());
        let e = decode_json::<T>(br#"{"a":1} {"a":2}"#).unwrap_err();
        assert!(e.to_string().contains("after the document"), "{e}");
        assert!(decode_json::<T>(br#"{"a":1}x"#).is_err());
    }

    #[tokio::test]
    async fn a_stalled_body_times_out() {
        let first: Result<&'static [u8], io::Error> = Ok(b"{");
        let stalls = futures_util::stream::iter(vec![first]).chain(futures_util::stream::pending());
        let body = stall_limited(stalls, Duration::from_millis(100));
        let e = read_limited(body, 1024).await.unwrap_err();
        assert!(matches!(e, ApiError::BodyTimeout { .. }), "{e:?}");
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let stranger: IpAddr = "198.51.100.9".parse().unwrap();
        let xff = headers(&[("x-forwarded-for", "203.0.113.7, 10.0.0.5")]);
        assert_eq!(
            forwarded_client(proxy, &xff, &trusted),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        // A client forging the header directly gets its own address.
        assert_eq!(forwarded_client(stranger, &xff, &trusted), stranger);
        // A spoofed left-most entry is ignored: the right-most untrusted hop wins.
        let spoof = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.7")]);
        assert_eq!(
            forwarded_client(proxy, &spoof, &trusted),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        let fwd = headers(&[("forwarded", "for=\"[2001:db8::1]:4711\";proto=https")]);
        assert_eq!(
            forwarded_client(proxy, &fwd, &trusted),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        let garbage = headers(&[("x-forwarded-for", "not-an-ip")]);
        assert_eq!(forwarded_client(proxy, &garbage, &trusted), proxy);
        assert_eq!(forwarded_client(proxy, &HeaderMap::new(), &trusted), proxy);
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
