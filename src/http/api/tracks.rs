//! `/api/v1/tracks`: upload (multipart, streamed to disk), list and search, read, edit,
//! delete, cover art. Anonymous callers see public tracks (and unlisted ones by id).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;
use warp::{Buf, Filter, Rejection, Reply};

use crate::accounts::Role;
use crate::http::auth::viewer_of;
use crate::http::auth::{Principal, require, viewer};
use crate::http::error::ApiError;
use crate::http::error::ErrorEnvelope;
use crate::http::filters::{
    body_error, body_timeout, client_ip, json_body, stall_limited, with_state,
};
use crate::http::route;
use crate::http::state::AppState;
use crate::library::ingest::{Outcome, Overrides, spool};
use crate::library::store::{Query, Sort, TrackChange};
use crate::library::{Track, TrackId, Visibility};

const JSON: &[&str] = &["application/json"];
/// Largest text field in an upload form.
const MAX_FIELD_BYTES: usize = 4096;
/// Room for the form's other fields and part headers on top of the file itself.
const FORM_OVERHEAD_BYTES: u64 = 64 * 1024;
/// Bytes multer may buffer before handing us anything (a preamble or one part's headers):
/// a body's chunks are at most a few tens of KiB, so this never trips on a real form.
const MAX_UNYIELDED_BYTES: usize = 256 * 1024;

/// Query string of `GET /api/v1/tracks`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Search title, artist and album (every word as a prefix).
    pub q: Option<String>,
    /// Exact artist (case-insensitive).
    pub artist: Option<String>,
    /// Exact album (case-insensitive).
    pub album: Option<String>,
    /// `public`, `unlisted` or `private` (signed-in callers).
    pub visibility: Option<String>,
    /// `processing`, `ready`, `failed` or `taken_down` (signed-in callers).
    pub status: Option<String>,
    /// `relevance` (the default with `q`; needs `q`), `newest` (the default without `q`),
    /// `oldest`, `title`, `artist`, `album`.
    pub sort: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1-200 (default 50).
    pub limit: Option<u32>,
}

/// A page of tracks.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrackPage {
    /// The tracks.
    pub tracks: Vec<Track>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Editable metadata; absent fields stay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchTrack {
    /// Non-empty title.
    pub title: Option<String>,
    /// Artist.
    pub artist: Option<String>,
    /// Album.
    pub album: Option<String>,
    /// Track number (null clears it).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<u32>)]
    pub track_number: Option<Option<u32>>,
    /// `public`, `unlisted` or `private`.
    #[schema(value_type = Option<String>)]
    pub visibility: Option<Visibility>,
    /// Replaces the tags (each 1-64 chars, at most 32).
    pub tags: Option<Vec<String>>,
}

fn double_option<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u32>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

/// Multipart upload form (documentation only; the handler streams it).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The audio file (mp3, flac, m4a/aac, ogg/opus, wav).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// Overrides the file's title tag.
    title: Option<String>,
    /// Overrides the artist tag.
    artist: Option<String>,
    /// Overrides the album tag.
    album: Option<String>,
    /// `public` (default), `unlisted` or `private`.
    visibility: Option<String>,
}

