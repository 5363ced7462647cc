//! The origin's hot path: `GET`/`HEAD /media/…` taken off the connection before warp's
//! filter chain (which would try the routes in order, clone the header map and the state and
//! look metric labels up for every segment an edge pulls). The answer is the very same
//! [`respond`] the warp route gives, under the same request id, log line, counters and error
//! envelope; only the plumbing around it is shorter.

use std::net::IpAddr;
use std::sync::Arc;

use tracing::Instrument;
use warp::http::{Method, Request};
use warp::reply::Response;

use crate::http::RequestCtx;
use crate::http::state::AppState;
use crate::metrics::RouteSeries;

use super::{MediaRequest, TEMPLATE, respond};

/// Serves `/media/` requests straight from the connection loop.
pub struct FastMedia {
    state: AppState,
    series: RouteSeries,
}

/// Where the object path starts in a request target.
const PREFIX: &str = "/media/";

impl FastMedia {
    /// Resolves the route's metric series once.
    pub fn new(state: AppState) -> Arc<FastMedia> {
        let series = state.metrics.route_series(TEMPLATE, &["GET", "HEAD"]);
        Arc::new(FastMedia { state, series })
    }

    /// Whether this request is one for the fast path (any other goes through warp).
    pub fn takes<B>(req: &Request<B>) -> bool {
        matches!(*req.method(), Method::GET | Method::HEAD) && req.uri().path().starts_with(PREFIX)
    }

    /// Answers a request [`FastMedia::takes`]; its body, if any, is never read.
    pub async fn call<B>(self: Arc<Self>, req: Request<B>, client: IpAddr) -> Response {
        let span = tracing::info_span!(
            "http",
            method = %req.method(),
            request_id = tracing::field::Empty
        );
        async move {
            let (parts, _body) = req.into_parts();
            let head = parts.method == Method::HEAD;
            let ctx = RequestCtx::new(parts.method, &parts.headers, client);
            let req = MediaRequest {
                head,
                tail: parts.uri.path()[PREFIX.len()..].to_owned(),
                query: parts.uri.query().unwrap_or_default().to_owned(),
                headers: parts.headers,
                ip: client,
            };
            let resp = respond(&req, &self.state).await;
            let method = if head { "HEAD" } else { "GET" };
            ctx.finish_as(TEMPLATE, &self.state.stats, resp, |status, secs| {
                self.series.observe(method, status, secs)
            })
        }
        .instrument(span)
        .await
    }
}
