//! `/api/v1/jobs`: the background job queue for editors and admins: list (filter by state,
//! kind or track; newest first, by cursor) and retry.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use crate::accounts::Role;
use crate::http::auth::{Principal, require};
use crate::http::error::ApiError;
use crate::http::error::ErrorEnvelope;
use crate::http::filters::with_state;
use crate::http::route;
use crate::http::state::AppState;
use crate::jobs::{HlsAvailability, Job, JobKind, store};

/// Query string of `GET /api/v1/jobs`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobParams {
    /// `queued`, `running`, `succeeded`, `failed` or `dead`.
    pub state: Option<String>,
    /// `package_hls` or `purge_cdn`.
    pub kind: Option<String>,
    /// Only jobs of this track (its job history).
    pub track_id: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1-200 (default 50).
    pub limit: Option<u32>,
}

/// A page of jobs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobPage {
    /// The jobs.
    pub jobs: Vec<Job>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
    /// Whether HLS packaging can run (package_hls jobs wait while it cannot).
    pub hls: HlsAvailability,
}

/// Every jobs route.
pub(crate) fn routes(s: &AppState) -> BoxedFilter<(Response,)> {
    let list = route(
        "GET",
        "/api/v1/jobs",
        warp::path!("api" / "v1" / "jobs")
            .and(warp::get())
            .and(require(s, Role::Editor))
            .and(with_state(s))
            .and(crate::http::filters::raw_query())
            .and_then(list),
    );
    let retry = route(
        "POST",
        "/api/v1/jobs/{id}/retry",
        warp::path!("api" / "v1" / "jobs" / i64 / "retry")
            .and(warp::post())
            .and(require(s, Role::Editor))
            .and(with_state(s))
            .and_then(retry),
    );
    list.or(retry).unify().boxed()
}

/// Lists jobs, newest first.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", params(JobParams),
    security(("session" = []), ("bearer" = [])),
    responses((status = 200, body = JobPage), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope)))]
async fn list(_who: Principal, s: AppState, raw: String) -> Result<Response, Rejection> {
    let p: JobParams = serde_urlencoded::from_str(&raw)
        .map_err(|e| warp::reject::custom(ApiError::InvalidQuery(format!("invalid query: {e}"))))?;
    let bad = |field: &'static str| {
        move |m: String| {
            warp::reject::custom(ApiError::BadRequest {
                code: "invalid_query",
                message: format!("{field}: {m}"),
            })
        }
    };
    let limit = p.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(bad("limit")(format!("{limit} is outside 1..=200")));
    }
    let filter = store::Filter {
        state: p
            .state
            .map(|v| v.parse())
            .transpose()
            .map_err(bad("state"))?,
        kind: p
            .kind
            .map(|v| v.parse::<JobKind>())
            .transpose()
            .map_err(bad("kind"))?,
        track_id: p.track_id,
        before: p
            .cursor
            .map(|c| {
                c.parse::<i64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{c:?} is not a cursor from this API"))
            })
            .transpose()
            .map_err(bad("cursor"))?,
        limit: limit + 1,
    };
    let mut jobs =
        s.db.call(move |c| store::list(c, &filter))
            .await
            .map_err(ApiError::from)?;
    let next_cursor = if jobs.len() > limit as usize {
        jobs.truncate(limit as usize);
        jobs.last().map(|j| j.id.to_string())
    } else {
        None
    };
    Ok(warp::reply::json(&JobPage {
        jobs,
        next_cursor,
        hls: s.jobs.hls(),
    })
    .into_response())
}

/// Runs a queued, failed or dead job again now, with a fresh set of attempts.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/retry", tag = "jobs",
    params(("id" = i64, Path, description = "Job id")), security(("session" = []), ("bearer" = [])),
    responses((status = 200, body = Job), (status = 401, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope), (status = 409, description = "Running or succeeded, or another job for the track is pending", body = ErrorEnvelope)))]
async fn retry(id: i64, who: Principal, s: AppState) -> Result<Response, Rejection> {
    let now = crate::clock::now();
    let job =
        s.db.call(move |c| store::retry(c, id, now))
            .await
            .map_err(ApiError::from)?;
    if job.kind == JobKind::PackageHls && !s.jobs.hls().available {
        // The admin may just have installed ffmpeg: look again rather than wait a minute.
        s.jobs.refresh_hls(&s.config.hls).await;
    }
    s.jobs.notify();
    tracing::info!(job = id, by = %who.user.id, "job retried");
    Ok(warp::reply::json(&job).into_response())
}
