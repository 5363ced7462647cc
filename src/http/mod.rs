//! The warp application: every route, the request id, metrics per route template, and the one
//! `recover` that turns every rejection into the JSON error envelope (via `error::finish`).

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Mutex;
use std::time::Instant;

use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, Method};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use self::error::ApiError;
use crate::http::state::AppState;
use crate::metrics::Metrics;
use crate::metrics::stats::Stats;

pub(crate) mod api;
pub(crate) mod auth;
pub(crate) mod dashboard;
pub mod error;
pub(crate) mod filters;
pub mod media;
pub mod ops;
pub mod server;
pub mod state;

/// Label for requests that matched no route (never the raw path).
pub const UNMATCHED: &str = "unmatched";

/// The route template a response was produced by, carried in its extensions.
#[derive(Debug, Clone, Copy)]
struct RouteTag(&'static str);

/// Builds the whole HTTP application; `extra` holds surfaces built beside `http` (the
/// OpenSubsonic API), under the same request ids, metrics and error envelope.
pub fn app(
    state: AppState,
    extra: BoxedFilter<(Response,)>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let routes = ops::routes(&state)
        .or(media::routes(&state))
        .unify()
        .or(api::routes(&state))
        .unify()
        .or(extra)
        .unify()
        .or(dashboard::routes(&state))
        .unify();
    let handled = routes.recover(error::recover).unify();
    let metrics = state.metrics.clone();
    let stats = state.stats.clone();
    request_ctx()
        .and(handled)
        .map(move |ctx: RequestCtx, resp: Response| ctx.finish(&metrics, &stats, resp))
        .with(warp::trace(|info| {
            tracing::info_span!(
                "http",
                method = %info.method(),
                request_id = tracing::field::Empty
            )
        }))
}

/// Wraps one route: once its path and method matched, any later rejection (auth, body,
/// handler) becomes that route's error response, tagged with `template` for metrics and logs.
/// 404/405 still fall through so other routes get their turn.
pub(crate) fn route<F, R>(
    method: &'static str,
    template: &'static str,
    f: F,
) -> BoxedFilter<(Response,)>
where
    F: Filter<Extract = (R,), Error = Rejection> + Clone + Send + Sync + 'static,
    R: Reply + 'static,
{
    SERVED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert((method, template));
    f.map(Reply::into_response)
        .or_else(|rej: Rejection| async move {
            if rej.is_not_found() || rej.find::<warp::reject::MethodNotAllowed>().is_some() {
                Err(rej)
            } else {
                Ok((ApiError::from_rejection(&rej).into_response(),))
            }
        })
        .map(move |mut resp: Response| {
            resp.extensions_mut().insert(RouteTag(template));
            resp
        })
        .boxed()
}

/// Every (method, route template) built so far, for the OpenAPI completeness check.
static SERVED: Mutex<BTreeSet<(&'static str, &'static str)>> = Mutex::new(BTreeSet::new());

/// The (method, template) pairs of every route the app serves.
pub fn served_routes() -> Vec<(&'static str, &'static str)> {
    SERVED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .copied()
        .collect()
}

/// What the outer layer knows about a request before routing.
struct RequestCtx {
    id: String,
    method: Method,
    client: std::net::IpAddr,
    started: Instant,
}

fn request_ctx() -> impl Filter<Extract = (RequestCtx,), Error = Infallible> + Clone {
    warp::method()
        .and(warp::header::headers_cloned())
        .and(filters::client_ip())
        .map(
            |method: Method, headers: HeaderMap, client: std::net::IpAddr| {
                RequestCtx::new(method, &headers, client)
            },
        )
}

/// A fresh request id: 32 hex digits, a random per-process half and a counter. Unique, not
/// secret (it only finds log lines), so it costs no random draw per request.
fn new_request_id() -> String {
    static PROCESS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let process = PROCESS.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair().0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{process:016x}{n:016x}")
}

/// Accepts ids a proxy or client may have set: 1–128 chars of `[A-Za-z0-9._:-]`.
fn is_sane_request_id(v: &str) -> bool {
    (1..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

impl RequestCtx {
    /// Starts the clock; the request id is the client's (when sane) or a new one.
    fn new(method: Method, headers: &HeaderMap, client: std::net::IpAddr) -> RequestCtx {
        let id = headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| is_sane_request_id(v))
            .map(str::to_owned)
            .unwrap_or_else(new_request_id);
        tracing::Span::current().record("request_id", tracing::field::display(&id));
        RequestCtx {
            id,
            method,
            client,
            started: Instant::now(),
        }
    }

    fn finish(self, metrics: &Metrics, stats: &Stats, resp: Response) -> Response {
        let route = resp
            .extensions()
            .get::<RouteTag>()
            .map_or(UNMATCHED, |t| t.0);
        let method = method_label(&self.method);
        self.finish_as(route, stats, resp, |status, secs| {
            metrics.observe_http(route, method, status, secs)
        })
    }

    /// Counts, logs and finishes the response of `route`; `observe` records its metrics.
    fn finish_as(
        self,
        route: &'static str,
        stats: &Stats,
        resp: Response,
        observe: impl FnOnce(u16, f64),
    ) -> Response {
        let status = resp.status().as_u16();
        let elapsed = self.started.elapsed();
        let method = method_label(&self.method);
        observe(status, elapsed.as_secs_f64());
        let len = resp
            .headers()
            .get(warp::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        stats.observe(route, status, len);
        // Route template, not the path: paths can carry path-form tokens.
        tracing::info!(
            route,
            status,
            client = %self.client,
            ms = elapsed.as_micros() as f64 / 1000.0,
            "{method} {route} -> {status}"
        );
        error::finish(&self.id, resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_request_ids_are_unique_and_sane() {
        let (a, b) = (new_request_id(), new_request_id());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(is_sane_request_id(&a) && a[..16] == b[..16]);
    }

    #[test]
    fn request_ids_are_checked() {
        assert!(is_sane_request_id("abc-123_x.y:z"));
        assert!(!is_sane_request_id(""));
        assert!(!is_sane_request_id("a b"));
        assert!(!is_sane_request_id("<script>"));
        assert!(!is_sane_request_id(&"a".repeat(129)));
    }
}
