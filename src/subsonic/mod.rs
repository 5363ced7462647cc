//! The OpenSubsonic API (`/rest/`, Subsonic 1.16.1 plus OpenSubsonic extensions) for the
//! players' apps people already use. It translates: who may see a track is the track
//! service's rule, browsing is `library::catalog`, playlists `library::playlists`; streams,
//! downloads and covers answer 302 to a freshly signed URL from the same signing chain as
//! `/api/v1/tracks/{id}/stream`, so the audio comes from the CDN edge, not from here.

use std::net::IpAddr;

use bytes::Bytes;
use serde_json::{Map, Value};
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, Method};
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::accounts::User;
use crate::http::filters::{client_ip, with_state};
use crate::http::route;
use crate::http::state::AppState;
use crate::library::catalog::Scope;
use crate::tracks::{Viewer, lists_everything};

mod auth;
mod browse;
pub mod error;
pub mod ids;
mod items;
mod lists;
mod params;
pub mod response;
mod streams;
mod system;

use error::SubsonicError;
use params::Params;
use response::Format;

/// Route template for metrics and logs (the method name is not a label: unbounded).
const TEMPLATE: &str = "/rest/{method}";
/// Largest form body accepted (`formPost`): parameters only, never uploads.
const MAX_FORM_BYTES: u64 = 64 * 1024;

/// One authenticated call.
pub(crate) struct Ctx {
    s: AppState,
    user: User,
    viewer: Viewer,
    p: Params,
    ip: IpAddr,
    headers: HeaderMap,
    head: bool,
}

impl Ctx {
    /// Runs `f` on the database thread with the caller's view of the library (the track
    /// service's listing rule and the caller's own plays and stars).
    async fn query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Connection, &Scope<'_>) -> Result<T, crate::library::LibraryError>
        + Send
        + 'static,
    ) -> Result<T, SubsonicError> {
        let public_only = !lists_everything(self.viewer);
        let user = self.user.id.clone();
        Ok(self
            .s
            .db
            .call(move |db| {
                let scope = Scope {
                    public_only,
                    user_id: &user,
                };
                f(db, &scope)
            })
            .await?)
    }
}

/// What a handler answers.
pub(crate) enum Answer {
    /// Fields of a successful `subsonic-response`.
    Body(Map<String, Value>),
    /// A response of its own (a redirect, proxied bytes).
    Raw(Response),
}

/// An empty success.
fn empty() -> Result<Answer, SubsonicError> {
    Ok(Answer::Body(Map::new()))
}

/// A success with one field.
fn one(key: &str, v: impl Into<Value>) -> Result<Answer, SubsonicError> {
    let mut m = Map::new();
    m.insert(key.into(), v.into());
    Ok(Answer::Body(m))
}

/// `GET|HEAD|POST /rest/{method}` (and `{method}.view`).
pub(crate) fn routes(s: &AppState) -> BoxedFilter<(Response,)> {
    let raw_query = || warp::query::raw().or(warp::any().map(String::new)).unify();
    let get = route(
        "GET",
        TEMPLATE,
        warp::path!("rest" / String)
            .and(warp::get().or(warp::head()).unify())
            .and(warp::method())
            .and(raw_query())
            .and(warp::any().map(Bytes::new))
            .and(warp::header::headers_cloned())
            .and(client_ip())
            .and(with_state(s))
            .and_then(handle),
    );
    let post = route(
        "POST",
        TEMPLATE,
        warp::path!("rest" / String)
            .and(warp::post())
            .and(warp::method())
            .and(raw_query())
            .and(warp::body::content_length_limit(MAX_FORM_BYTES))
            .and(warp::body::bytes())
            .and(warp::header::headers_cloned())
            .and(client_ip())
            .and(with_state(s))
            .and_then(handle),
    );
    get.or(post).unify().boxed()
}

async fn handle(
    method: String,
    m: Method,
    query: String,
    body: Bytes,
    headers: HeaderMap,
    ip: IpAddr,
    s: AppState,
) -> Result<Response, Rejection> {
    let p = Params::parse(&[query.as_bytes(), &body]);
    let format = Format::parse(p.get("f"));
    if !s.config.subsonic.enabled {
        return Err(warp::reject::not_found());
    }
    let name = method.strip_suffix(".view").unwrap_or(&method).to_owned();
    let user = match auth::authenticate(&s, &p, ip).await {
        Ok(u) => u,
        Err(e) => return Ok(response::failed(format, e.code(), &e.to_string())),
    };
    let ctx = Ctx {
        viewer: Viewer::of_role(user.role),
        s,
        user,
        p,
        ip,
        headers,
        head: m == Method::HEAD,
    };
    Ok(match dispatch(&name, &ctx).await {
        Ok(Answer::Body(b)) => response::ok(format, b),
        Ok(Answer::Raw(r)) => r,
        Err(e) => {
            tracing::debug!(method = %name.chars().take(64).collect::<String>(), code = e.code(), error = %e, "subsonic call failed");
            response::failed(format, e.code(), &e.to_string())
        }
    })
}

async fn dispatch(name: &str, c: &Ctx) -> Result<Answer, SubsonicError> {
    match name {
        "ping" => empty(),
        "getLicense" => system::license(),
        "getOpenSubsonicExtensions" => system::extensions(),
        "getUser" => system::user(c).await,
        "getMusicFolders" => system::music_folders(),
        "getIndexes" => browse::indexes(c).await,
        "getArtists" => browse::artists(c).await,
        "getArtist" => browse::artist(c).await,
        "getAlbum" => browse::album(c).await,
        "getAlbumList2" => browse::album_list2(c).await,
        "getMusicDirectory" => browse::music_directory(c).await,
        "getSong" => browse::song(c).await,
        "getRandomSongs" => browse::random_songs(c).await,
        "getGenres" => browse::genres(c).await,
        "search2" => browse::search(c, false).await,
        "search3" => browse::search(c, true).await,
        "stream" => streams::stream(c).await,
        "download" => streams::download(c).await,
        "hls.m3u8" => streams::hls(c).await,
        "getCoverArt" => streams::cover_art(c).await,
        "scrobble" => lists::scrobble(c).await,
        "getPlaylists" => lists::playlists(c).await,
        "getPlaylist" => lists::playlist(c).await,
        "createPlaylist" => lists::create_playlist(c).await,
        "updatePlaylist" => lists::update_playlist(c).await,
        "deletePlaylist" => lists::delete_playlist(c).await,
        "star" => lists::star(c, true).await,
        "unstar" => lists::star(c, false).await,
        "getStarred2" => lists::starred2(c).await,
        other => Err(SubsonicError::UnknownMethod(
            other.chars().take(64).collect(),
        )),
    }
}
