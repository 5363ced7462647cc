//! `/api/v1` resources, one file each.

use warp::filters::BoxedFilter;
use warp::reply::Response;

use crate::state::AppState;

pub(crate) mod web_vitals;

/// Every `/api/v1` route.
pub(crate) fn routes(s: &AppState) -> BoxedFilter<(Response,)> {
    web_vitals::routes(s)
}
