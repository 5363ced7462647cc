//! `GET|HEAD /media/{object path}`: the origin the CDN pulls from (and players, when no CDN is
//! set). Each object should leave here about once per edge, so cache headers and validators
//! matter more than raw speed; bodies are streamed from the blob store, never read whole.
//!
//! A request passes three gates, in this order, so that nothing about a track leaks to a
//! caller without credentials:
//!
//! 1. Who asks: a token of the configured scheme in the URL (Veza's `vzt.…` path segment, or a
//!    Bunny token when `cdn.bunny.verify_tokens`), or the CDN's origin-secret header. Else 403.
//! 2. Which tracks own the object: by id for `tracks/{id}/…`, by `original_key` for
//!    `originals/…`, by `cover_key` for `covers/…` (a cover may be shared). None: 404.
//! 3. May one of them be served: taken down is 451 (only when every owner is), private needs a
//!    token scoped to that track (or the CDN, which checked the viewer's token itself).

use std::net::IpAddr;

use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::path::Tail;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::clock::now;
use crate::http::error::ApiError;
use crate::http::filters::{client_ip, with_state};
use crate::http::route;
use crate::http::state::AppState;
use crate::library::{OwnerKey, Status, TrackAccess, TrackId};
use crate::signing::bunny::{self, BunnyVerifyError};
use crate::signing::local::LocalVerifyError;
use crate::storage::{BlobKey, ByteRange, ObjectMeta, StoreError};
use crate::tracks::{Purpose, Verdict, Viewer, may_view};

/// The request header a CDN edge rule adds to origin pulls; its value is
/// `cdn.bunny.origin_secret`.
pub const ORIGIN_SECRET_HEADER: &str = "x-veza-origin-secret";

/// Route template for metrics and logs (never the raw path: it may carry a token).
const TEMPLATE: &str = "/media/{path}";

/// Segments never change (content-addressed names), so edges and players keep them.
const CC_SEGMENT: &str = "public, max-age=86400, immutable";
/// Playlists are rewritten when a track is re-packaged; a minute bounds staleness.
const CC_PLAYLIST: &str = "public, max-age=60";
/// Originals and covers are content-addressed too; the ETag is their SHA-256.
const CC_LONG: &str = "public, max-age=31536000";
/// Originals and covers only private tracks own: the viewer's cache, never a shared one.
const CC_PRIVATE: &str = "private, max-age=3600";
/// Errors must not stick in an edge cache: a 403 for one viewer is not a 403 for the next.
const CC_ERROR: &str = "no-store";

/// Both methods on one handler; HEAD answers the same headers without opening a body.
pub(crate) fn routes(s: &AppState) -> BoxedFilter<(Response,)> {
    // Path before method: a GET elsewhere must stay a 404, not become this route's 405.
    let media = || warp::path("media").and(warp::path::tail());
    let get = route(
        "GET",
        TEMPLATE,
        media().and(warp::get()).and(request(s)).and_then(handle),
    );
    let head = route(
        "HEAD",
        TEMPLATE,
        media().and(warp::head()).and(request(s)).and_then(handle),
    );
    get.or(head).unify().boxed()
}

/// What the handler needs from the request.
struct MediaRequest {
    head: bool,
    tail: String,
    query: String,
    headers: HeaderMap,
    ip: IpAddr,
}

/// The rest of the request, once the path and method matched (`tail` comes first).
fn request(
    s: &AppState,
) -> impl Filter<Extract = (MediaRequest, AppState), Error = std::convert::Infallible> + Clone + use<>
{
    warp::method()
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(client_ip())
        .map(
            |m: warp::http::Method, query: String, headers: HeaderMap, ip: IpAddr| MediaRequest {
                head: m == warp::http::Method::HEAD,
                tail: String::new(),
                query,
                headers,
                ip,
            },
        )
        .and(with_state(s))
}

