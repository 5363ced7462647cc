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
use warp::http::{HeaderMap, HeaderValue, header};
use warp::path::Tail;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::http::error::ApiError;
use crate::http::filters::{client_ip, with_state};
use crate::http::route;
use crate::http::state::AppState;
use crate::library::{OwnerKey, TrackAccess};
use crate::tracks::{Purpose, Verdict, Viewer, may_view};

mod fast;
mod object;
mod send;
mod token;

pub use fast::FastMedia;

use object::*;
use send::*;
use token::*;

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
    Ok(respond(&req, &s).await)
}

/// The answer to one `/media/` request, errors included (with headers no edge may cache).
async fn respond(req: &MediaRequest, s: &AppState) -> Response {
    match serve(req, s).await {
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
    }
}

/// An error, with the `CDN-Tag` of the tracks when they are known (a 451 is worth purging).
type Failure = (ApiError, Option<HeaderValue>);

async fn serve(req: &MediaRequest, s: &AppState) -> Result<Response, Failure> {
    let target = split_target(&req.tail).ok_or((ApiError::NotFound, None))?;
    let object = Object::of(target.key.clone()).ok_or((ApiError::NotFound, None))?;
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

/// Sends one object the track service already allowed (a proxied Subsonic stream): the same
/// ranges, validators and content types as `/media/`, with a private cache header, and no
/// token or credential of the caller's passed on anywhere.
pub(crate) async fn send_object(
    s: &AppState,
    key: &crate::storage::BlobKey,
    headers: &HeaderMap,
    head: bool,
    ip: IpAddr,
) -> Result<Response, ApiError> {
    let object = Object::parse(key.as_str()).ok_or(ApiError::NotFound)?;
    let owners = s.tracks.owners(object.owner.clone()).await?;
    let track_type = owners.first().map_or("", |o| o.content_type.as_str());
    let req = MediaRequest {
        head,
        tail: String::new(),
        query: String::new(),
        headers: headers.clone(),
        ip,
    };
    let content_type = object.content_type(track_type);
    send(
        &req,
        s,
        &object,
        content_type,
        HeaderValue::from_static(CC_PRIVATE),
        None,
    )
    .await
}

// Gate 3: may one of them be served.

/// The first owner this request may read the object through.
fn choose<'a>(
    owners: &'a [TrackAccess],
    access: &Access,
    object: &Object,
) -> Option<&'a TrackAccess> {
    owners.iter().find(|o| {
        let viewer = Viewer::Signed {
            grant: private_ok(access, object, o.id.as_str()),
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
    } else if owners.iter().all(|o| {
        // Whatever token the request holds, a taken-down track plays for nobody.
        let any = Viewer::Signed { grant: true };
        may_view(any, o.visibility, o.status, Purpose::Play) == Verdict::TakenDown
    }) {
        ApiError::TakenDown
    } else {
        denied(
            "private_track",
            "this object belongs to a private track; its signed URL must come from the stream API",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::{Status, Visibility};
    use crate::storage::BlobKey;

    const SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const ID: &str = "0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b";

    /// Owner `n` of a shared cover.
    fn owner(n: char, visibility: Visibility, status: Status) -> TrackAccess {
        TrackAccess {
            id: format!("0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a0{n}")
                .parse()
                .unwrap(),
            visibility,
            status,
            content_type: String::new(),
            original_key: BlobKey::parse(&format!("originals/e3/b0/{SHA}.flac")).unwrap(),
            hls_key: None,
            cover_key: None,
            peaks_key: None,
        }
    }

    #[test]
    fn shared_covers_serve_while_any_owner_may() {
        let cover = Object::parse(&format!("covers/e3/b0/{SHA}.jpg")).unwrap();
        let token = Access::Token {
            scope: "/tracks/x/hls/".into(),
        };
        let down = owner('a', Visibility::Public, Status::TakenDown);
        let public = owner('b', Visibility::Public, Status::Ready);
        let private = owner('c', Visibility::Private, Status::Ready);
        assert_eq!(
            choose(&[down.clone(), public.clone()], &token, &cover).map(|o| &o.id),
            Some(&public.id)
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
