//! Packaging against the real ffmpeg and ffprobe on PATH, with fixtures ffmpeg generates.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use m3u8_rs::{MasterPlaylist, MediaPlaylist};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::storage::local::LocalStore;
use crate::storage::{BlobKey, BlobStore, ByteStream};

const LADDER: [u32; 3] = [64, 128, 256];

/// Runs ffmpeg to make a fixture; panics with its stderr when it fails.
fn generate(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-y", "-v", "error"])
        .args(args)
        .output()
        .expect("ffmpeg is required by these tests (./.ci/test installs it)");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A 30 s 440 Hz tone, MP3 at `kbps`.
fn tone_mp3(dir: &Path, kbps: u32) -> PathBuf {
    let out = dir.join(format!("tone{kbps}.mp3"));
    generate(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=30:sample_rate=44100",
        "-ac",
        "2",
        "-c:a",
        "libmp3lame",
        "-b:a",
        &format!("{kbps}k"),
        p(&out),
    ]);
    out
}

fn options(rungs: &[u32]) -> Options {
    Options {
        ffmpeg: "ffmpeg".into(),
        rungs: rungs.to_vec(),
        segment_secs: 6,
        timeout: Duration::from_secs(120),
        gain_db: None,
        source: Default::default(),
    }
}

/// Packages into a fresh `work` under `dir`, recording progress.
async fn package_into(
    input: &Path,
    work: &Path,
    opts: &Options,
) -> (Result<Packaged, HlsError>, Vec<f64>) {
    std::fs::create_dir_all(work).unwrap();
    let seen = Mutex::new(Vec::new());
    let record = |f: f64| seen.lock().unwrap().push(f);
    let r = package(
        input,
        work,
        opts,
        Some(Duration::from_secs(30)),
        &record,
        &CancellationToken::new(),
    )
    .await;
    (r, seen.into_inner().unwrap())
}

fn sha256_hex(bytes: &[u8]) -> String {
    crate::encoding::hex(&Sha256::digest(bytes))
}

/// Every file under `dir`, relative, sorted.
fn tree(dir: &Path) -> BTreeSet<String> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            e.path()
                .strip_prefix(dir)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn parse_master(bytes: &[u8]) -> MasterPlaylist {
    m3u8_rs::parse_master_playlist_res(bytes).expect("master parses with m3u8-rs")
}

fn parse_media(bytes: &[u8]) -> MediaPlaylist {
    m3u8_rs::parse_media_playlist_res(bytes).expect("media playlist parses with m3u8-rs")
}

/// A relative URI naming a file of the tree.
fn assert_relative_and_present(uri: &str, work: &Path, files: &BTreeSet<String>) {
    assert!(
        !uri.starts_with('/') && !uri.contains("://") && !uri.split('/').any(|s| s == ".."),
        "{uri} is not a plain relative URI"
    );
    assert!(files.contains(uri), "{uri} names no output file");
    assert!(work.join(uri).is_file());
}