async fn handle(tail: Tail, mut req: MediaRequest, s: AppState) -> Result<Response, Rejection> {
    req.tail = tail.as_str().to_owned();
    Ok(match serve(&req, &s).await {
        Ok(resp) => resp,
        Err((err, tags)) => {
            let mut resp = err.into_response();
            let h = resp.headers_mut();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static(CC_ERROR));
            if let Some(tags) = tags {
                h.insert("cdn-tag", tags);
            }
            resp
        }
    })
}

/// An error, with the `CDN-Tag` of the tracks when they are known (a 451 is worth purging).
type Failure = (ApiError, Option<HeaderValue>);

async fn serve(req: &MediaRequest, s: &AppState) -> Result<Response, Failure> {
    let target = split_target(&req.tail).ok_or((ApiError::NotFound, None))?;
    let object = Object::parse(&target.path).ok_or((ApiError::NotFound, None))?;
    let access = authenticate(req, s, &target).map_err(|e| (e, None))?;

    let owners = s
        .tracks
        .owners(object.owner.clone())
        .await
        .map_err(|e| (ApiError::from(e), None))?;
    let tags = cdn_tags(&owners);
    let Some(chosen) = choose(&owners, &access, &object) else {
        return Err((verdict(&owners), tags));
    };
    let content_type = object.content_type(&chosen.content_type);
    // Bytes no anonymous viewer may play must not sit in shared caches for a year.
    let private = !owners.iter().any(|o| {
        may_view(Viewer::Anonymous, o.visibility, o.status, Purpose::Play) == Verdict::Allowed
    });
    let cache_control = object.cache_control(private);
    send(req, s, &object, content_type, cache_control, tags.clone())
        .await
        .map_err(|e| (e, tags))
}

// ---------------------------------------------------------------------------------------------
// The request target: an optional token segment, then the object path.

/// Where the token travels, if in the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenSegment {
    /// `vzt.{expires}.{scope}.{mac}`: Veza's own.
    Local,
    /// `bcdn_token=…&expires=…`: Bunny's path form.
    Bunny,
    /// None in the path (a Bunny query-form token may be in the query).
    None,
}

/// The parts of `/media/{tail}`.
#[derive(Debug)]
struct Target {
    segment: TokenSegment,
    /// Decoded object path without the leading `/`, a valid [`BlobKey`].
    path: String,
}

fn split_target(tail: &str) -> Option<Target> {
    let (segment, wire) = if tail.starts_with("vzt.") {
        (TokenSegment::Local, tail.split_once('/')?.1)
    } else if tail.starts_with("bcdn_token=") {
        (TokenSegment::Bunny, tail.split_once('/')?.1)
    } else {
        (TokenSegment::None, tail)
    };
    let path = percent_encoding::percent_decode_str(wire)
        .decode_utf8()
        .ok()?
        .into_owned();
    BlobKey::parse(&path).ok()?;
    Some(Target { segment, path })
}

// ---------------------------------------------------------------------------------------------
// Gate 1: who asks.

/// How a request proved it may read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Access {
    /// The CDN's origin secret: the edge checked the viewer's token itself.
    Edge,
    /// A signed URL whose token covers `scope`: the file itself, or a directory ending in `/`.
    Token {
        /// `/…` as signed.
        scope: String,
    },
}

fn denied(code: &'static str, message: &str) -> ApiError {
    ApiError::Denied {
        code,
        message: message.to_owned(),
    }
}

fn authenticate(req: &MediaRequest, s: &AppState, target: &Target) -> Result<Access, ApiError> {
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

fn expired() -> ApiError {
    denied(
        "token_expired",
        "this signed URL has expired; ask the stream API for a new one",
    )
}

fn invalid() -> ApiError {
    denied(
        "token_invalid",
        "this signed URL is not valid for this object (tampered, outside its directory, or for another viewer)",
    )
}

// ---------------------------------------------------------------------------------------------
// Gate 2: which tracks own the object.

/// What a path names; decides the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `master.m3u8` or `{kbps}k.m3u8`.
    Playlist,
    /// `seg/{sha256}.mp4` (init) or `seg/{sha256}.m4s`.
    Segment,
    /// `originals/ab/cd/{sha256}.{ext}`.
    Original,
    /// `covers/ab/cd/{sha256}.{ext}`.
    Cover,
}

