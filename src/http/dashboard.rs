//! The admin dashboard's assets, embedded in the binary (works offline: nothing from a CDN).

use rust_embed::RustEmbed;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, header};
use warp::reply::Response;
use warp::{Filter, Reply};

use super::route;
use crate::http::error::ApiError;

#[derive(RustEmbed)]
#[folder = "static/"]
struct Assets;

/// `GET /` and `GET /assets/{file}`.
pub(crate) fn routes() -> BoxedFilter<(Response,)> {
    let index = route(
        "GET",
        "/",
        warp::path::end()
            .and(warp::get())
            .and_then(|| async { asset("index.html") }),
    );
    let assets = route(
        "GET",
        "/assets/{file}",
        warp::path!("assets" / String)
            .and(warp::get())
            .and_then(|name: String| async move { asset(&format!("assets/{name}")) }),
    );
    // The first-run setup page; its form posts to /api/v1/setup with the link's token.
    let setup = route(
        "GET",
        "/setup",
        warp::path!("setup")
            .and(warp::get())
            .and_then(|| async { asset("setup.html") }),
    );
    index.or(assets).unify().or(setup).unify().boxed()
}

fn asset(path: &str) -> Result<Response, warp::Rejection> {
    let file = Assets::get(path).ok_or_else(|| warp::reject::custom(ApiError::NotFound))?;
    let mime = match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    };
    let mut resp = file.data.into_owned().into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    Ok(resp)
}
