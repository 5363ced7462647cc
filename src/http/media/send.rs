//! Serving an object: validators, ranges, streaming the body from the blob store.

use warp::Reply;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::storage::{ByteRange, ObjectMeta, StoreError};

use super::*;

// Serving: validators, ranges, streaming.

pub(super) async fn send(
    req: &MediaRequest,
    s: &AppState,
    object: &Object,
    content_type: HeaderValue,
    cache_control: HeaderValue,
    tags: Option<HeaderValue>,
) -> Result<Response, ApiError> {
    let h = &req.headers;
    let text = |name: header::HeaderName| h.get(name).and_then(|v| v.to_str().ok());
    let range = text(header::RANGE).and_then(parse_range);
    let if_none_match = text(header::IF_NONE_MATCH);
    let if_range = text(header::IF_RANGE);

    let mut out = Response::new("".into());
    let oh = out.headers_mut();
    oh.insert(header::CONTENT_TYPE, content_type);
    oh.insert(header::CACHE_CONTROL, cache_control);
    oh.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(tags) = tags {
        oh.insert("cdn-tag", tags);
    }

    // Plain GETs (the edge's first pull, a player's segment) go straight to one read; the
    // validators need the ETag first, so they take a `head` before any body is opened.
    let needs_meta = req.head || if_none_match.is_some() || (range.is_some() && if_range.is_some());
    let mut range = range;
    if needs_meta {
        let meta = head(s, object).await?;
        if let Some(etag) = &meta.etag {
            set_etag(&mut out, etag);
            if if_none_match.is_some_and(|v| none_match_hits(v, etag)) {
                *out.status_mut() = StatusCode::NOT_MODIFIED;
                out.headers_mut().remove(header::CONTENT_TYPE);
                return Ok(out);
            }
        }
        if let Some(v) = if_range
            && !meta.etag.as_deref().is_some_and(|e| strong_match(v, e))
        {
            // A stale (or date) validator: the client's partial copy is outdated; send it all.
            range = None;
        }
        if req.head {
            let (start, end) = match range {
                Some(r) => r
                    .resolve(meta.size)
                    .ok_or(ApiError::RangeNotSatisfiable { size: meta.size })?,
                None => (0, meta.size.saturating_sub(1)),
            };
            set_body_headers(&mut out, range.is_some(), start, end, meta.size);
            return Ok(out);
        }
    }

    let obj = s.store.get(&object.key, range).await.map_err(store_error)?;
    if let Some(etag) = &obj.etag {
        set_etag(&mut out, etag);
    }
    set_body_headers(&mut out, range.is_some(), obj.start, obj.end, obj.size);
    let headers = std::mem::take(out.headers_mut());
    let status = out.status();
    let mut resp = warp::reply::stream(sync_wrapper::SyncStream::new(obj.body)).into_response();
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    Ok(resp)
}

/// Size and ETag, from the cache for content-addressed objects (their bytes never change, so
/// an edge's revalidation is answered without a store round trip). Playlists always ask.
pub(super) async fn head(s: &AppState, object: &Object) -> Result<ObjectMeta, ApiError> {
    let immutable = object.kind != Kind::Playlist;
    let key = object.key.as_str();
    if immutable && let Some(meta) = s.caches.blob_head.get(&key.to_owned()) {
        return Ok(meta);
    }
    let generation = s.caches.blob_head.generation();
    let meta = s
        .store
        .head(&object.key)
        .await
        .map_err(store_error)?
        .ok_or(ApiError::NotFound)?;
    if immutable {
        s.caches
            .blob_head
            .insert(key.to_owned(), meta.clone(), generation);
    }
    Ok(meta)
}

pub(super) fn set_etag(out: &mut Response, etag: &str) {
    if let Ok(v) = HeaderValue::from_str(etag) {
        out.headers_mut().insert(header::ETAG, v);
    }
}

