//! `GET /api/v1/tracks/{id}/stream`: a short-lived signed URL for a player, on the CDN when one
//! is enabled, else on Veza's own `/media/`. HLS URLs carry a directory token for the track's
//! `hls/` folder in the path, so the relative URIs in its playlists stay signed.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::cache::{OwnerKey, StreamKey, mostly_fresh};
use crate::clock::now;
use crate::config::CdnProvider;
use crate::error::ApiError;
use crate::http::api::openapi::ErrorEnvelope;
use crate::http::auth::{Principal, viewer};
use crate::http::filters::{client_ip, with_state};
use crate::http::route;
use crate::library::{Status, TrackId, Visibility, store};
use crate::signing::{SignRequest, SignedUrl};
use crate::state::AppState;

/// Query string of the stream route.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// `hls` or `original`; default: HLS when the track has it, else the original.
    pub format: Option<String>,
    /// `1` (or `true`): answer 302 to the URL instead of JSON.
    pub redirect: Option<String>,
}

/// A signed stream URL.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamUrl {
    /// Give this to the player: the HLS master playlist or the original file.
    pub url: String,
    /// When the URL stops working, Unix seconds; ask again after that.
    pub expires_at: u64,
    /// Which signer made it: `bunny`, `s3`, `local`, `cloudfront`, `nginx`, `cloudflare`.
    pub provider: String,
    /// True when the configured provider failed and a fallback signed instead.
    pub fallback: bool,
}

impl From<SignedUrl> for StreamUrl {
    fn from(s: SignedUrl) -> Self {
        StreamUrl {
            url: s.url,
            expires_at: s.expires_at,
            provider: s.provider.as_str().to_owned(),
            fallback: s.fallback,
        }
    }
}

/// The stream route.
pub(crate) fn routes(s: &AppState) -> BoxedFilter<(Response,)> {
    route(
        "GET",
        "/api/v1/tracks/{id}/stream",
        warp::path!("api" / "v1" / "tracks" / TrackId / "stream")
            .and(warp::get())
            .and(viewer(s))
            .and(client_ip())
            .and(with_state(s))
            .and(warp::query::raw().or(warp::any().map(String::new)).unify())
            .and_then(stream),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Hls,
    Original,
}

fn bad_query(message: String) -> Rejection {
    warp::reject::custom(ApiError::BadRequest {
        code: "invalid_query",
        message,
    })
}

/// A signed URL to play the track: public tracks anonymously (rate-limited per IP), unlisted
/// ones with the id, private ones with a session or token.
#[utoipa::path(get, path = "/api/v1/tracks/{id}/stream", tag = "tracks",
    params(("id" = String, Path, description = "Track id"), StreamParams),
    responses((status = 200, body = StreamUrl),
              (status = 302, description = "With redirect=1: to the signed URL",
               headers(("location" = String, description = "The signed URL"))),
              (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
              (status = 404, description = "No such track, or private and the caller is anonymous", body = ErrorEnvelope),
              (status = 409, description = "format=hls but the track is not packaged yet (code hls_not_ready)", body = ErrorEnvelope),
              (status = 429, description = "Anonymous rate limit (stream.rate_limit_per_min per IP); see retry-after", body = ErrorEnvelope),
              (status = 451, description = "Taken down (code taken_down)", body = ErrorEnvelope),
              (status = 503, description = "No signing provider could sign", body = ErrorEnvelope)))]