/// A recognised object path.
#[derive(Debug, Clone)]
struct Object {
    key: BlobKey,
    kind: Kind,
    owner: OwnerKey,
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Object {
    /// The shapes the packager and ingestion write; anything else is a 404 before any lookup.
    fn parse(path: &str) -> Option<Object> {
        let key = BlobKey::parse(path).ok()?;
        let parts: Vec<&str> = path.split('/').collect();
        let (kind, owner) = match parts.as_slice() {
            ["tracks", id, "hls", file] => {
                let playlist = *file == "master.m3u8"
                    || file.strip_suffix("k.m3u8").is_some_and(|k| {
                        (1..=4).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_digit())
                    });
                playlist.then_some((Kind::Playlist, canonical_id(id)?))?
            }
            ["tracks", id, "hls", "seg", file] => {
                let (sha, ext) = file.split_once('.')?;
                (is_sha256(sha) && matches!(ext, "mp4" | "m4s"))
                    .then_some((Kind::Segment, canonical_id(id)?))?
            }
            ["originals", ..] => {
                let owner = OwnerKey::Original {
                    sha256: key.content_hash()?.to_owned(),
                    key: path.to_owned(),
                };
                (parts.len() == 4).then_some((Kind::Original, owner))?
            }
            ["covers", ..] => {
                key.content_hash()?;
                (parts.len() == 4).then_some((Kind::Cover, OwnerKey::Cover(path.to_owned())))?
            }
            _ => return None,
        };
        Some(Object { key, kind, owner })
    }

    fn ext(&self) -> &str {
        let file = self.key.as_str().rsplit('/').next().unwrap_or_default();
        file.rsplit_once('.').map_or("", |(_, e)| e)
    }

    /// The MIME type; an original's comes from its track (ingestion probed the content).
    fn content_type(&self, track_type: &str) -> HeaderValue {
        let by_ext = match (self.kind, self.ext()) {
            (Kind::Playlist, _) => "application/vnd.apple.mpegurl",
            (Kind::Segment, _) => "audio/mp4",
            (Kind::Original, _) if !track_type.is_empty() => {
                return HeaderValue::from_str(track_type)
                    .unwrap_or(HeaderValue::from_static("application/octet-stream"));
            }
            (Kind::Original, "mp3") => "audio/mpeg",
            (Kind::Original, "flac") => "audio/flac",
            (Kind::Original, "ogg" | "opus" | "oga") => "audio/ogg",
            (Kind::Original, "m4a" | "mp4" | "aac") => "audio/mp4",
            (Kind::Original, "wav") => "audio/wav",
            (Kind::Cover, "png") => "image/png",
            (Kind::Cover, "webp") => "image/webp",
            (Kind::Cover, "gif") => "image/gif",
            (Kind::Cover, _) => "image/jpeg",
            _ => "application/octet-stream",
        };
        HeaderValue::from_static(by_ext)
    }

    fn cache_control(&self, private: bool) -> HeaderValue {
        // A year in shared caches outlives any visibility change; playlists (a minute) and
        // segments (a day, behind tokens) keep the CDN useful for private listeners.
        HeaderValue::from_static(match self.kind {
            Kind::Original | Kind::Cover if private => CC_PRIVATE,
            Kind::Playlist => CC_PLAYLIST,
            Kind::Segment => CC_SEGMENT,
            Kind::Original | Kind::Cover => CC_LONG,
        })
    }
}

/// Only the canonical (lower-case, hyphenated) id: it is the one in blob keys and CDN tags.
fn canonical_id(id: &str) -> Option<OwnerKey> {
    let parsed: TrackId = id.parse().ok()?;
    (parsed.as_str() == id).then(|| OwnerKey::Track(id.to_owned()))
}

