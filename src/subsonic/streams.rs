//! `stream`, `download`, `hls.m3u8` and `getCoverArt`: a 302 to a freshly signed URL from the
//! track service (the same chain, fallbacks, cache and metrics as the stream API), so players
//! fetch the bytes from the CDN edge. Clients known not to follow redirects (and users who ask)
//! get the bytes through Veza instead, read from the store: no request goes out with the
//! caller's credentials.

use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use super::error::SubsonicError;
use super::ids::{self, ItemId};
use super::{Answer, Ctx};
use crate::library::{TrackId, catalog};
use crate::tracks::StreamFormat;

fn track_id(id: &str) -> Result<TrackId, SubsonicError> {
    id.parse()
        .map_err(|_| SubsonicError::NotFound("no such song"))
}

/// Whether this call gets the bytes instead of a redirect.
fn proxied(c: &Ctx) -> bool {
    let client = c.p.get("c").unwrap_or("");
    c.user.stream_proxy
        || c.s
            .config
            .subsonic
            .proxy_clients
            .iter()
            .any(|n| n.eq_ignore_ascii_case(client))
}

fn redirect(url: &str) -> Result<Answer, SubsonicError> {
    let mut resp = Response::new("".into());
    *resp.status_mut() = StatusCode::FOUND;
    let h = resp.headers_mut();
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(url).map_err(|_| SubsonicError::Internal)?,
    );
    // The URL is signed for now; a cached redirect would outlive it.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(Answer::Raw(resp))
}

/// One object of a track, redirected to or proxied.
async fn deliver(c: &Ctx, id: TrackId, format: StreamFormat) -> Result<Answer, SubsonicError> {
    if proxied(c) && format != StreamFormat::Hls {
        let key = c.s.tracks.stream_object(c.viewer, &id, format).await?;
        let resp = crate::http::media::send_object(&c.s, &key, &c.headers, c.head, c.ip)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "subsonic: proxied stream failed");
                SubsonicError::Internal
            })?;
        return Ok(Answer::Raw(resp));
    }
    let signed =
        c.s.tracks
            .stream_url(c.viewer, &id, Some(format), c.ip)
            .await?;
    redirect(&signed.url)
}

pub(super) async fn stream(c: &Ctx) -> Result<Answer, SubsonicError> {
    let id = track_id(c.p.require("id")?)?;
    let format = match (c.p.get("format"), c.p.opt_num("maxBitRate")?) {
        (Some("raw"), _) => StreamFormat::Original,
        (_, Some(kbps)) if kbps > 0 => StreamFormat::AtMost(kbps),
        _ => StreamFormat::Original,
    };
    deliver(c, id, format).await
}

pub(super) async fn download(c: &Ctx) -> Result<Answer, SubsonicError> {
    let id = track_id(c.p.require("id")?)?;
    deliver(c, id, StreamFormat::Original).await
}

pub(super) async fn hls(c: &Ctx) -> Result<Answer, SubsonicError> {
    let id = track_id(c.p.require("id")?)?;
    deliver(c, id, StreamFormat::Hls).await
}

pub(super) async fn cover_art(c: &Ctx) -> Result<Answer, SubsonicError> {
    let id = c.p.require("id")?;
    let none = SubsonicError::NotFound("no cover art");
    let track = match ids::parse(id).ok_or(SubsonicError::NotFound("no cover art"))? {
        ItemId::Song(t) => t,
        item => {
            let cover = c
                .query(move |db, scope| {
                    Ok(match item {
                        ItemId::Artist(a) => catalog::artist(db, scope, &a)?.and_then(|x| x.cover),
                        ItemId::Album(a, b) => {
                            catalog::album(db, scope, &a, &b)?.and_then(|x| x.cover)
                        }
                        ItemId::Song(t) => Some(t),
                    })
                })
                .await?;
            cover.ok_or(none)?
        }
    };
    deliver(c, track, StreamFormat::Cover).await
}
