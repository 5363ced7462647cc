//! After ffmpeg: every init and media segment is renamed to its SHA-256 under `seg/`, each
//! media playlist is rewritten to those names (m3u8-rs parses ffmpeg's and writes ours), the
//! bandwidths are measured from the real bytes and durations, and the master is written.
//! Blocking code: it runs on tokio's blocking pool.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use m3u8_rs::{MasterPlaylist, MediaPlaylist, MediaPlaylistType, VariantStream};
use sha2::{Digest, Sha256};

use super::{
    Analysis, CODECS, FileKind, HlsError, MASTER, OutFile, Packaged, Rendition, SEGMENT_DIR,
    io_err, raw_stem,
};

/// Turns ffmpeg's output for `rungs` in `work_dir` into the final tree; ffmpeg's own files are
/// gone afterwards.
pub(crate) fn finish(
    work_dir: &Path,
    rungs: &[u32],
    analysis: Analysis,
) -> Result<Packaged, HlsError> {
    let seg_dir = work_dir.join(SEGMENT_DIR);
    std::fs::create_dir_all(&seg_dir).map_err(io_err("create", &seg_dir))?;
    let mut blobs: BTreeMap<String, OutFile> = BTreeMap::new();
    let mut playlists = Vec::new();
    let mut renditions = Vec::new();
    for &kbps in rungs {
        let (rendition, file) = finish_rung(work_dir, kbps, &mut blobs)?;
        renditions.push(rendition);
        playlists.push(file);
    }
    remove_leftovers(work_dir)?;

    let master = master_playlist(&renditions);
    let master_path = work_dir.join(MASTER);
    std::fs::write(&master_path, master).map_err(io_err("write", &master_path))?;

    let mut files: Vec<OutFile> = blobs.into_values().collect();
    files.push(OutFile {
        name: analysis.peaks.clone(),
        path: analysis.peaks_path.clone(),
        kind: FileKind::Peaks,
    });
    files.extend(playlists);
    files.push(OutFile {
        name: MASTER.into(),
        path: master_path,
        kind: FileKind::Master,
    });
    Ok(Packaged {
        files,
        renditions,
        master: MASTER.into(),
        analysis,
    })
}

/// Renames one rung's segments, writes `{kbps}k.m3u8`, measures it.
fn finish_rung(
    work_dir: &Path,
    kbps: u32,
    blobs: &mut BTreeMap<String, OutFile>,
) -> Result<(Rendition, OutFile), HlsError> {
    let raw_name = format!("{}.m3u8", raw_stem(kbps));
    let raw_path = work_dir.join(&raw_name);
    let raw = std::fs::read(&raw_path).map_err(io_err("read", &raw_path))?;
    let mut pl = m3u8_rs::parse_media_playlist_res(&raw).map_err(|e| {
        HlsError::Playlist(format!(
            "{raw_name}: not a media playlist ({})",
            short(&format!("{e:?}"))
        ))
    })?;
    check_shape(&raw_name, &pl)?;

    // ffmpeg's name -> ours; an init segment is named once however many segments carry it.
    let mut renamed: HashMap<String, String> = HashMap::new();
    let mut rename = |uri: &str, kind: FileKind| -> Result<(String, u64), HlsError> {
        let from = work_dir.join(plain_name(&raw_name, uri)?);
        if let Some(name) = renamed.get(uri) {
            let size = std::fs::metadata(work_dir.join(name))
                .map_err(io_err("stat", &from))?
                .len();
            return Ok((name.clone(), size));
        }
        let (sha, size) = sha256_file(&from)?;
        let ext = match kind {
            FileKind::Init => "mp4",
            FileKind::Progressive => "m4a",
            _ => "m4s",
        };
        let name = format!("{SEGMENT_DIR}/{sha}.{ext}");
        let to = work_dir.join(&name);
        // Equal names mean equal bytes: a second copy simply replaces the first.
        std::fs::rename(&from, &to).map_err(io_err("rename", &from))?;
        blobs.insert(
            name.clone(),
            OutFile {
                name: name.clone(),
                path: to,
                kind,
            },
        );
        renamed.insert(uri.to_owned(), name.clone());
        Ok((name, size))
    };

    let mut sized = Vec::with_capacity(pl.segments.len());
    for seg in &mut pl.segments {
        if let Some(map) = &mut seg.map {
            map.uri = rename(&map.uri, FileKind::Init)?.0;
        }
        let (name, size) = rename(&seg.uri, FileKind::Segment)?;
        seg.uri = name;
        sized.push((f64::from(seg.duration), size));
    }
    let progressive = rename(&format!("{}.m4a", raw_stem(kbps)), FileKind::Progressive)?.0;
    let longest = sized.iter().map(|(d, _)| *d).fold(0.0, f64::max);
    // EXTINF rounded to the nearest second may not exceed the target (RFC 8216 §4.3.3.1).
    pl.target_duration = pl.target_duration.max(longest.round() as u64);
    pl.playlist_type = Some(MediaPlaylistType::Vod);
    pl.end_list = true;

    let name = format!("{kbps}k.m3u8");
    let path = work_dir.join(&name);
    let mut out = Vec::new();
    pl.write_to(&mut out)
        .map_err(|e| HlsError::Playlist(format!("{name}: {e}")))?;
    std::fs::write(&path, out).map_err(io_err("write", &path))?;
    std::fs::remove_file(&raw_path).map_err(io_err("remove", &raw_path))?;

    let total_secs: f64 = sized.iter().map(|(d, _)| d).sum();
    let bytes: u64 = sized.iter().map(|(_, s)| s).sum();
    let rendition = Rendition {
        bitrate_kbps: kbps,
        playlist: name.clone(),
        bandwidth: peak_bandwidth(&sized, pl.target_duration as f64),
        average_bandwidth: bits_per_sec(bytes, total_secs),
        codecs: CODECS.into(),
        segments: sized.len() as u32,
        duration_ms: (total_secs * 1000.0).round() as u64,
        progressive,
    };
    let file = OutFile {
        name,
        path,
        kind: FileKind::MediaPlaylist,
    };
    Ok((rendition, file))
}