/// Every tracks route.
pub(crate) fn routes(s: &AppState) -> BoxedFilter<(Response,)> {
    let upload = route(
        "POST",
        "/api/v1/tracks",
        warp::path!("api" / "v1" / "tracks")
            .and(warp::post())
            .and(require(s, Role::Editor))
            .and(with_state(s))
            .and(warp::header::optional::<String>("content-type"))
            .and(warp::header::optional::<u64>("content-length"))
            .and(body_timeout())
            .and(warp::body::stream())
            .and_then(upload),
    );
    let list = route(
        "GET",
        "/api/v1/tracks",
        warp::path!("api" / "v1" / "tracks")
            .and(warp::get())
            .and(viewer(s))
            .and(with_state(s))
            .and(crate::http::filters::raw_query())
            .and_then(list),
    );
    let get = route(
        "GET",
        "/api/v1/tracks/{id}",
        warp::path!("api" / "v1" / "tracks" / TrackId)
            .and(warp::get())
            .and(viewer(s))
            .and(client_ip())
            .and(with_state(s))
            .and_then(get),
    );
    let patch = route(
        "PATCH",
        "/api/v1/tracks/{id}",
        warp::path!("api" / "v1" / "tracks" / TrackId)
            .and(warp::patch())
            .and(require(s, Role::Editor))
            .and(with_state(s))
            .and(json_body::<PatchTrack>(
                s.config.server.max_json_bytes,
                JSON,
            ))
            .and_then(patch),
    );
    let delete = route(
        "DELETE",
        "/api/v1/tracks/{id}",
        warp::path!("api" / "v1" / "tracks" / TrackId)
            .and(warp::delete())
            .and(require(s, Role::Editor))
            .and(with_state(s))
            .and_then(delete),
    );
    let cover = route(
        "GET",
        "/api/v1/tracks/{id}/cover",
        warp::path!("api" / "v1" / "tracks" / TrackId / "cover")
            .and(warp::get())
            .and(viewer(s))
            .and(with_state(s))
            .and_then(cover),
    );
    upload
        .or(list)
        .unify()
        .or(get)
        .unify()
        .or(patch)
        .unify()
        .or(delete)
        .unify()
        .or(cover)
        .unify()
        .boxed()
}

#[utoipa::path(post, path = "/api/v1/tracks", tag = "tracks",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    security(("session" = []), ("bearer" = [])),
    responses((status = 201, description = "Created", body = Track),
              (status = 200, description = "Byte-identical to an existing track: that track", body = Track),
              (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 413, description = "Over storage.max_upload_bytes", body = ErrorEnvelope),
              (status = 415, description = "Not multipart, or not audio", body = ErrorEnvelope),
              (status = 503, description = "The media store is unavailable (code store_unavailable, with retry-after); nothing was stored", body = ErrorEnvelope),
              (status = 507, description = "A disk or the media store is full (code insufficient_storage, the message says which); nothing was kept", body = ErrorEnvelope)))]
async fn upload<S, B>(
    who: Principal,
    s: AppState,
    ct: Option<String>,
    len: Option<u64>,
    idle: Duration,
    body: S,
) -> Result<Response, Rejection>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>> + Send + Unpin + 'static,
    B: Buf + Send + 'static,
{
    let limit = s.config.storage.max_upload_bytes;
    // The store was found down moments ago: say so now, not after receiving the whole file.
    if s.ready
        .store_known_unavailable(s.config.server.readyz_check)
    {
        return Err(warp::reject::custom(ApiError::StoreUnavailable));
    }
    let ct = ct.unwrap_or_default();
    let boundary = multer::parse_boundary(&ct).map_err(|_| {
        warp::reject::custom(ApiError::UnsupportedMediaType {
            expected: "multipart/form-data".into(),
        })
    })?;
    if len.is_some_and(|l| l > limit + FORM_OVERHEAD_BYTES) {
        return Err(warp::reject::custom(ApiError::PayloadTooLarge { limit }));
    }
    let guard = Arc::new(Unyielded::default());
    let fed = guard.clone();
    let bytes = stall_limited(body.map_ok(|mut b| b.copy_to_bytes(b.remaining())), idle).map(
        move |chunk| {
            let chunk = chunk?;
            // Bytes multer holds without handing any to us: a preamble or part headers.
            if fed.fed(chunk.len()) > MAX_UNYIELDED_BYTES {
                return Err(std::io::Error::other(format!(
                    "part headers or preamble longer than {} KiB",
                    MAX_UNYIELDED_BYTES / 1024
                )));
            }
            Ok(chunk)
        },
    );
    // The whole stream is bounded with or without a Content-Length (chunked bodies too).
    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(limit + FORM_OVERHEAD_BYTES));
    let mut form = multer::Multipart::with_constraints(bytes, boundary, constraints);
    let mut over = Overrides::default();
    let mut file = None;
    let mut file_name = String::new();
    let bad = |m: String| {
        warp::reject::custom(ApiError::BadRequest {
            code: "invalid_form",
            message: m,
        })
    };
    let form_error = |e: multer::Error| match e {
        multer::Error::StreamSizeExceeded { .. } => {
            warp::reject::custom(ApiError::PayloadTooLarge { limit })
        }
        multer::Error::StreamReadFailed(inner) => match inner.downcast::<std::io::Error>() {
            Ok(io) => warp::reject::custom(body_error(*io)),
            Err(other) => bad(format!("malformed multipart body: {other}")),
        },
        e => bad(format!("malformed multipart body: {e}")),
    };
    while let Some(field) = form.next_field().await.map_err(form_error)? {
        guard.yielded();
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "file" if file.is_some() => {
                return Err(bad("the form has more than one `file` field".into()));
            }
            "file" => {
                file_name = field.file_name().unwrap_or("upload").to_owned();
                let g = guard.clone();
                let field = field.inspect(move |_| g.yielded());
                let spool_dir = crate::datadir::spool_dir(&s.config.data_dir);
                let spooled = spool(field, &spool_dir, limit)
                    .await
                    .map_err(ApiError::from)?;
                file = Some(spooled);
            }
            "title" | "artist" | "album" | "visibility" => {
                let text = read_small(field, &guard).await.map_err(bad)?;
                match name.as_str() {
                    "title" => over.title = Some(text),
                    "artist" => over.artist = Some(text),
                    "album" => over.album = Some(text),
                    _ => over.visibility = Some(text.parse().map_err(bad)?),
                }
            }
            other => {
                return Err(bad(format!(
                    "unknown form field {other:?}; expected file, title, artist, album, visibility"
                )));
            }
        }
    }
    let file = file.ok_or_else(|| bad("the form has no `file` field".into()))?;
    let fallback = std::path::Path::new(&file_name)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("Untitled")
        .to_owned();
    let outcome = s
        .tracks
        .ingest()
        .file(
            &file.path,
            &file.sha256,
            file.size,
            &over,
            &fallback,
            Some(who.user.id.clone()),
        )
        .await
        .map_err(ApiError::from)?;
    let (status, track) = match outcome {
        Outcome::Created(t) => {
            tracing::info!(track_id = %t.id, by = %who.user.id, size = t.size_bytes, "track uploaded");
            (StatusCode::CREATED, t)
        }
        Outcome::Duplicate(t) => (StatusCode::OK, t),
    };
    Ok(warp::reply::with_status(warp::reply::json(&track), status).into_response())
}