async fn stream(
    id: TrackId,
    who: Option<Principal>,
    ip: IpAddr,
    s: AppState,
    raw: String,
) -> Result<Response, Rejection> {
    if who.is_none() {
        s.stream_limit
            .check(&crate::ratelimit::ip_key(ip))
            .map_err(|retry_after_secs| {
                warp::reject::custom(ApiError::RateLimited { retry_after_secs })
            })?;
    }
    let p: StreamParams = serde_urlencoded::from_str(&raw)
        .map_err(|e| warp::reject::custom(ApiError::InvalidQuery(format!("invalid query: {e}"))))?;
    let format = match p.format.as_deref() {
        None | Some("") => None,
        Some("hls") => Some(Format::Hls),
        Some("original") => Some(Format::Original),
        Some(other) => {
            return Err(bad_query(format!(
                "format: {other:?} is not hls or original"
            )));
        }
    };
    let redirect = match p.redirect.as_deref() {
        None | Some("" | "0" | "false") => false,
        Some("1" | "true") => true,
        Some(other) => return Err(bad_query(format!("redirect: {other:?} is not 1 or 0"))),
    };

    let owners = store::owners_cached(&s.db, &s.caches, OwnerKey::Track(id.as_str().to_owned()))
        .await
        .map_err(ApiError::from)?;
    // Private tracks do not exist for anonymous callers, as in GET /api/v1/tracks/{id}.
    let t = owners
        .first()
        .filter(|t| who.is_some() || t.visibility != Visibility::Private)
        .ok_or_else(|| warp::reject::custom(ApiError::NotFound))?;
    if t.status == Status::TakenDown {
        return Err(warp::reject::custom(ApiError::TakenDown));
    }
    let hls = match (format, &t.hls_key) {
        (Some(Format::Hls) | None, Some(key)) => Some(key.clone()),
        (Some(Format::Hls), None) => {
            return Err(warp::reject::custom(ApiError::Conflict {
                code: "hls_not_ready",
                message: "this track has no HLS renditions yet; ask for format=original, or retry once it is packaged".into(),
            }));
        }
        (Some(Format::Original) | None, _) => None,
    };

    let cfg = &s.config.cdn;
    let issued_at = u64::try_from(now()).unwrap_or_default();
    let mut req = SignRequest::new(String::new(), issued_at);
    // Binding is a Bunny zone setting; the local fallback then binds the same viewer.
    if s.cdn.is_enabled() && cfg.provider == CdnProvider::Bunny && cfg.bunny.ip_binding {
        req.ip = Some(ip);
    }
    // The same URL for every viewer of a track while it is young: fewer signatures, and
    // browsers and edges see one URL instead of one per request.
    let cache_key = StreamKey {
        track: t.id.clone(),
        hls: hls.is_some(),
        ip: req.ip,
    };
    let cached = s.caches.stream_url.get_if(&cache_key, |(u, signed_at)| {
        mostly_fresh(*signed_at, u.expires_at, issued_at)
    });
    let signed = match cached {
        Some((u, _)) => u,
        None => {
            let generation = s.caches.stream_url.generation();
            let signed = match hls {
                Some(master) => {
                    req.path = format!("/{master}");
                    // The folder of the master playlist: every media playlist and segment is
                    // below it.
                    req.token_path = Some(req.path[..=req.path.rfind('/').unwrap_or(0)].to_owned());
                    req.path_form = Some(true);
                    s.cdn.sign_directory(&req)
                }
                None => {
                    req.path = format!("/{}", t.original_key);
                    s.cdn.sign(&req)
                }
            }
            .map_err(ApiError::from)?;
            // A fallback URL is not kept: the primary provider may be back for the next viewer.
            if !signed.fallback {
                s.caches
                    .stream_url
                    .insert(cache_key, (signed.clone(), issued_at), generation);
            }
            signed
        }
    };

    let no_store = HeaderValue::from_static("private, no-store");
    if redirect {
        let location = HeaderValue::from_str(&signed.url).map_err(|_| {
            tracing::error!("a signed URL is not a valid header value");
            warp::reject::custom(ApiError::Internal)
        })?;
        let mut resp = Response::new("".into());
        *resp.status_mut() = StatusCode::FOUND;
        resp.headers_mut().insert(header::LOCATION, location);
        resp.headers_mut().insert(header::CACHE_CONTROL, no_store);
        return Ok(resp);
    }
    let mut resp = warp::reply::json(&StreamUrl::from(signed)).into_response();
    // Signed for this caller, and it expires: no shared cache may keep it.
    resp.headers_mut().insert(header::CACHE_CONTROL, no_store);
    Ok(resp)
}