/// What Veza relies on in ffmpeg's playlist: VOD, complete, fMP4 with one init segment.
fn check_shape(name: &str, pl: &MediaPlaylist) -> Result<(), HlsError> {
    let bad = |what: &str| Err(HlsError::Playlist(format!("{name}: {what}")));
    let Some(first) = pl.segments.first() else {
        return bad("no segment");
    };
    if !pl.end_list {
        return bad("no #EXT-X-ENDLIST: ffmpeg stopped early");
    }
    let Some(map) = &first.map else {
        return bad("no #EXT-X-MAP: not fMP4");
    };
    if pl
        .segments
        .iter()
        .any(|s| s.map.as_ref().is_some_and(|m| m.uri != map.uri))
    {
        return bad("more than one init segment");
    }
    if pl
        .segments
        .iter()
        .any(|s| s.byte_range.is_some() || s.key.is_some())
        || map.byte_range.is_some()
    {
        return bad("byte ranges or keys, which Veza never asks for");
    }
    Ok(())
}

/// A URI from ffmpeg's playlist as a file name in the work dir: nothing else is accepted.
fn plain_name<'a>(playlist: &str, uri: &'a str) -> Result<&'a str, HlsError> {
    let ok = !uri.is_empty()
        && !uri.starts_with('.')
        && !uri.contains(['/', '\\', ':', '?', '#'])
        && !uri.chars().any(char::is_control);
    if ok {
        Ok(uri)
    } else {
        Err(HlsError::Playlist(format!(
            "{playlist}: unexpected URI {:?}",
            short(uri)
        )))
    }
}

