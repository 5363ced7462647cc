//! What the dashboard reads beyond the resources: `GET /api/v1/stats` (the overview and its
//! plots), `GET /api/v1/settings` (the effective config, secrets masked) and the public
//! `GET /api/v1/oembed` for CMSs that embed by URL.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::accounts::Role;
use crate::clock::now;
use crate::http::auth::{Principal, require};
use crate::http::dashboard::embeddable;
use crate::http::error::ApiError;
use crate::http::error::ErrorEnvelope;
use crate::http::filters::with_state;
use crate::http::route;
use crate::http::state::AppState;
use crate::jobs::HlsAvailability;
use crate::library::TrackId;
use crate::metrics::stats::{RouteVitals, STEP_SECS, Sample, per_route};
use crate::metrics::{BLOB_AREAS, TRACK_STATUSES};

/// Query string of `GET /api/v1/stats`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    /// How far back: `30m`, `6h`, `24h` (default and most).
    pub window: Option<String>,
}

/// The overview: what the server is and holds now, and per-minute samples.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsResponse {
    /// Crate version.
    pub version: String,
    /// Git commit of the build.
    pub commit: String,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// Seconds per sample.
    pub step_secs: i64,
    /// Whether HLS packaging can run, and why not.
    pub hls: HlsAvailability,
    /// URL signing.
    pub cdn: CdnInfo,
    /// Blob store use by area, from the periodic scan.
    pub storage: Vec<AreaUsage>,
    /// When the store scan behind `storage` finished, Unix seconds (`metrics.store_scan_secs`).
    pub storage_scanned_at: Option<i64>,
    /// Tracks by status.
    pub tracks: BTreeMap<String, i64>,
    /// The job queue.
    pub jobs: JobCounts,
    /// Oldest first; the last one is the minute in progress (`secs` < 60).
    pub samples: Vec<Sample>,
    /// Real-user web vitals per route since start, busiest first.
    pub rum_routes: Vec<RouteVitals>,
}

/// How stream URLs are signed.
#[derive(Debug, Serialize, ToSchema)]
pub struct CdnInfo {
    /// `cdn.enabled`.
    pub enabled: bool,
    /// `cdn.provider`.
    pub provider: String,
    /// `cdn.base_url`, when set.
    pub base_url: Option<String>,
}

/// One area of the blob store.
#[derive(Debug, Serialize, ToSchema)]
pub struct AreaUsage {
    /// `originals`, `covers`, `hls` or `other`.
    pub area: String,
    /// Bytes stored.
    pub bytes: i64,
    /// Objects stored.
    pub objects: i64,
}

/// Jobs waiting.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobCounts {
    /// Queued, or failed and waiting to retry.
    pub queued: i64,
    /// Out of attempts, waiting for a manual retry.
    pub dead: i64,
}

/// The effective configuration.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsResponse {
    /// TOML, every set secret shown as `"****"`.
    pub text: String,
}

/// Query string of `GET /api/v1/oembed`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OembedParams {
    /// A track's page or embed URL on this server (`…/embed/{id}` or `…/tracks/{id}`).
    pub url: String,
    /// Only `json`.
    pub format: Option<String>,
    /// Widest iframe the consumer accepts.
    pub maxwidth: Option<u32>,
    /// Tallest iframe the consumer accepts.
    pub maxheight: Option<u32>,
}

/// oEmbed 1.0 "rich" response.
#[derive(Debug, Serialize, ToSchema)]
pub struct Oembed {
    /// Always `rich`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Always `1.0`.
    pub version: String,
    /// The track's title.
    pub title: String,
    /// The artist.
    pub author_name: String,
    /// `Veza`.
    pub provider_name: String,
    /// This server.
    pub provider_url: String,
    /// The `<iframe>` to paste.
    pub html: String,
    /// Iframe width in pixels.
    pub width: u32,
    /// Iframe height in pixels.
    pub height: u32,
    /// Cover art, when the track has one.
    pub thumbnail_url: Option<String>,
}