/// `track-{id}` for each owner, comma-separated: a `CDN-Tag` an operator can purge by by
/// hand (the takedown job purges by URL).
fn cdn_tags(owners: &[TrackAccess]) -> Option<HeaderValue> {
    if owners.is_empty() {
        return None;
    }
    let tags: Vec<String> = owners.iter().map(|o| format!("track-{}", o.id)).collect();
    HeaderValue::from_str(&tags.join(",")).ok()
}

// ---------------------------------------------------------------------------------------------
// Gate 3: may one of them be served.

/// The first owner this request may read the object through.
fn choose<'a>(
    owners: &'a [TrackAccess],
    access: &Access,
    object: &Object,
) -> Option<&'a TrackAccess> {
    owners.iter().find(|o| {
        let viewer = Viewer::Signed {
            grant: private_ok(access, object, &o.id),
        };
        may_view(viewer, o.visibility, o.status, Purpose::Play) == Verdict::Allowed
    })
}

/// A private track's objects: the CDN (it checked the viewer), or a token scoped to this very
/// object or to this track's own folder, never a broader directory token.
fn private_ok(access: &Access, object: &Object, id: &str) -> bool {
    match access {
        Access::Edge => true,
        Access::Token { scope } => {
            let path = format!("/{}", object.key.as_str());
            *scope == path
                || (matches!(object.owner, OwnerKey::Track(_))
                    && scope.starts_with(&format!("/tracks/{id}/")))
        }
    }
}