/// Everything the origin and players rely on in a packaged tree; returns the total duration
/// of each rendition in seconds.
fn assert_valid_tree(work: &Path, pk: &Packaged, rungs: &[u32]) -> Vec<f64> {
    let files = tree(work);
    let listed: BTreeSet<String> = pk.files.iter().map(|f| f.name.clone()).collect();
    assert_eq!(
        files, listed,
        "the work dir holds exactly the packaged files"
    );
    for f in &pk.files {
        assert_eq!(f.path, std::path::absolute(work).unwrap().join(&f.name));
        let bytes = std::fs::read(&f.path).unwrap();
        match f.kind {
            FileKind::Init | FileKind::Segment | FileKind::Progressive => {
                let ext = match f.kind {
                    FileKind::Init => "mp4",
                    FileKind::Progressive => "m4a",
                    _ => "m4s",
                };
                assert_eq!(
                    f.name,
                    format!("seg/{}.{ext}", sha256_hex(&bytes)),
                    "named by its SHA-256"
                );
            }
            FileKind::Peaks => assert_eq!(
                f.name,
                format!("peaks/{}.json", sha256_hex(&bytes)),
                "named by its SHA-256"
            ),
            FileKind::MediaPlaylist => assert!(f.name.ends_with("k.m3u8")),
            FileKind::Master => assert_eq!(f.name, MASTER),
        }
    }
    let kinds: Vec<FileKind> = pk.files.iter().map(|f| f.kind).collect();
    assert_eq!(
        kinds.last(),
        Some(&FileKind::Master),
        "the master comes last"
    );

    let master = parse_master(&std::fs::read(work.join(&pk.master)).unwrap());
    let uris: Vec<String> = master.variants.iter().map(|v| v.uri.clone()).collect();
    let want: Vec<String> = rungs.iter().map(|k| format!("{k}k.m3u8")).collect();
    assert_eq!(uris, want, "one variant per rung, ascending");
    assert_eq!(pk.renditions.len(), rungs.len());

    let mut durations = Vec::new();
    for (v, r) in master.variants.iter().zip(&pk.renditions) {
        assert_relative_and_present(&v.uri, work, &files);
        assert_eq!(v.codecs.as_deref(), Some(CODECS));
        assert_eq!(v.bandwidth, r.bandwidth);
        assert_eq!(v.average_bandwidth, Some(r.average_bandwidth));
        assert!(r.average_bandwidth <= r.bandwidth);
        // At most the asked rate plus container overhead; a pure tone is easy, so the encoder
        // may spend far less (about 136 kbps at 256k).
        let asked = u64::from(r.bitrate_kbps) * 1000;
        assert!(
            r.average_bandwidth > asked / 4 && r.bandwidth < asked * 13 / 10,
            "{r:?}"
        );

        let text = std::fs::read(work.join(&v.uri)).unwrap();
        let raw = String::from_utf8(text.clone()).unwrap();
        assert!(raw.contains("#EXT-X-PLAYLIST-TYPE:VOD"), "{raw}");
        assert!(raw.trim_end().ends_with("#EXT-X-ENDLIST"), "{raw}");
        let media = parse_media(&text);
        assert!(media.end_list);
        let map = media.segments[0].map.as_ref().expect("#EXT-X-MAP");
        assert!(map.uri.starts_with("seg/") && map.uri.ends_with(".mp4"));
        assert_relative_and_present(&map.uri, work, &files);
        let mut total = 0.0;
        for s in &media.segments {
            assert!(s.uri.starts_with("seg/") && s.uri.ends_with(".m4s"));
            assert_relative_and_present(&s.uri, work, &files);
            assert!(f64::from(s.duration).round() as u64 <= media.target_duration);
            total += f64::from(s.duration);
        }
        assert_eq!(r.segments as usize, media.segments.len());
        assert_eq!(r.duration_ms, (total * 1000.0).round() as u64);
        // The progressive file: the same AAC, as long as the segments together.
        assert_relative_and_present(&r.progressive, work, &files);
        let (secs, codec, _, _) = ffprobe(&work.join(&r.progressive));
        assert_eq!(codec, "aac");
        assert!((secs - total).abs() < 0.1, "{secs} vs {total}");
        durations.push(total);
    }
    durations
}

/// ffprobe's view of a playlist: (duration in seconds, codec, sample rate, channels).
fn ffprobe(playlist: &Path) -> (f64, String, u32, u32) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json", "-show_format"])
        .args(["-show_streams", "-select_streams", "a:0"])
        .arg(playlist)
        .output()
        .expect("ffprobe is required by these tests");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &v["streams"][0];
    let num = |x: &serde_json::Value| x.as_str().unwrap().parse::<f64>().unwrap();
    (
        num(&v["format"]["duration"]),
        s["codec_name"].as_str().unwrap().to_owned(),
        num(&s["sample_rate"]) as u32,
        s["channels"].as_u64().unwrap() as u32,
    )
}

