//! Stream URLs: which object a player gets (the HLS master or the original), signed by the
//! provider chain, and reused from the cache for every viewer while it is young.

use std::net::IpAddr;

use super::{TrackError, TrackService, Verdict, Viewer, may_view};
use crate::cache::{StreamKey, mostly_fresh};
use crate::config::CdnProvider;
use crate::library::store;
use crate::library::{OwnerKey, TrackAccess, TrackId};
use crate::signing::{SignRequest, SignedUrl};
use crate::storage::BlobKey;

/// Which rendition a player asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFormat {
    /// The HLS master playlist (a directory token covers its folder).
    Hls,
    /// The original file.
    Original,
    /// One file of at most this many kbps: the original when it fits (or its bitrate is
    /// unknown), else the progressive AAC rendition of the largest rung not above it (the
    /// lowest rung when none is). The original until the track is packaged.
    AtMost(u32),
    /// The cover art (`NotFound` when the track has none).
    Cover,
}

/// What gets signed.
enum Target {
    /// A master playlist: its folder is signed.
    Hls(BlobKey),
    /// One object.
    Object(BlobKey),
}

/// The progressive rung for a cap of `max_kbps` among ascending `rungs`.
fn pick_rung(rungs: &[(u32, BlobKey)], max_kbps: u32) -> Option<&BlobKey> {
    rungs
        .iter()
        .rev()
        .find(|(k, _)| *k <= max_kbps)
        .or(rungs.first())
        .map(|(_, key)| key)
}

/// The object `format` names for a track `viewer` may play.
async fn target(
    svc: &TrackService,
    viewer: Viewer,
    id: &TrackId,
    format: Option<StreamFormat>,
) -> Result<(TrackAccess, Target), TrackError> {
    let s = &svc.inner;
    let owners = svc.owners(OwnerKey::Track(id.as_str().to_owned())).await?;
    let t = owners
        .first()
        .ok_or(TrackError::Library(crate::library::LibraryError::NotFound))?;
    match may_view(viewer, t.visibility, t.status, super::Purpose::Play) {
        Verdict::Allowed => {}
        Verdict::TakenDown => return Err(TrackError::TakenDown),
        other => return Err(TrackError::Hidden(other)),
    }
    let target = match (format, &t.hls_key) {
        (Some(StreamFormat::Hls) | None, Some(key)) => Target::Hls(key.clone()),
        (Some(StreamFormat::Hls), None) => return Err(TrackError::HlsNotReady),
        (Some(StreamFormat::Original) | None, _) => Target::Object(t.original_key.clone()),
        (Some(StreamFormat::Cover), _) => Target::Object(
            t.cover_key
                .clone()
                .ok_or(TrackError::Library(crate::library::LibraryError::NotFound))?,
        ),
        (Some(StreamFormat::AtMost(max)), _) => {
            let tid = t.id.clone();
            let (source, rungs) = s.db.call(move |c| store::progressive(c, &tid)).await?;
            match (source, pick_rung(&rungs, max)) {
                (Some(kbps), _) if kbps <= max => Target::Object(t.original_key.clone()),
                (_, Some(key)) => Target::Object(key.clone()),
                (_, None) => Target::Object(t.original_key.clone()),
            }
        }
    };
    Ok((t.clone(), target))
}

/// The one object `format` names (not the HLS tree) and its content type, for a caller that
/// sends the bytes itself.
pub(super) async fn stream_object(
    svc: &TrackService,
    viewer: Viewer,
    id: &TrackId,
    format: StreamFormat,
) -> Result<BlobKey, TrackError> {
    match target(svc, viewer, id, Some(format)).await? {
        (_, Target::Object(key)) => Ok(key),
        (_, Target::Hls(_)) => Err(TrackError::HlsNotReady),
    }
}

pub(super) async fn stream_url(
    svc: &TrackService,
    viewer: Viewer,
    id: &TrackId,
    format: Option<StreamFormat>,
    ip: IpAddr,
) -> Result<SignedUrl, TrackError> {
    let s = &svc.inner;
    let (t, target) = target(svc, viewer, id, format).await?;
    let mut req = sign_request(s, String::new(), ip);
    let issued_at = req.now;
    // The same URL for every viewer of a track while it is young: fewer signatures, and
    // browsers and edges see one URL instead of one per request.
    let cache_key = StreamKey {
        track: t.id.to_string(),
        object: match &target {
            Target::Hls(k) | Target::Object(k) => k.to_string(),
        },
        ip: req.ip,
    };
    let cached = s.caches.stream_url.get_if(&cache_key, |(u, signed_at)| {
        mostly_fresh(*signed_at, u.expires_at, issued_at)
    });
    if let Some((u, _)) = cached {
        return Ok(u);
    }
    let generation = s.caches.stream_url.generation();
    let signed = match target {
        Target::Hls(master) => {
            req.path = format!("/{master}");
            // The folder of the master playlist: every media playlist and segment is below it.
            req.token_path = Some(req.path[..=req.path.rfind('/').unwrap_or(0)].to_owned());
            req.path_form = Some(true);
            s.cdn.sign_directory(&req)
        }
        Target::Object(key) => {
            req.path = format!("/{key}");
            s.cdn.sign(&req)
        }
    }?;
    // A fallback URL is not kept: the primary provider may be back for the next viewer.
    if !signed.fallback {
        s.caches
            .stream_url
            .insert(cache_key, (signed.clone(), issued_at), generation);
    }
    Ok(signed)
}

/// A request to sign `path` now for a viewer at `ip`.
fn sign_request(s: &super::Inner, path: String, ip: IpAddr) -> SignRequest {
    let cfg = &s.config.cdn;
    let issued_at = u64::try_from(crate::clock::now()).unwrap_or_default();
    let mut req = SignRequest::new(path, issued_at);
    // Binding is a Bunny zone setting; the local fallback then binds the same viewer.
    if s.cdn.is_enabled() && cfg.provider == CdnProvider::Bunny && cfg.bunny.ip_binding {
        req.ip = Some(ip);
    }
    req
}

/// A signed URL of the track's waveform peaks for a viewer who may play it; `None` before
/// the track is analysed or when the viewer may not play it.
pub(super) async fn peaks_url(
    svc: &TrackService,
    viewer: Viewer,
    id: &TrackId,
    ip: IpAddr,
) -> Result<Option<String>, TrackError> {
    let owners = svc.owners(OwnerKey::Track(id.as_str().to_owned())).await?;
    let Some(t) = owners.first() else {
        return Ok(None);
    };
    let Some(key) = &t.peaks_key else {
        return Ok(None);
    };
    if may_view(viewer, t.visibility, t.status, super::Purpose::Play) != Verdict::Allowed {
        return Ok(None);
    }
    let req = sign_request(&svc.inner, format!("/{key}"), ip);
    Ok(Some(svc.inner.cdn.sign(&req)?.url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_rung_under_the_cap_else_the_lowest() {
        let key = |k: u32| -> BlobKey { format!("tracks/x/hls/seg/{k}.m4a").parse().unwrap() };
        let rungs = [(64, key(64)), (128, key(128)), (256, key(256))];
        assert_eq!(pick_rung(&rungs, 200), Some(&key(128)));
        assert_eq!(pick_rung(&rungs, 128), Some(&key(128)));
        assert_eq!(pick_rung(&rungs, 32), Some(&key(64)));
        assert_eq!(pick_rung(&rungs, 999), Some(&key(256)));
        assert_eq!(pick_rung(&[], 128), None);
    }
}