/// SHA-256 (lower-case hex) and size of a file.
fn sha256_file(path: &Path) -> Result<(String, u64), HlsError> {
    let mut f = std::fs::File::open(path).map_err(io_err("open", path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io_err("read", path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((crate::encoding::hex(&h.finalize()), size))
}

/// Removes whatever ffmpeg wrote that no playlist named (there should be nothing).
fn remove_leftovers(work_dir: &Path) -> Result<(), HlsError> {
    let entries = std::fs::read_dir(work_dir).map_err(io_err("list", work_dir))?;
    for e in entries {
        let e = e.map_err(io_err("list", work_dir))?;
        if e.file_name().to_string_lossy().starts_with("ff-") {
            let p = e.path();
            std::fs::remove_file(&p).map_err(io_err("remove", &p))?;
        }
    }
    Ok(())
}

/// `bytes` over `secs`, in bits/s, rounded up (0 for no time).
fn bits_per_sec(bytes: u64, secs: f64) -> u64 {
    if secs > 0.0 {
        (bytes as f64 * 8.0 / secs).ceil() as u64
    } else {
        0
    }
}

/// RFC 8216 §4.3.4.2: BANDWIDTH is the peak segment bit rate, the largest bit rate of any
/// contiguous run of segments lasting 0.5 to 1.5 times the target duration. A lone short last
/// segment (ffmpeg ends on a 23 ms one) thus never counts alone and cannot inflate the peak.
/// A stream shorter than half the target is measured whole.
pub(crate) fn peak_bandwidth(segments: &[(f64, u64)], target_secs: f64) -> u64 {
    let (lo, hi) = (0.5 * target_secs, 1.5 * target_secs);
    let mut peak = None;
    for start in 0..segments.len() {
        let (mut secs, mut bytes) = (0.0, 0u64);
        for &(d, b) in &segments[start..] {
            secs += d;
            bytes += b;
            if secs > hi {
                break;
            }
            if secs >= lo {
                peak = peak.max(Some(bits_per_sec(bytes, secs)));
            }
        }
    }
    peak.unwrap_or_else(|| {
        let secs = segments.iter().map(|(d, _)| d).sum();
        bits_per_sec(segments.iter().map(|(_, b)| b).sum(), secs)
    })
}

/// The master playlist: one variant per rendition, ascending, relative URIs.
fn master_playlist(renditions: &[Rendition]) -> Vec<u8> {
    let master = MasterPlaylist {
        // Every AAC frame is a sync sample: each segment decodes on its own.
        independent_segments: true,
        variants: renditions
            .iter()
            .map(|r| VariantStream {
                uri: r.playlist.clone(),
                bandwidth: r.bandwidth,
                average_bandwidth: Some(r.average_bandwidth),
                codecs: Some(r.codecs.clone()),
                ..VariantStream::default()
            })
            .collect(),
        ..MasterPlaylist::default()
    };
    let mut out = Vec::new();
    master
        .write_to(&mut out)
        .expect("writing to a Vec cannot fail");
    out
}

/// At most 200 characters, for error messages.
fn short(s: &str) -> String {
    s.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tiny_last_segment_does_not_inflate_the_peak() {
        // 64 kbps for 6 s a segment, then one 23 ms AAC frame with a few hundred bytes of box
        // overhead (about 120 kbps on its own).
        let segs = [(6.0, 48_000), (6.0, 48_000), (6.0, 49_500), (0.023, 346)];
        let peak = peak_bandwidth(&segs, 6.0);
        // The third segment with the tail: 49 846 bytes in 6.023 s.
        assert_eq!(peak, 66_208);
        assert!(peak < bits_per_sec(346, 0.023));
        // A short stream is measured whole.
        assert_eq!(peak_bandwidth(&[(1.0, 1000)], 6.0), 8000);
        assert_eq!(peak_bandwidth(&[], 6.0), 0);
    }

    #[test]
    fn the_peak_is_the_densest_window_not_the_average() {
        let segs = [(6.0, 30_000), (6.0, 90_000), (6.0, 30_000)];
        assert_eq!(peak_bandwidth(&segs, 6.0), 120_000);
        assert_eq!(bits_per_sec(150_000, 18.0), 66_667);
    }

    #[test]
    fn only_plain_file_names_are_taken_from_ffmpeg() {
        for ok in ["ff-64k-00001.m4s", "ff-64k-init.mp4"] {
            assert_eq!(plain_name("p", ok).unwrap(), ok);
        }
        for bad in [
            "",
            "../x.m4s",
            "/etc/passwd",
            "a/b.m4s",
            ".hidden",
            "http://h/x.m4s",
            "a\\b",
        ] {
            assert!(plain_name("p", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_master_lists_rungs_with_bandwidth_and_codecs() {
        let r = |k: u32, bw: u64| Rendition {
            bitrate_kbps: k,
            playlist: format!("{k}k.m3u8"),
            bandwidth: bw,
            average_bandwidth: bw - 1000,
            codecs: CODECS.into(),
            segments: 5,
            duration_ms: 30_000,
            progressive: format!("seg/{k}.m4a"),
        };
        let text = String::from_utf8(master_playlist(&[r(64, 70_000), r(128, 135_000)])).unwrap();
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-STREAM-INF:BANDWIDTH=70000,AVERAGE-BANDWIDTH=69000,CODECS=\"mp4a.40.2\"\n\
             64k.m3u8\n\
             #EXT-X-STREAM-INF:BANDWIDTH=135000,AVERAGE-BANDWIDTH=134000,CODECS=\"mp4a.40.2\"\n\
             128k.m3u8\n"
        );
    }
}
