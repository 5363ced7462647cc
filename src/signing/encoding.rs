//! Encoding rules every provider shares: percent-encoding, path and query checks, IP binding
//! bytes, base URLs and SigV4 times.

use std::net::IpAddr;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use url::Url;

use crate::config::{CdnProvider, Config};

use super::{SignRequest, SigningError};

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
