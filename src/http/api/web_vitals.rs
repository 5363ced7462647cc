//! `POST /api/v1/observability/web-vitals`: the anonymous real-user monitoring beacon.
//! Open to the internet, so: rate-limited per IP, size-limited, every label bounded.

use std::net::IpAddr;

use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::http::error::ApiError;
use crate::http::filters::{client_ip, json_body, with_state};
use crate::http::route;
use crate::http::state::AppState;
use crate::rum::{self, Beacon, MAX_BATCH, Vital};

/// Schema of a beacon body: one item or an array of them.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)] // documentation only; `Beacon` parses the body
#[serde(untagged)]
pub(crate) enum BeaconBody {
    /// One metric.
    One(rum::BeaconItem),
    /// Up to 20 metrics.
    Many(Vec<rum::BeaconItem>),
}

/// `sendBeacon` with a string body sends `text/plain`; both are JSON here.
const ACCEPTED: &[&str] = &["application/json", "text/plain"];

/// The beacon route, with CORS for `rum.cors_origins`.
pub(crate) fn routes(s: &AppState) -> BoxedFilter<(Response,)> {
    let limit = rum::MAX_BODY_BYTES.min(s.config.server.max_json_bytes);
    let counted = s.clone();
    let beacon = warp::path!("api" / "v1" / "observability" / "web-vitals")
        .and(warp::post())
        .and(with_state(s))
        .and(client_ip())
        .and_then(|s: AppState, ip: IpAddr| async move {
            s.metrics.rum_beacons_received.inc();
            s.rum.check_rate(ip).map_err(|retry_after_secs| {
                warp::reject::custom(ApiError::RateLimited { retry_after_secs })
            })?;
            Ok::<_, Rejection>(s)
        })
        .and(json_body::<Beacon>(limit, ACCEPTED))
        .and_then(record)
        .or_else(move |rej: Rejection| {
            count_rejection(&counted, &rej);
            async move { Err::<(Response,), _>(rej) }
        });
    let origins = &s.config.rum.cors_origins;
    if origins.is_empty() {
        return route("POST", "/api/v1/observability/web-vitals", beacon);
    }
    let cors = warp::cors()
        .allow_methods(["POST"])
        .allow_header("content-type")
        .max_age(86400);
    let cors = if origins.iter().any(|o| o == "*") {
        cors.allow_any_origin()
    } else {
        cors.allow_origins(origins.iter().map(String::as_str))
    };
    route(
        "POST",
        "/api/v1/observability/web-vitals",
        beacon.with(cors),
    )
}

/// Counts refusals that happen before `record` (rate limit, type, size, syntax) by reason.
fn count_rejection(s: &AppState, rej: &Rejection) {
    let reason = match rej.find::<ApiError>() {
        Some(ApiError::RateLimited { .. }) => "rate_limited",
        Some(ApiError::PayloadTooLarge { .. }) => "too_large",
        Some(ApiError::UnsupportedMediaType { .. }) => "bad_content_type",
        Some(ApiError::InvalidJson(_)) => "invalid_json",
        _ => return,
    };
    s.metrics
        .rum_beacons_rejected
        .with_label_values(&[reason])
        .inc();
}

/// Records real-user web vitals (anonymous; rate-limited per IP).
#[utoipa::path(post, path = "/api/v1/observability/web-vitals", tag = "observability",
    request_body(content = BeaconBody, description = "One metric or up to 20; text/plain accepted as sendBeacon sends it",
                 content_type = "application/json"),
    responses((status = 204, description = "Recorded"),
              (status = 400, body = crate::http::error::ErrorEnvelope),
              (status = 413, body = crate::http::error::ErrorEnvelope),
              (status = 415, body = crate::http::error::ErrorEnvelope),
              (status = 429, body = crate::http::error::ErrorEnvelope)))]
pub(crate) async fn record(s: AppState, beacon: Beacon) -> Result<Response, Rejection> {
    let items = beacon.0;
    if items.is_empty() {
        s.metrics
            .rum_beacons_rejected
            .with_label_values(&["invalid_json"])
            .inc();
        return Err(warp::reject::custom(ApiError::BadRequest {
            code: "invalid_beacon",
            message: "empty batch: send at least one metric".into(),
        }));
    }
    if items.len() > MAX_BATCH {
        s.metrics
            .rum_beacons_rejected
            .with_label_values(&["too_large"])
            .inc();
        return Err(warp::reject::custom(ApiError::BadRequest {
            code: "invalid_beacon",
            message: format!("{} items in one beacon; at most {MAX_BATCH}", items.len()),
        }));
    }
    let mut refused = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let outcome = Vital::parse(&item.name)
            .ok_or_else(|| ("unknown_metric", format!("unknown metric {:?}", item.name)))
            .and_then(|v| {
                v.to_recorded(item.value)
                    .map(|x| (v, x))
                    .map_err(|m| ("out_of_range", m))
            });
        match outcome {
            Ok((vital, value)) => {
                let route = s.rum.routes.admit(rum::normalize_route(&item.route));
                let device = rum::normalize_device(item.device.as_deref());
                s.metrics
                    .rum_web_vitals
                    .with_label_values(&[vital.label(), &route, device])
                    .observe(value);
            }
            Err((reason, msg)) => {
                s.metrics
                    .rum_beacons_rejected
                    .with_label_values(&[reason])
                    .inc();
                refused.push(format!("[{i}] {reason}: {msg}"));
            }
        }
    }
    if refused.is_empty() {
        return Ok(warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response());
    }
    Err(warp::reject::custom(ApiError::BadRequest {
        code: "invalid_beacon",
        message: format!(
            "{} of {} items rejected: {}",
            refused.len(),
            items.len(),
            refused.join("; ")
        ),
    }))
}