/// Stats, settings and oEmbed.
pub(crate) fn routes(s: &AppState) -> BoxedFilter<(Response,)> {
    let stats = route(
        "GET",
        "/api/v1/stats",
        warp::path!("api" / "v1" / "stats")
            .and(warp::get())
            .and(require(s, Role::Editor))
            .and(with_state(s))
            .and(crate::http::filters::raw_query())
            .and_then(stats),
    );
    let settings = route(
        "GET",
        "/api/v1/settings",
        warp::path!("api" / "v1" / "settings")
            .and(warp::get())
            .and(require(s, Role::Admin))
            .and(with_state(s))
            .and_then(settings),
    );
    let oembed = route(
        "GET",
        "/api/v1/oembed",
        warp::path!("api" / "v1" / "oembed")
            .and(warp::get())
            .and(with_state(s))
            .and(crate::http::filters::raw_query())
            .and_then(oembed),
    );
    stats.or(settings).unify().or(oembed).unify().boxed()
}

fn invalid_query(message: String) -> Rejection {
    warp::reject::custom(ApiError::BadRequest {
        code: "invalid_query",
        message,
    })
}

fn query<T: serde::de::DeserializeOwned>(raw: &str) -> Result<T, Rejection> {
    serde_urlencoded::from_str(raw).map_err(|e| invalid_query(e.to_string()))
}

/// `30m`, `6h`, `24h` → seconds (1 minute to 24 hours).
fn parse_window(w: &str) -> Result<i64, String> {
    // Split on the last character, not the last byte: the window is client text.
    let parsed = if let Some(n) = w.strip_suffix('m') {
        n.parse::<i64>().ok().map(|n| n.saturating_mul(60))
    } else if let Some(n) = w.strip_suffix('h') {
        n.parse::<i64>().ok().map(|n| n.saturating_mul(3600))
    } else {
        None
    };
    let secs = match parsed {
        Some(secs) => secs,
        None => {
            return Err(format!(
                "window {w:?}: use minutes or hours such as 30m or 24h"
            ));
        }
    };
    if !(60..=24 * 3600).contains(&secs) {
        return Err(format!("window {w:?} is outside 1m..=24h"));
    }
    Ok(secs)
}

/// The overview and per-minute samples of the last `window` (editors and admins).
#[utoipa::path(get, path = "/api/v1/stats", tag = "meta", params(StatsParams),
    security(("session" = []), ("bearer" = [])),
    responses((status = 200, body = StatsResponse), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope)))]
async fn stats(_who: Principal, s: AppState, raw: String) -> Result<Response, Rejection> {
    let p: StatsParams = query(&raw)?;
    let window = parse_window(p.window.as_deref().unwrap_or("24h")).map_err(invalid_query)?;
    let m = &s.metrics;
    let storage = BLOB_AREAS
        .iter()
        .map(|a| AreaUsage {
            area: (*a).to_owned(),
            bytes: m.blob_bytes.with_label_values(&[a]).get(),
            objects: m.blob_objects.with_label_values(&[a]).get(),
        })
        .collect();
    let tracks = TRACK_STATUSES
        .iter()
        .map(|st| ((*st).to_owned(), m.tracks.with_label_values(&[st]).get()))
        .collect();
    let cdn = &s.config.cdn;
    let body = StatsResponse {
        version: crate::version::VERSION.to_owned(),
        commit: crate::version::COMMIT.to_owned(),
        uptime_secs: s.stats.uptime_secs(),
        step_secs: STEP_SECS,
        hls: s.jobs.hls(),
        cdn: CdnInfo {
            enabled: cdn.enabled,
            provider: cdn.provider.as_str().to_owned(),
            base_url: cdn.base_url.as_ref().map(|u| u.to_string()),
        },
        storage,
        storage_scanned_at: Some(m.blob_scan_timestamp.get() as i64).filter(|t| *t > 0),
        tracks,
        jobs: JobCounts {
            queued: m.jobs_queued.get(),
            dead: m.jobs_dead.get(),
        },
        samples: s.stats.window(m, now(), window),
        rum_routes: per_route(m),
    };
    Ok(warp::reply::json(&body).into_response())
}

