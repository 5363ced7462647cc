//! Operations endpoints: `/healthz` (alive), `/readyz` (database and store usable), `/metrics`.

use std::time::{Duration, Instant};

use serde_json::json;
use warp::filters::BoxedFilter;
use warp::http::{StatusCode, header};
use warp::reply::Response;
use warp::{Filter, Reply};

use super::auth::{Principal, Via, viewer};
use super::filters::with_state;
use super::route;
use crate::db::DbError;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::storage::Fault;
use crate::version;

/// `/healthz`, `/readyz`, `/metrics`.
pub(crate) fn routes(s: &AppState) -> BoxedFilter<(Response,)> {
    let healthz = route(
        "GET",
        "/healthz",
        warp::path!("healthz")
            .and(get_or_head())
            .map(|| warp::reply::json(&json!({"status": "ok", "version": version::VERSION}))),
    );
    let readyz = route(
        "GET",
        "/readyz",
        warp::path!("readyz")
            .and(get_or_head())
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

/// GET, and HEAD answered like it (hyper drops the body): monitors often probe with HEAD.
fn get_or_head() -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    warp::get().or(warp::head()).unify()
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
                    via: Via::Token { .. },
                    ..
                }) => Ok(()),
                _ => Err(warp::reject::custom(ApiError::Unauthorized(
                    "metrics need Authorization: Bearer vz_… (server.metrics_public = false)"
                        .into(),
                ))),
            }
        })
        .untuple_one()
}

/// The last real readiness check, shared by every `/readyz` caller.
#[derive(Default)]
pub struct ReadyCache {
    last: tokio::sync::Mutex<Option<(Instant, Readiness)>>,
}

impl ReadyCache {
    /// True when the last real check, younger than `max_age`, found the store unreachable:
    /// uploads are refused before their body is read. Never waits for a check in progress.
    pub fn store_known_unavailable(&self, max_age: Duration) -> bool {
        let Ok(last) = self.last.try_lock() else {
            return false;
        };
        matches!(last.as_ref(), Some((at, r))
            if at.elapsed() < max_age && matches!(r.storage, Err(("unavailable", _))))
    }
}

/// What one real check found.
#[derive(Clone)]
struct Readiness {
    database: Result<(), String>,
    /// What kind of failure (`unavailable`, `full`, `error`) and the detail for the log.
    storage: Result<(), (&'static str, String)>,
}

impl ReadyCache {
    /// The cached result while younger than `max_age`, else a fresh check. Callers queue
    /// behind one check in progress, so a flood of anonymous probes costs one store write
    /// per interval at most.
    async fn get(&self, s: &AppState, max_age: Duration) -> Readiness {
        let mut last = self.last.lock().await;
        if let Some((at, r)) = last.as_ref()
            && at.elapsed() < max_age
        {
            return r.clone();
        }
        let db =
            s.db.call(|c| Ok::<_, DbError>(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
                .await
                .map(|_| ())
                .map_err(|e| e.to_string());
        let storage = s.store.probe_writable().await.map_err(|e| match e.fault() {
            Fault::Unavailable => ("unavailable", e.to_string()),
            Fault::Full => ("full", e.to_string()),
            Fault::Other => ("error", e.to_string()),
        });
        if let Err(e) = &db {
            tracing::warn!(error = %e, "not ready: database");
        }
        if let Err((_, e)) = &storage {
            tracing::warn!(error = %e, "not ready: blob store");
        }
        let r = Readiness {
            database: db,
            storage,
        };
        *last = Some((Instant::now(), r.clone()));
        r
    }
}

async fn readyz(s: AppState) -> Response {
    let r = s.ready.get(&s, s.config.server.readyz_check).await;
    // Details (paths, store messages) go to the log only: anyone can call this.
    let word = |r: Result<(), &str>| match r {
        Ok(()) => "ok".to_owned(),
        Err(kind) => format!("{kind} (see the server log)"),
    };
    let ok = r.database.is_ok() && r.storage.is_ok();
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
        "checks": {
            "database": word(r.database.as_ref().map(drop).map_err(|_| "error")),
            "storage": word(r.storage.as_ref().map(drop).map_err(|(kind, _)| *kind)),
            "hls": hls_check,
        },
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
