//! Serving an object: validators, ranges, streaming the body from the blob store.

use bytes::Bytes;
use futures_util::StreamExt;
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
    let asked = Conditions {
        range: text(header::RANGE).and_then(parse_range),
        if_none_match: text(header::IF_NONE_MATCH),
        if_range: text(header::IF_RANGE),
    };

    let mut out = Response::new("".into());
    let oh = out.headers_mut();
    oh.insert(header::CONTENT_TYPE, content_type);
    oh.insert(header::CACHE_CONTROL, cache_control);
    oh.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(tags) = tags {
        oh.insert("cdn-tag", tags);
    }

    // Everything but originals (large, and pulled about once per edge) may be in memory.
    let cache = &s.caches.media_bytes;
    let cacheable = object.kind != Kind::Original;
    if cacheable && let Some(hit) = cache.get(object.key.as_str()) {
        return from_memory(out, &hit.bytes, hit.etag.as_deref(), req.head, &asked);
    }

    // Plain GETs (the edge's first pull, a player's segment) go straight to one read; the
    // validators need the ETag first, so they take a `head` before any body is opened.
    let mut range = asked.range;
    if req.head || asked.if_none_match.is_some() || (range.is_some() && asked.if_range.is_some()) {
        let meta = head(s, object).await?;
        range = match validate(&mut out, meta.etag.as_deref(), &asked) {
            Validated::NotModified => return Ok(out),
            Validated::Send(range) => range,
        };
        if req.head {
            let (start, end) = resolve(range, meta.size)?;
            set_body_headers(&mut out, range.is_some(), start, end, meta.size);
            return Ok(out);
        }
    }

    // Taken before the read: a playlist re-written meanwhile must not be kept.
    let generation = cache.generation();
    let obj = s.store.get(&object.key, range).await.map_err(store_error)?;
    if cacheable && range.is_none() && cache.keeps(obj.size) {
        let bytes = read_whole(obj.body, obj.size).await?;
        let mutable = (object.kind == Kind::Playlist).then_some(generation);
        cache.insert(
            object.key.as_str(),
            bytes.clone(),
            obj.etag.clone(),
            mutable,
        );
        return from_memory(out, &bytes, obj.etag.as_deref(), false, &asked);
    }
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

/// What the request asked of the object: a part of it, and its validators.
pub(super) struct Conditions<'a> {
    range: Option<ByteRange>,
    if_none_match: Option<&'a str>,
    if_range: Option<&'a str>,
}

/// What the validators decided.
enum Validated {
    /// 304: the client's copy is current (the response is ready).
    NotModified,
    /// Send the object, or the part still asked for.
    Send(Option<ByteRange>),
}

/// Applies `If-None-Match` and `If-Range` against the object's ETag, setting it on `out`.
fn validate(out: &mut Response, etag: Option<&str>, asked: &Conditions) -> Validated {
    let mut range = asked.range;
    if let Some(etag) = etag {
        set_etag(out, etag);
        if asked
            .if_none_match
            .is_some_and(|v| none_match_hits(v, etag))
        {
            *out.status_mut() = StatusCode::NOT_MODIFIED;
            out.headers_mut().remove(header::CONTENT_TYPE);
            return Validated::NotModified;
        }
    }
    if let Some(v) = asked.if_range
        && !etag.is_some_and(|e| strong_match(v, e))
    {
        // A stale (or date) validator: the client's partial copy is outdated; send it all.
        range = None;
    }
    Validated::Send(range)
}

/// The inclusive bounds `range` selects in `size` bytes (all of them without a range).
fn resolve(range: Option<ByteRange>, size: u64) -> Result<(u64, u64), ApiError> {
    match range {
        Some(r) => r
            .resolve(size)
            .ok_or(ApiError::RangeNotSatisfiable { size }),
        None => Ok((0, size.saturating_sub(1))),
    }
}

/// An answer from bytes in memory: the same validators, ranges and headers as from the store.
fn from_memory(
    mut out: Response,
    bytes: &Bytes,
    etag: Option<&str>,
    head: bool,
    asked: &Conditions,
) -> Result<Response, ApiError> {
    let range = match validate(&mut out, etag, asked) {
        Validated::NotModified => return Ok(out),
        Validated::Send(range) => range,
    };
    let size = bytes.len() as u64;
    let (start, end) = resolve(range, size)?;
    set_body_headers(&mut out, range.is_some(), start, end, size);
    if !head && size > 0 {
        *out.body_mut() = bytes.slice(start as usize..=end as usize).into();
    }
    Ok(out)
}

/// Reads a body of `size` bytes into one buffer (one chunk is kept as is, without a copy).
async fn read_whole(mut body: crate::storage::ByteStream, size: u64) -> Result<Bytes, ApiError> {
    let failed = |e: std::io::Error| {
        tracing::error!(error = %e, "blob store failed while reading a /media/ object");
        ApiError::Internal
    };
    let Some(first) = body.next().await.transpose().map_err(failed)? else {
        return Ok(Bytes::new());
    };
    if first.len() as u64 >= size {
        return Ok(first);
    }
    let mut all = bytes::BytesMut::with_capacity(size as usize);
    all.extend_from_slice(&first);
    while let Some(chunk) = body.next().await.transpose().map_err(failed)? {
        all.extend_from_slice(&chunk);
    }
    Ok(all.freeze())
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
        // An unreachable store is a 503 with retry-after (edges retry), not a 500.
        e => e.into(),
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