/// The effective configuration, secrets masked (admins).
#[utoipa::path(get, path = "/api/v1/settings", tag = "meta",
    security(("session" = []), ("bearer" = [])),
    responses((status = 200, body = SettingsResponse), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope),
              (status = 503, description = "This process was given no effective configuration to show", body = ErrorEnvelope)))]
async fn settings(_who: Principal, s: AppState) -> Result<Response, Rejection> {
    let text = s.settings.get().cloned().ok_or_else(|| {
        warp::reject::custom(ApiError::Unavailable(
            "this process was given no effective configuration to show".into(),
        ))
    })?;
    Ok(warp::reply::json(&SettingsResponse { text }).into_response())
}

/// The track id in a URL of this server (`/embed/{id}` or `/tracks/{id}`).
fn track_in(url: &str, public: &url::Url) -> Option<TrackId> {
    let u = url::Url::parse(url).ok()?;
    if u.origin() != public.origin() {
        return None;
    }
    let mut parts = u.path_segments()?;
    match (parts.next(), parts.next(), parts.next()) {
        (Some("embed" | "tracks"), Some(id), None) => id.parse().ok(),
        _ => None,
    }
}

fn attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// oEmbed for a public or unlisted track's URL (anonymous), so CMSs can embed by URL.
#[utoipa::path(get, path = "/api/v1/oembed", tag = "tracks", params(OembedParams),
    responses((status = 200, body = Oembed), (status = 400, body = ErrorEnvelope),
              (status = 404, description = "Not a track URL of this server, or not embeddable", body = ErrorEnvelope)))]
async fn oembed(s: AppState, raw: String) -> Result<Response, Rejection> {
    let p: OembedParams = query(&raw)?;
    if p.format.as_deref().is_some_and(|f| f != "json") {
        return Err(invalid_query("format: only json is offered".into()));
    }
    let public = &s.config.server.public_url;
    let id = track_in(&p.url, public).ok_or_else(|| warp::reject::custom(ApiError::NotFound))?;
    let t = embeddable(&s, id).await?;
    let base = public.as_str().trim_end_matches('/');
    let width = p.maxwidth.unwrap_or(480).clamp(200, 1200);
    let height = p.maxheight.unwrap_or(120).clamp(80, 120);
    let html = format!(
        r#"<iframe src="{base}/embed/{id}" width="{width}" height="{height}" frameborder="0" allow="autoplay" title="{title}"></iframe>"#,
        id = t.id,
        title = attr(&t.title),
    );
    let body = Oembed {
        kind: "rich".into(),
        version: "1.0".into(),
        title: t.title.clone(),
        author_name: t.artist.clone(),
        provider_name: "Veza".into(),
        provider_url: format!("{base}/"),
        html,
        width,
        height,
        thumbnail_url: t
            .has_cover
            .then(|| format!("{base}/api/v1/tracks/{}/cover", t.id)),
    };
    Ok(warp::reply::json(&body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_bounded() {
        assert_eq!(parse_window("24h"), Ok(86400));
        assert_eq!(parse_window("30m"), Ok(1800));
        assert!(parse_window("25h").is_err());
        assert!(parse_window("0m").is_err());
        assert!(parse_window("1d").is_err());
        assert!(parse_window("").is_err());
        // Multi-byte text and overflow are refused, never a panic.
        assert!(parse_window("\u{85}").is_err());
        assert!(parse_window("1\u{e9}h").is_err());
        assert!(parse_window("99999999999999999h").is_err());
    }

    #[test]
    fn only_this_servers_track_urls_count() {
        let public = url::Url::parse("https://music.example/").unwrap();
        let id = "01890f3c-8c5e-7a3b-9a7e-3f1b2c4d5e6f";
        assert!(track_in(&format!("https://music.example/embed/{id}"), &public).is_some());
        assert!(track_in(&format!("https://music.example/tracks/{id}"), &public).is_some());
        assert!(track_in(&format!("https://evil.example/embed/{id}"), &public).is_none());
        assert!(track_in("https://music.example/embed/nope", &public).is_none());
        assert!(track_in(&format!("https://music.example/embed/{id}/x"), &public).is_none());
    }
}