#[test]
fn rungs_above_the_source_are_skipped_but_one_always_stays() {
    for (source, want) in [
        (Some(320), vec![64, 128, 256]),
        (Some(256), vec![64, 128, 256]),
        (Some(200), vec![64, 128]),
        (Some(96), vec![64]),
        (Some(64), vec![64]),
        (Some(48), vec![64]),
        (Some(0), vec![64]),
        (Some(1411), vec![64, 128, 256]), // lossless CD audio
        (None, vec![64, 128, 256]),
    ] {
        assert_eq!(pick_rungs(&LADDER, source), want, "{source:?}");
    }
    assert_eq!(pick_rungs(&[], Some(128)), Vec::<u32>::new());
}

#[tokio::test]
async fn a_320k_mp3_becomes_a_three_rung_ladder_players_accept() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tone_mp3(tmp.path(), 320);
    let rungs = pick_rungs(&LADDER, Some(320));
    let work = tmp.path().join("work");
    let (r, seen) = package_into(&input, &work, &options(&rungs)).await;
    let pk = r.unwrap();

    for d in assert_valid_tree(&work, &pk, &[64, 128, 256]) {
        assert!((d - 30.0).abs() < 0.5, "EXTINF total {d}");
    }
    let (secs, codec, rate, channels) = ffprobe(&work.join(MASTER));
    assert!((secs - 30.0).abs() < 0.5, "ffprobe duration {secs}");
    assert_eq!((codec.as_str(), rate, channels), ("aac", 44100, 2));

    assert!(!seen.is_empty(), "progress was reported");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    let last = *seen.last().unwrap();
    assert!((0.95..=1.0).contains(&last), "progress ended at {last}");
}

#[tokio::test]
async fn a_96k_mp3_gets_only_the_lowest_rung() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tone_mp3(tmp.path(), 96);
    let rungs = pick_rungs(&LADDER, Some(96));
    assert_eq!(rungs, [64]);
    let work = tmp.path().join("work");
    let pk = package_into(&input, &work, &options(&rungs))
        .await
        .0
        .unwrap();
    assert_valid_tree(&work, &pk, &[64]);
    assert_eq!(pk.renditions[0].bitrate_kbps, 64);
}

#[tokio::test]
async fn flac_cover_art_and_surround_hi_res_sources_package() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let flac = dir.join("stereo.flac");
    generate(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=330:duration=30:sample_rate=44100",
        "-ac",
        "2",
        "-c:a",
        "flac",
        p(&flac),
    ]);
    let cover = dir.join("cover.png");
    generate(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=red:s=64x64",
        "-frames:v",
        "1",
        p(&cover),
    ]);
    let with_art = dir.join("with-art-mono.mp3");
    generate(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=550:duration=30",
        "-i",
        p(&cover),
        "-map",
        "0:a",
        "-map",
        "1:v",
        "-c:a",
        "libmp3lame",
        "-b:a",
        "192k",
        "-c:v",
        "png",
        "-disposition:v",
        "attached_pic",
        "-id3v2_version",
        "3",
        p(&with_art),
    ]);
    // 5.1 at 96 kHz: downmixed to stereo, resampled to 48 kHz.
    let surround = dir.join("surround.flac");
    generate(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=30:sample_rate=96000",
        "-af",
        "pan=5.1|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0",
        "-c:a",
        "flac",
        p(&surround),
    ]);
    // (input, rungs, sample rate, channels): mono stays mono, only more than two is downmixed.
    let cases = [
        (&flac, vec![64, 128, 256], 44100, 2),
        (&with_art, vec![64, 128], 44100, 1),
        (&surround, vec![64], 48000, 2),
    ];
    for (i, (input, rungs, want_rate, want_channels)) in cases.into_iter().enumerate() {
        let work = dir.join(format!("work{i}"));
        // As the packaging job does: the probed rate and channels pin the decoded format.
        let mut opts = options(&rungs);
        opts.source.sample_rate = Some(if i == 2 { 96_000 } else { 44_100 });
        opts.source.channels = Some([2, 1, 6][i]);
        let pk = package_into(input, &work, &opts)
            .await
            .0
            .unwrap_or_else(|e| panic!("{input:?}: {e}"));
        for d in assert_valid_tree(&work, &pk, &rungs) {
            assert!((d - 30.0).abs() < 0.5, "{input:?}: EXTINF total {d}");
        }
        let (secs, codec, rate, channels) = ffprobe(&work.join(MASTER));
        assert!((secs - 30.0).abs() < 0.5, "{input:?}: {secs}");
        assert_eq!(
            (codec.as_str(), rate, channels),
            ("aac", want_rate, want_channels),
            "{input:?}"
        );
    }
}

