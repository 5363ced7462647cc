//! `POST /api/v1/tracks/{id}/takedown` and `…/restore` (admin), and the audit trail
//! `GET /api/v1/tracks/{id}/audit`. A takedown is one transaction: the status flips (so no URL
//! is signed and the origin answers 451 from the next request on), the audit row is written and
//! the CDN purge job is queued, together or not at all.

use rusqlite::params;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::accounts::Role;
use crate::error::ApiError;
use crate::http::api::openapi::ErrorEnvelope;
use crate::http::auth::{Principal, require};
use crate::http::filters::{json_body, with_state};
use crate::http::route;
use crate::library::{LibraryError, Status, Track, TrackId, store};
use crate::state::AppState;

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

/// One audit entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    /// `takedown` or `restore`.
    pub action: String,
    /// The reason given.
    pub reason: Option<String>,
    /// Who did it (username at the time).
    pub actor: String,
    /// Unix seconds.
    pub at: i64,
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

fn audit_row(
    c: &rusqlite::Connection,
    id: &TrackId,
    action: &str,
    reason: Option<&str>,
    who: &Principal,
    now: i64,
) -> Result<(), LibraryError> {
    c.execute(
        "INSERT INTO track_audit (track_id, action, reason, actor_id, actor_name, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            id.as_str(),
            action,
            reason,
            who.user.id,
            who.user.username,
            now
        ],
    )?;
    Ok(())
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
    let reason = body.reason.trim().to_owned();
    if !(1..=1000).contains(&reason.chars().count()) {
        return Err(warp::reject::custom(ApiError::BadRequest {
            code: "invalid_field",
            message: "reason: must be 1-1000 characters".into(),
        }));
    }
    let now = crate::clock::now();
    let cfg = s.config.clone();
    let max_attempts = s.config.jobs.max_attempts;
    let actor = who.clone();
    let tid = id.clone();
    let outcome =
        s.db.call(move |c| {
            let tx = c.transaction()?;
            let t = store::get(&tx, &tid)?.ok_or(LibraryError::NotFound)?;
            if t.status == Status::TakenDown {
                return Ok(None);
            }
            tx.execute(
                "UPDATE tracks SET status = 'taken_down', status_detail = ?2, updated_at = ?3
                 WHERE id = ?1",
                params![tid.as_str(), format!("taken down: {reason}"), now],
            )?;
            audit_row(&tx, &tid, "takedown", Some(&reason), &actor, now)?;
            let job = match crate::jobs::purge::new_job(&cfg, &t) {
                Some(j) => crate::jobs::store::enqueue(&tx, &j, max_attempts, now).map_err(
                    |e| match e {
                        crate::jobs::JobError::Db(e) => LibraryError::Db(e),
                        other => LibraryError::Invalid {
                            field: "job",
                            message: other.to_string(),
                        },
                    },
                )?,
                None => None,
            };
            tx.commit()?;
            let t = store::get(c, &tid)?.ok_or(LibraryError::NotFound)?;
            Ok::<_, LibraryError>(Some((t, job)))
        })
        .await;
    // At once: no cached fact may serve or sign the track after this point.
    s.caches.tracks_changed();
    let (track, job) = outcome.map_err(ApiError::from)?.ok_or_else(|| {
        warp::reject::custom(ApiError::Conflict {
            code: "already_taken_down",
            message: "the track is already taken down".into(),
        })
    })?;
    if job.is_some() {
        s.jobs.notify();
    }
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
    let reason = body
        .reason
        .map(|r| r.trim().chars().take(1000).collect::<String>())
        .filter(|r| !r.is_empty());
    let now = crate::clock::now();
    let package = s.config.hls.enabled.then_some(s.config.jobs.max_attempts);
    let tid = id.clone();
    let outcome =
        s.db.call(move |c| {
            let tx = c.transaction()?;
            let t = store::get(&tx, &tid)?.ok_or(LibraryError::NotFound)?;
            if t.status != Status::TakenDown {
                return Ok(None);
            }
            let needs_hls = package.is_some() && t.hls_key.is_none();
            let status = if needs_hls { "processing" } else { "ready" };
            tx.execute(
                "UPDATE tracks SET status = ?2, status_detail = NULL, updated_at = ?3
                 WHERE id = ?1",
                params![tid.as_str(), status, now],
            )?;
            audit_row(&tx, &tid, "restore", reason.as_deref(), &who, now)?;
            if let (true, Some(max)) = (needs_hls, package) {
                let job = crate::jobs::package::new_job(&tid);
                crate::jobs::store::enqueue(&tx, &job, max, now).map_err(|e| match e {
                    crate::jobs::JobError::Db(e) => LibraryError::Db(e),
                    other => LibraryError::Invalid {
                        field: "job",
                        message: other.to_string(),
                    },
                })?;
            }
            tx.commit()?;
            Ok::<_, LibraryError>(Some(store::get(c, &tid)?.ok_or(LibraryError::NotFound)?))
        })
        .await;
    s.caches.tracks_changed();
    let track = outcome.map_err(ApiError::from)?.ok_or_else(|| {
        warp::reject::custom(ApiError::Conflict {
            code: "not_taken_down",
            message: "the track is not taken down".into(),
        })
    })?;
    s.jobs.notify();
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
    let entries =
        s.db.call(move |c| {
            let mut st = c.prepare_cached(
                "SELECT action, reason, actor_name, at FROM track_audit
                 WHERE track_id = ?1 ORDER BY id",
            )?;
            let rows = st.query_map([id.as_str()], |r| {
                Ok(AuditEntry {
                    action: r.get(0)?,
                    reason: r.get(1)?,
                    actor: r.get(2)?,
                    at: r.get(3)?,
                })
            })?;
            Ok::<_, LibraryError>(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
        .map_err(ApiError::from)?;
    Ok(warp::reply::json(&entries).into_response())
}