/// Counts bytes fed to multer since it last handed us a field or data.
#[derive(Debug, Default)]
struct Unyielded(std::sync::atomic::AtomicUsize);

impl Unyielded {
    fn fed(&self, n: usize) -> usize {
        self.0.fetch_add(n, std::sync::atomic::Ordering::AcqRel) + n
    }
    fn yielded(&self) {
        self.0.store(0, std::sync::atomic::Ordering::Release);
    }
}

async fn read_small(mut field: multer::Field<'_>, guard: &Unyielded) -> Result<String, String> {
    let mut buf = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| e.to_string())? {
        guard.yielded();
        buf.extend_from_slice(&chunk);
        if buf.len() > MAX_FIELD_BYTES {
            return Err(format!("form field longer than {MAX_FIELD_BYTES} bytes"));
        }
    }
    String::from_utf8(buf)
        .map(|s| s.trim().to_owned())
        .map_err(|_| "form field is not UTF-8".into())
}

/// What anonymous listeners are not told: why packaging failed (ffmpeg's own words).
fn hide_internals(t: &mut Track) {
    t.status_detail = None;
}

#[utoipa::path(get, path = "/api/v1/tracks", tag = "tracks", params(ListParams),
    responses((status = 200, body = TrackPage), (status = 400, body = ErrorEnvelope)))]
async fn list(who: Option<Principal>, s: AppState, raw: String) -> Result<Response, Rejection> {
    let p: ListParams = serde_urlencoded::from_str(&raw)
        .map_err(|e| warp::reject::custom(ApiError::InvalidQuery(format!("invalid query: {e}"))))?;
    let bad = |field: &'static str| {
        move |m: String| {
            warp::reject::custom(ApiError::BadRequest {
                code: "invalid_query",
                message: format!("{field}: {m}"),
            })
        }
    };
    let q = Query {
        q: p.q,
        artist: p.artist,
        album: p.album,
        visibility: p
            .visibility
            .map(|v| v.parse())
            .transpose()
            .map_err(bad("visibility"))?,
        status: p
            .status
            .map(|v| v.parse())
            .transpose()
            .map_err(bad("status"))?,
        // Set by the track service from the viewer: the listing rule is `may_view`'s.
        public_only: true,
        sort: p
            .sort
            .map(|v| {
                Sort::parse(&v).ok_or_else(|| {
                    format!("{v:?} is not relevance, newest, oldest, title, artist or album")
                })
            })
            .transpose()
            .map_err(bad("sort"))?,
        cursor: p.cursor,
        limit: p.limit,
    };
    let page = s
        .tracks
        .list(viewer_of(&who), q)
        .await
        .map_err(ApiError::from)?;
    let mut tracks = page.tracks;
    if who.is_none() {
        tracks.iter_mut().for_each(hide_internals);
    }
    Ok(warp::reply::json(&TrackPage {
        tracks,
        next_cursor: page.next_cursor,
    })
    .into_response())
}

