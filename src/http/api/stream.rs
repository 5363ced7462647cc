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

use crate::http::auth::{Principal, viewer, viewer_of};
use crate::http::error::ApiError;
use crate::http::error::ErrorEnvelope;
use crate::http::filters::{client_ip, with_state};
use crate::http::route;
use crate::http::state::AppState;
use crate::library::TrackId;
use crate::signing::SignedUrl;
use crate::tracks::StreamFormat;

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
    /// Signed URL of the waveform peaks (audiowaveform JSON v2); absent before analysis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peaks_url: Option<String>,
}

impl From<SignedUrl> for StreamUrl {
    fn from(s: SignedUrl) -> Self {
        StreamUrl {
            url: s.url,
            expires_at: s.expires_at,
            provider: s.provider.as_str().to_owned(),
            fallback: s.fallback,
            peaks_url: None,
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
            .and(crate::http::filters::raw_query())
            .and_then(stream),
    )
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
        Some("hls") => Some(StreamFormat::Hls),
        Some("original") => Some(StreamFormat::Original),
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

    let signed = s
        .tracks
        .stream_url(viewer_of(&who), &id, format, ip)
        .await
        .map_err(ApiError::from)?;

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
    let mut body = StreamUrl::from(signed);
    body.peaks_url = s
        .tracks
        .peaks_url(viewer_of(&who), &id, ip)
        .await
        .map_err(ApiError::from)?;
    let mut resp = warp::reply::json(&body).into_response();
    // Signed for this caller, and it expires: no shared cache may keep it.
    resp.headers_mut().insert(header::CACHE_CONTROL, no_store);
    Ok(resp)
}
