//! `POST /api/v1/tracks/{id}/takedown` and `…/restore` (admin), and the audit trail
//! `GET /api/v1/tracks/{id}/audit`. A takedown is one transaction: the status flips (so no URL
//! is signed and the origin answers 451 from the next request on), the audit row is written and
//! the CDN purge job is queued, together or not at all.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::accounts::Role;
use crate::http::auth::{Principal, require};
use crate::http::error::ApiError;
use crate::http::error::ErrorEnvelope;
use crate::http::filters::{json_body, with_state};
use crate::http::route;
use crate::http::state::AppState;
use crate::library::lifecycle::{Actor, AuditEntry};
use crate::library::{Track, TrackId};

const JSON: &[&str] = &["application/json"];

/// Body of a takedown.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TakedownBody {
    /// Why (kept in the audit trail), 1-1000 characters.
    pub reason: String,
}

/// Body of a restore.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreBody {
    /// Why it comes back (optional).
    pub reason: Option<String>,
}

/// The result of a takedown.
#[derive(Debug, Serialize, ToSchema)]
pub struct TakedownResult {
    /// The track as it is now.
    pub track: Track,
    /// The CDN purge job, when a CDN caches the track's objects.
    pub purge_job_id: Option<i64>,
}

/// The takedown routes.
pub(crate) fn routes(s: &AppState) -> BoxedFilter<(Response,)> {
    let takedown = route(
        "POST",
        "/api/v1/tracks/{id}/takedown",
        warp::path!("api" / "v1" / "tracks" / TrackId / "takedown")
            .and(warp::post())
            .and(require(s, Role::Admin))
            .and(with_state(s))
            .and(json_body::<TakedownBody>(
                s.config.server.max_json_bytes,
                JSON,
            ))
            .and_then(takedown),
    );
    let restore = route(
        "POST",
        "/api/v1/tracks/{id}/restore",
        warp::path!("api" / "v1" / "tracks" / TrackId / "restore")
            .and(warp::post())
            .and(require(s, Role::Admin))
            .and(with_state(s))
            .and(json_body::<RestoreBody>(
                s.config.server.max_json_bytes,
                JSON,
            ))
            .and_then(restore),
    );
    let audit = route(
        "GET",
        "/api/v1/tracks/{id}/audit",
        warp::path!("api" / "v1" / "tracks" / TrackId / "audit")
            .and(warp::get())
            .and(require(s, Role::Editor))
            .and(with_state(s))
            .and_then(audit),
    );
    takedown.or(restore).unify().or(audit).unify().boxed()
}

fn actor(who: &Principal) -> Actor {
    Actor {
        id: who.user.id.clone(),
        name: who.user.username.clone(),
    }
}

/// Hides a track everywhere at once and queues a CDN purge.
#[utoipa::path(post, path = "/api/v1/tracks/{id}/takedown", tag = "tracks",
    params(("id" = String, Path, description = "Track id")), request_body = TakedownBody,
    security(("session" = []), ("bearer" = [])),
    responses((status = 200, body = TakedownResult), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope), (status = 409, description = "Already taken down", body = ErrorEnvelope)))]
async fn takedown(
    id: TrackId,
    who: Principal,
    s: AppState,
    body: TakedownBody,
) -> Result<Response, Rejection> {
    let (track, job) = s
        .tracks
        .take_down(&id, &body.reason, actor(&who))
        .await
        .map_err(ApiError::from)?;
    tracing::warn!(track_id = %id, by = %who.user.id, purge_job = ?job, "track taken down");
    Ok(warp::reply::json(&TakedownResult {
        track,
        purge_job_id: job,
    })
    .into_response())
}

/// Brings a taken-down track back: `ready` when it has HLS (or HLS is off), else `processing`
/// with a new packaging job.
#[utoipa::path(post, path = "/api/v1/tracks/{id}/restore", tag = "tracks",
    params(("id" = String, Path, description = "Track id")), request_body = RestoreBody,
    security(("session" = []), ("bearer" = [])),
    responses((status = 200, body = Track), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
              (status = 409, description = "Not taken down", body = ErrorEnvelope)))]
async fn restore(
    id: TrackId,
    who: Principal,
    s: AppState,
    body: RestoreBody,
) -> Result<Response, Rejection> {
    let track = s
        .tracks
        .restore(&id, body.reason, actor(&who))
        .await
        .map_err(ApiError::from)?;
    tracing::info!(track_id = %id, "track restored");
    Ok(warp::reply::json(&track).into_response())
}

/// Who took the track down or restored it, when and why; oldest first.
#[utoipa::path(get, path = "/api/v1/tracks/{id}/audit", tag = "tracks",
    params(("id" = String, Path, description = "Track id")),
    security(("session" = []), ("bearer" = [])),
    responses((status = 200, body = Vec<AuditEntry>), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope)))]
async fn audit(id: TrackId, _who: Principal, s: AppState) -> Result<Response, Rejection> {
    let entries = s.tracks.audit_trail(id).await.map_err(ApiError::from)?;
    Ok(warp::reply::json(&entries).into_response())
}
