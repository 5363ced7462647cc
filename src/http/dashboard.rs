//! The admin dashboard and the public embed player, bundled by build.rs (esbuild) into
//! `target/dashboard` and embedded in the binary: works offline, nothing from a CDN.
//! Every page gets a strict Content-Security-Policy; hashed assets are cached for a year.

use rust_embed::RustEmbed;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, header};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::filters::with_state;
use super::route;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::library::{Track, TrackId};
use crate::tracks::access::Viewer;

#[derive(RustEmbed)]
#[folder = "target/dashboard/"]
struct Assets;

/// The dashboard's client-side pages (one HTML shell; the script routes).
const PAGES: [&str; 6] = ["login", "setup", "library", "jobs", "users", "settings"];

/// `GET /`, `/{page}`, `/tracks/{id}`, `/embed/{id}` and `/assets/{file}`.
pub(crate) fn routes(s: &AppState) -> BoxedFilter<(Response,)> {
    let csp = Csp::new(s);
    let c = csp.clone();
    let index = route(
        "GET",
        "/",
        warp::path::end()
            .and(warp::get())
            .map(move || page("index.html", &c.dashboard)),
    );
    let c = csp.clone();
    let pages = route(
        "GET",
        "/{page}",
        warp::path!(String)
            .and(warp::get())
            .and_then(move |p: String| {
                let c = c.clone();
                async move {
                    if PAGES.contains(&p.as_str()) {
                        Ok(page("index.html", &c.dashboard))
                    } else {
                        Err(warp::reject::not_found())
                    }
                }
            }),
    );
    let c = csp.clone();
    let track = route(
        "GET",
        "/tracks/{id}",
        warp::path!("tracks" / TrackId)
            .and(warp::get())
            .map(move |_id: TrackId| page("index.html", &c.dashboard)),
    );
    let embed = route(
        "GET",
        "/embed/{id}",
        warp::path!("embed" / TrackId)
            .and(warp::get())
            .and(with_state(s))
            .and_then(move |id: TrackId, s: AppState| {
                let csp = csp.clone();
                async move { embed(id, s, &csp).await }
            }),
    );
    let assets = route(
        "GET",
        "/assets/{file}",
        warp::path!("assets" / String)
            .and(warp::get())
            .and_then(|name: String| async move { asset(&name) }),
    );
    index
        .or(pages)
        .unify()
        .or(track)
        .unify()
        .or(embed)
        .unify()
        .or(assets)
        .unify()
        .boxed()
}

/// The track `/embed/{id}` and oEmbed may show: one anyone may see by id. Private and
/// taken-down tracks look the same as missing ones to the public (404).
pub(crate) async fn embeddable(s: &AppState, id: TrackId) -> Result<Track, Rejection> {
    Ok(s.tracks
        .get(Viewer::Anonymous, id)
        .await
        .map_err(ApiError::from)?)
}

async fn embed(id: TrackId, s: AppState, csp: &Csp) -> Result<Response, Rejection> {
    embeddable(&s, id).await?;
    Ok(page("embed.html", &csp.embed))
}

/// The two policies, built once from the config.
#[derive(Clone)]
struct Csp {
    dashboard: Page,
    embed: Page,
}

#[derive(Clone)]
struct Page {
    csp: HeaderValue,
    /// `rum.sample_rate`, put into the page's meta tag.
    sample_rate: String,
}

impl Csp {
    fn new(s: &AppState) -> Csp {
        // hls.js fetches playlists and segments, and <audio> plays, from the CDN's host.
        let cdn = s
            .config
            .cdn
            .base_url
            .as_ref()
            .map(|u| format!(" {}", u.origin().ascii_serialization()))
            .unwrap_or_default();
        let policy = |ancestors: &str| {
            format!(
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:{cdn}; \
                 media-src 'self' blob:{cdn}; connect-src 'self'{cdn}; font-src 'self'; \
                 manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors {ancestors}"
            )
        };
        let sample_rate = s.config.rum.sample_rate.to_string();
        let value = |p: String| {
            HeaderValue::from_str(&p).expect("config validation keeps the CSP header-safe")
        };
        Csp {
            dashboard: Page {
                csp: value(policy("'none'")),
                sample_rate: sample_rate.clone(),
            },
            embed: Page {
                csp: value(policy(&s.config.embed.frame_ancestors)),
                sample_rate,
            },
        }
    }
}

/// An HTML page: never cached (it names the current hashed assets), strict CSP.
fn page(name: &str, p: &Page) -> Response {
    let Some(file) = Assets::get(name) else {
        return ApiError::NotFound.into_response();
    };
    let html =
        String::from_utf8_lossy(&file.data).replace("__VEZA_RUM_SAMPLE_RATE__", &p.sample_rate);
    let mut resp = html.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_SECURITY_POLICY, p.csp.clone());
    security_headers(h);
    resp
}

fn security_headers(h: &mut warp::http::HeaderMap) {
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// A bundled file. Every name esbuild writes carries a content hash, so it never changes.
fn asset(name: &str) -> Result<Response, Rejection> {
    let file = Assets::get(&format!("assets/{name}"))
        .ok_or_else(|| warp::reject::custom(ApiError::NotFound))?;
    let mime = match name.rsplit('.').next() {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("woff2") => "font/woff2",
        _ => "application/octet-stream",
    };
    let mut resp = file.data.into_owned().into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    security_headers(h);
    Ok(resp)
}