#[tokio::test]
async fn packaging_twice_gives_the_same_names() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tone_mp3(tmp.path(), 320);
    // The same bytes under another name and folder: nothing of the path may leak in.
    let copy = tmp.path().join("elsewhere/other name.mp3");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(&input, &copy).unwrap();
    let opts = options(&LADDER);
    let a = package_into(&input, &tmp.path().join("a"), &opts)
        .await
        .0
        .unwrap();
    let b = package_into(&copy, &tmp.path().join("b"), &opts)
        .await
        .0
        .unwrap();
    let names = |p: &Packaged| p.files.iter().map(|f| f.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&a), names(&b));
    assert_eq!(a.renditions, b.renditions);
    for (fa, fb) in a.files.iter().zip(&b.files) {
        assert_eq!(
            std::fs::read(&fa.path).unwrap(),
            std::fs::read(&fb.path).unwrap(),
            "{}",
            fa.name
        );
    }
}

fn body(data: &'static [u8]) -> ByteStream {
    Box::pin(futures_util::stream::iter([Ok(bytes::Bytes::from_static(
        data,
    ))]))
}

#[tokio::test]
async fn a_second_upload_writes_nothing_and_stale_objects_go() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tone_mp3(tmp.path(), 320);
    let work = tmp.path().join("work");
    let pk = package_into(&input, &work, &options(&LADDER))
        .await
        .0
        .unwrap();
    let store = BlobStore::Local(LocalStore::open(&tmp.path().join("blobs")).await.unwrap());
    let prefix = "tracks/t1/hls";
    // Left by an older ladder, and neighbours that must survive.
    for k in [
        "tracks/t1/hls/512k.m3u8",
        "tracks/t1/hls/seg/old.m4s",
        "tracks/t1/hls/master.m3u8", // stale content under a current name: replaced
        "tracks/t1/original.mp3",
        "tracks/t1/hlsx/keep.m4s",
        "tracks/t10/hls/seg/keep.m4s",
    ] {
        store
            .put(&BlobKey::parse(k).unwrap(), body(b"old"), 10)
            .await
            .unwrap();
    }

    let first = upload(&store, prefix, &pk).await.unwrap();
    assert_eq!(first.uploaded, pk.files.len());
    assert_eq!(first.skipped, 0);
    assert_eq!(first.removed, 2);
    let total: u64 = pk
        .files
        .iter()
        .map(|f| std::fs::metadata(&f.path).unwrap().len())
        .sum();
    assert_eq!(first.bytes, total);

    let keys: BTreeSet<String> = store
        .list("tracks/")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key.as_str().to_owned())
        .collect();
    let mut want: BTreeSet<String> = pk
        .files
        .iter()
        .map(|f| format!("{prefix}/{}", f.name))
        .collect();
    want.extend(
        [
            "tracks/t1/original.mp3",
            "tracks/t1/hlsx/keep.m4s",
            "tracks/t10/hls/seg/keep.m4s",
        ]
        .map(String::from),
    );
    assert_eq!(keys, want);
    for f in &pk.files {
        let stored = tmp.path().join("blobs").join(prefix).join(&f.name);
        assert_eq!(
            std::fs::read(stored).unwrap(),
            std::fs::read(&f.path).unwrap()
        );
    }

    let again = upload(&store, &format!("{prefix}/"), &pk).await.unwrap();
    assert_eq!(
        again,
        UploadReport {
            uploaded: 0,
            skipped: pk.files.len(),
            removed: 0,
            bytes: 0
        }
    );
}