async fn find_visible(
    s: &AppState,
    who: &Option<Principal>,
    id: TrackId,
) -> Result<Track, Rejection> {
    Ok(s.tracks
        .get(viewer_of(who), id)
        .await
        .map_err(ApiError::from)?)
}

#[utoipa::path(get, path = "/api/v1/tracks/{id}", tag = "tracks", params(("id" = String, Path, description = "Track id")),
    responses((status = 200, body = Track), (status = 404, body = ErrorEnvelope)))]
async fn get(
    id: TrackId,
    who: Option<Principal>,
    ip: std::net::IpAddr,
    s: AppState,
) -> Result<Response, Rejection> {
    let mut t = find_visible(&s, &who, id).await?;
    t.peaks_url = s
        .tracks
        .peaks_url(viewer_of(&who), &t.id, ip)
        .await
        .map_err(ApiError::from)?;
    if who.is_none() {
        hide_internals(&mut t);
    }
    Ok(warp::reply::json(&t).into_response())
}

/// Edits metadata, visibility and tags.
#[utoipa::path(patch, path = "/api/v1/tracks/{id}", tag = "tracks", request_body = PatchTrack,
    params(("id" = String, Path, description = "Track id")), security(("session" = []), ("bearer" = [])),
    responses((status = 200, body = Track), (status = 400, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn patch(
    id: TrackId,
    who: Principal,
    s: AppState,
    req: PatchTrack,
) -> Result<Response, Rejection> {
    let change = TrackChange {
        title: req.title,
        artist: req.artist,
        album: req.album,
        track_number: req.track_number,
        visibility: req.visibility,
        tags: req.tags,
    };
    let t = s.tracks.edit(id, change).await.map_err(ApiError::from)?;
    tracing::info!(track_id = %t.id, by = %who.user.id, "track edited");
    Ok(warp::reply::json(&t).into_response())
}

/// Deletes a track and every blob no other track references.
#[utoipa::path(delete, path = "/api/v1/tracks/{id}", tag = "tracks",
    params(("id" = String, Path, description = "Track id")), security(("session" = []), ("bearer" = [])),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope)))]
async fn delete(id: TrackId, who: Principal, s: AppState) -> Result<Response, Rejection> {
    s.tracks.delete(&id).await.map_err(ApiError::from)?;
    tracing::info!(track_id = %id, by = %who.user.id, "track deleted");
    Ok(warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT).into_response())
}

/// The track's cover art.
#[utoipa::path(get, path = "/api/v1/tracks/{id}/cover", tag = "tracks", params(("id" = String, Path, description = "Track id")),
    responses((status = 200, description = "The image", content_type = "image/*"), (status = 404, body = ErrorEnvelope)))]
async fn cover(id: TrackId, who: Option<Principal>, s: AppState) -> Result<Response, Rejection> {
    let t = find_visible(&s, &who, id).await?;
    let key = t
        .cover_key
        .ok_or_else(|| warp::reject::custom(ApiError::NotFound))?;
    let mime = match key.as_str().rsplit('.').next() {
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        _ => "image/jpeg",
    };
    let obj = s.store.get(&key, None).await.map_err(|e| {
        tracing::error!(error = %e, "cover blob unreadable");
        warp::reject::custom(ApiError::Internal)
    })?;
    let body = sync_wrapper::SyncStream::new(obj.body);
    let mut resp = warp::reply::stream(body).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(obj.size));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000"),
    );
    Ok(resp)
}
