//! `/api/v1` resources, one file each.

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use crate::http::state::AppState;

pub(crate) mod auth;
pub(crate) mod dashboard;
pub(crate) mod jobs;
pub mod openapi;
pub(crate) mod stream;
pub(crate) mod takedown;
pub(crate) mod tokens;
pub(crate) mod tracks;
pub(crate) mod users;
pub(crate) mod web_vitals;

/// Every `/api/v1` route.
pub(crate) fn routes(s: &AppState) -> BoxedFilter<(Response,)> {
    auth::routes(s)
        .or(users::routes(s))
        .unify()
        .or(tokens::routes(s))
        .unify()
        .or(tracks::routes(s))
        .unify()
        .or(jobs::routes(s))
        .unify()
        .or(stream::routes(s))
        .unify()
        .or(takedown::routes(s))
        .unify()
        .or(web_vitals::routes(s))
        .unify()
        .or(dashboard::routes(s))
        .unify()
        .or(openapi::routes())
        .unify()
        .boxed()
}