#[tokio::test]
async fn a_corrupt_file_is_an_ffmpeg_error_with_its_stderr() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("corrupt.mp3");
    let mut x: u32 = 0x1234_5678;
    let junk: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    std::fs::write(&input, junk).unwrap();
    let (r, _) = package_into(&input, &tmp.path().join("work"), &options(&LADDER)).await;
    match r {
        Err(HlsError::Ffmpeg {
            status,
            stderr_tail,
        }) => {
            assert!(status.contains("exit status"), "{status}");
            assert!(!stderr_tail.is_empty());
            assert!(stderr_tail.len() <= 2048);
        }
        other => panic!("expected an ffmpeg error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_missing_ffmpeg_is_reported_as_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.mp3");
    std::fs::write(&input, b"not read").unwrap();
    for program in ["veza-no-such-ffmpeg", "/nonexistent/bin/ffmpeg"] {
        let mut opts = options(&LADDER);
        opts.ffmpeg = program.into();
        let (r, _) = package_into(&input, &tmp.path().join("work"), &opts).await;
        assert!(
            matches!(&r, Err(HlsError::FfmpegMissing(m)) if m.contains(program)),
            "{r:?}"
        );
    }
}

#[tokio::test]
async fn a_run_past_the_timeout_is_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tone_mp3(tmp.path(), 320);
    let mut opts = options(&LADDER);
    opts.timeout = Duration::from_millis(50);
    let (r, _) = package_into(&input, &tmp.path().join("work"), &opts).await;
    assert!(
        matches!(r, Err(HlsError::Timeout(d)) if d == Duration::from_millis(50)),
        "{r:?}"
    );
}

#[tokio::test]
async fn cancelling_kills_ffmpeg() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tone_mp3(tmp.path(), 320);
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    // Cancel once ffmpeg has shown progress, so the kill happens mid-run.
    let progress = move |_f: f64| trigger.cancel();
    let started = std::time::Instant::now();
    let r = package(
        &input,
        &work,
        &options(&LADDER),
        Some(Duration::from_secs(30)),
        &progress,
        &cancel,
    )
    .await;
    assert!(matches!(r, Err(HlsError::Cancelled)), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // A token cancelled up front starts nothing.
    let r = package(&input, &work, &options(&LADDER), None, &|_| {}, &cancel).await;
    assert!(matches!(r, Err(HlsError::Cancelled)), "{r:?}");
}

#[tokio::test]
async fn bad_options_and_paths_fail_before_ffmpeg_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.mp3");
    std::fs::write(&input, b"x").unwrap();
    let work = tmp.path().join("work");
    for rungs in [vec![], vec![128, 64], vec![64, 64], vec![0]] {
        let (r, _) = package_into(&input, &work, &options(&rungs)).await;
        assert!(matches!(r, Err(HlsError::Options(_))), "{rungs:?}: {r:?}");
    }
    let (r, _) = package_into(&tmp.path().join("absent.mp3"), &work, &options(&LADDER)).await;
    assert!(matches!(r, Err(HlsError::Io { op: "read", .. })), "{r:?}");
    let cancel = CancellationToken::new();
    let r = package(
        &input,
        &tmp.path().join("no-dir"),
        &options(&LADDER),
        None,
        &|_| {},
        &cancel,
    )
    .await;
    assert!(matches!(r, Err(HlsError::Io { .. })), "{r:?}");
}
