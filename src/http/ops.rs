//! Operations endpoints: `/healthz` (alive), `/readyz` (database and store usable), `/metrics`.

use serde_json::json;
use warp::filters::BoxedFilter;
use warp::http::{StatusCode, header};
use warp::reply::Response;
use warp::{Filter, Reply};

use super::auth::{Principal, Via, viewer};
use super::filters::with_state;
use super::route;
use crate::db::DbError;
use crate::error::ApiError;
use crate::state::AppState;
use crate::version;

/// `/healthz`, `/readyz`, `/metrics`.
pub(crate) fn routes(s: &AppState) -> BoxedFilter<(Response,)> {
    let healthz = route(
        "GET",
        "/healthz",
        warp::path!("healthz")
            .and(warp::get())
            .map(|| warp::reply::json(&json!({"status": "ok", "version": version::VERSION}))),
    );
    let readyz = route(
        "GET",
        "/readyz",
        warp::path!("readyz")
            .and(warp::get())
            .and(with_state(s))
            .then(readyz),
    );
    let metrics = route(
        "GET",
        "/metrics",
        warp::path!("metrics")
            .and(warp::get())
            .and(metrics_access(s))
            .and(with_state(s))
            .and_then(metrics),
    );
    healthz.or(readyz).unify().or(metrics).unify().boxed()
}

/// Anyone when `server.metrics_public`, else a bearer API token of any enabled user.
fn metrics_access(
    s: &AppState,
) -> impl Filter<Extract = (), Error = warp::Rejection> + Clone + use<> {
    let public = s.config.server.metrics_public;
    viewer(s)
        .and_then(move |who: Option<Principal>| async move {
            match who {
                _ if public => Ok(()),
                Some(Principal {
                    via: Via::Token, ..
                }) => Ok(()),
                _ => Err(warp::reject::custom(ApiError::Unauthorized(
                    "metrics need Authorization: Bearer vz_… (server.metrics_public = false)"
                        .into(),
                ))),
            }
        })
        .untuple_one()
}

async fn readyz(s: AppState) -> Response {
    let db =
        s.db.call(|c| Ok::<_, DbError>(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
            .await;
    let store = s.store.probe_writable().await.map_err(|e| e.to_string());
    let db_check = match &db {
        Ok(_) => "ok".to_owned(),
        Err(e) => format!("error: {e}"),
    };
    let store_check = match &store {
        Ok(()) => "ok".to_owned(),
        Err(e) => format!("error: {e}"),
    };
    let ok = db.is_ok() && store.is_ok();
    if !ok {
        tracing::warn!(database = %db_check, storage = %store_check, "not ready");
    }
    // HLS does not decide readiness: without ffmpeg, originals still stream.
    let hls = s.jobs.hls();
    let hls_check = if hls.available {
        "ok".to_owned()
    } else {
        format!(
            "unavailable: {}",
            hls.reason.as_deref().unwrap_or("unknown")
        )
    };
    let body = json!({
        "status": if ok { "ok" } else { "unavailable" },
        "checks": { "database": db_check, "storage": store_check, "hls": hls_check },
        "hls": hls,
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

async fn metrics(s: AppState) -> Result<Response, warp::Rejection> {
    let text = s.metrics.render().map_err(|e| {
        tracing::error!(error = %e, "metrics encoding failed");
        warp::reject::custom(ApiError::Internal)
    })?;
    Ok(warp::reply::with_header(
        text,
        header::CONTENT_TYPE,
        "text/plain; version=0.0.4; charset=utf-8",
    )
    .into_response())
}