/// Why no owner may be served: none (404), all taken down (451), else private (403).
fn verdict(owners: &[TrackAccess]) -> ApiError {
    if owners.is_empty() {
        ApiError::NotFound
    } else if owners.iter().all(|o| o.status == Status::TakenDown) {
        ApiError::TakenDown
    } else {
        denied(
            "private_track",
            "this object belongs to a private track; its signed URL must come from the stream API",
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Serving: validators, ranges, streaming.

async fn send(
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
async fn head(s: &AppState, object: &Object) -> Result<ObjectMeta, ApiError> {
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

fn set_etag(out: &mut Response, etag: &str) {
    if let Ok(v) = HeaderValue::from_str(etag) {
        out.headers_mut().insert(header::ETAG, v);
    }
}

/// Status, `Content-Length` and (for 206) `Content-Range` of `start..=end` of `size` bytes.
fn set_body_headers(out: &mut Response, partial: bool, start: u64, end: u64, size: u64) {
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

fn store_error(e: StoreError) -> ApiError {
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
fn parse_range(v: &str) -> Option<ByteRange> {
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
fn none_match_hits(header: &str, etag: &str) -> bool {
    let ours = etag.trim_start_matches("W/");
    header.trim() == "*"
        || header
            .split(',')
            .any(|t| t.trim().trim_start_matches("W/") == ours)
}

/// `If-Range` with an entity tag: strong comparison (a weak tag never matches); a date never
/// matches here since no `Last-Modified` is sent.
fn strong_match(header: &str, etag: &str) -> bool {
    let h = header.trim();
    h.starts_with('"') && !etag.starts_with("W/") && h == etag
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::library::Visibility;

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

        /// Arbitrary `/media/` tails never panic the target and object parsers.
        #[test]
        fn any_media_tail_parses_safely(raw in proptest::collection::vec(any::<u8>(), 0..120)) {
            let tail = String::from_utf8_lossy(&raw);
            if let Some(t) = split_target(&tail) {
                let _ = Object::parse(&t.path);
            }
        }
    }

    const SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const ID: &str = "0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b";

    #[test]
    fn object_paths_map_to_their_owner_and_kind() {
        let cases = [
            (format!("tracks/{ID}/hls/master.m3u8"), Kind::Playlist),
            (format!("tracks/{ID}/hls/128k.m3u8"), Kind::Playlist),
            (format!("tracks/{ID}/hls/seg/{SHA}.mp4"), Kind::Segment),
            (format!("tracks/{ID}/hls/seg/{SHA}.m4s"), Kind::Segment),
            (format!("originals/e3/b0/{SHA}.flac"), Kind::Original),
            (format!("covers/e3/b0/{SHA}.jpg"), Kind::Cover),
        ];
        for (p, kind) in cases {
            let o = Object::parse(&p).unwrap_or_else(|| panic!("{p}"));
            assert_eq!(o.kind, kind, "{p}");
        }
        assert_eq!(
            Object::parse(&format!("originals/e3/b0/{SHA}.flac"))
                .unwrap()
                .owner,
            OwnerKey::Original {
                sha256: SHA.into(),
                key: format!("originals/e3/b0/{SHA}.flac")
            }
        );
        for bad in [
            format!("tracks/{ID}/hls/x.m3u8"),
            format!("tracks/{ID}/hls/12345k.m3u8"),
            format!("tracks/{ID}/hls/seg/{SHA}.ts"),
            format!("tracks/{ID}/hls/seg/abc.m4s"),
            format!("tracks/{}/hls/master.m3u8", ID.to_uppercase()),
            "tracks/12/hls/master.m3u8".into(),
            format!("tracks/{ID}/original.flac"),
            format!("originals/e3/b1/{SHA}.flac"),
            format!("originals/x/e3/b0/{SHA}.flac"),
            format!("covers/{SHA}.jpg"),
            "signing.key".into(),
            "veza.db".into(),
        ] {
            assert!(Object::parse(&bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn targets_split_off_the_token_and_refuse_traversal() {
        let t = split_target(&format!("vzt.1.d3.abc/tracks/{ID}/hls/master.m3u8")).unwrap();
        assert_eq!(t.segment, TokenSegment::Local);
        assert_eq!(t.path, format!("tracks/{ID}/hls/master.m3u8"));
        let t = split_target("bcdn_token=x&token_path=%2Ftracks%2F&expires=1/covers/a").unwrap();
        assert_eq!(
            (t.segment, t.path.as_str()),
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

    fn owner(id: &str, visibility: Visibility, status: Status) -> TrackAccess {
        TrackAccess {
            id: id.into(),
            visibility,
            status,
            content_type: String::new(),
            original_key: String::new(),
            hls_key: None,
        }
    }

    #[test]
    fn shared_covers_serve_while_any_owner_may() {
        let cover = Object::parse(&format!("covers/e3/b0/{SHA}.jpg")).unwrap();
        let token = Access::Token {
            scope: "/tracks/x/hls/".into(),
        };
        let down = owner("a", Visibility::Public, Status::TakenDown);
        let public = owner("b", Visibility::Public, Status::Ready);
        let private = owner("c", Visibility::Private, Status::Ready);
        assert_eq!(
            choose(&[down.clone(), public.clone()], &token, &cover).map(|o| o.id.as_str()),
            Some("b")
        );
        assert!(choose(&[down.clone(), down.clone()], &token, &cover).is_none());
        assert!(matches!(
            verdict(&[down.clone(), down.clone()]),
            ApiError::TakenDown
        ));
        assert!(choose(&[down.clone(), private.clone()], &token, &cover).is_none());
        assert!(matches!(
            verdict(&[down, private.clone()]),
            ApiError::Denied {
                code: "private_track",
                ..
            }
        ));
        assert!(choose(std::slice::from_ref(&private), &Access::Edge, &cover).is_some());
        let exact = Access::Token {
            scope: format!("/{}", cover.key.as_str()),
        };
        assert!(choose(&[private], &exact, &cover).is_some());
        assert!(matches!(verdict(&[]), ApiError::NotFound));
    }

    #[test]
    fn a_private_track_needs_a_token_scoped_to_it() {
        let seg = Object::parse(&format!("tracks/{ID}/hls/seg/{SHA}.m4s")).unwrap();
        let own = Access::Token {
            scope: format!("/tracks/{ID}/hls/"),
        };
        let broad = Access::Token {
            scope: "/tracks/".into(),
        };
        assert!(private_ok(&own, &seg, ID));
        assert!(!private_ok(&broad, &seg, ID));
        assert!(private_ok(&Access::Edge, &seg, ID));
    }
}