/// Status, `Content-Length` and (for 206) `Content-Range` of `start..=end` of `size` bytes.
pub(super) fn set_body_headers(out: &mut Response, partial: bool, start: u64, end: u64, size: u64) {
    let len = if size == 0 { 0 } else { end - start + 1 };
    let h = out.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if partial {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{size}")) {
            h.insert(header::CONTENT_RANGE, v);
        }
        *out.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
}

pub(super) fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound(_) | StoreError::InvalidKey(_) => ApiError::NotFound,
        StoreError::RangeNotSatisfiable { size } => ApiError::RangeNotSatisfiable { size },
        e => {
            tracing::error!(error = %e, "blob store failed while serving /media/");
            ApiError::Internal
        }
    }
}

/// One `bytes=` range; several ranges, other units or garbage are ignored (the whole object is
/// sent), as RFC 9110 §14.2 allows.
pub(super) fn parse_range(v: &str) -> Option<ByteRange> {
    let (unit, spec) = v.trim().split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return None;
    }
    let (a, b) = spec.trim().split_once('-')?;
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (a.trim(), b.trim()) {
        ("", n) => num(n).map(ByteRange::Suffix),
        (s, "") => num(s).map(ByteRange::From),
        (s, e) => Some(ByteRange::Inclusive(num(s)?, num(e)?)),
    }
}

/// `If-None-Match`: `*`, or a list of entity tags compared weakly (`W/` ignored).
pub(super) fn none_match_hits(header: &str, etag: &str) -> bool {
    let ours = etag.trim_start_matches("W/");
    header.trim() == "*"
        || header
            .split(',')
            .any(|t| t.trim().trim_start_matches("W/") == ours)
}

/// `If-Range` with an entity tag: strong comparison (a weak tag never matches); a date never
/// matches here since no `Last-Modified` is sent.
pub(super) fn strong_match(header: &str, etag: &str) -> bool {
    let h = header.trim();
    h.starts_with('"') && !etag.starts_with("W/") && h == etag
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]


        /// Whatever a client sends as `Range`, parsing never panics and a range that resolves
        /// lies inside the object, in order.
        #[test]
        fn any_range_header_parses_safely(
            raw in proptest::collection::vec(any::<u8>(), 0..40),
            size in 0u64..10_000,
            shaped in any::<bool>(),
            a in any::<u64>(),
            b in any::<u64>(),
        ) {
            let text = if shaped {
                format!("bytes={a}-{b}")
            } else {
                String::from_utf8_lossy(&raw).into_owned()
            };
            if let Some(r) = parse_range(&text)
                && let Some((start, end)) = r.resolve(size)
            {
                prop_assert!(start <= end && end < size, "{text} on {size}: {start}-{end}");
            }
        }

    }

    #[test]
    fn ranges_parse_like_rfc_9110_single_ranges() {
        assert_eq!(parse_range("bytes=0-99"), Some(ByteRange::Inclusive(0, 99)));
        assert_eq!(parse_range("bytes=100-"), Some(ByteRange::From(100)));
        assert_eq!(parse_range("bytes=-5"), Some(ByteRange::Suffix(5)));
        assert_eq!(parse_range("Bytes = 1-2"), Some(ByteRange::Inclusive(1, 2)));
        for ignored in [
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=a-b",
            "bytes=-",
            "bytes=+1-2",
            "0-1",
        ] {
            assert_eq!(parse_range(ignored), None, "{ignored}");
        }
    }

    #[test]
    fn validators_compare_as_http_says() {
        let e = "\"abc\"";
        assert!(none_match_hits("\"abc\"", e));
        assert!(none_match_hits("W/\"abc\"", e));
        assert!(none_match_hits("\"x\", \"abc\"", e));
        assert!(none_match_hits("*", e));
        assert!(!none_match_hits("\"abd\"", e));
        assert!(strong_match("\"abc\"", e));
        assert!(!strong_match("W/\"abc\"", e));
        assert!(!strong_match("Wed, 21 Oct 2015 07:28:00 GMT", e));
    }
}
