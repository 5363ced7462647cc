//! Audio analysis at ingest (issue 21) against real parts: tones of known loudness made with
//! ffmpeg, packaged by the real ffmpeg, measured in the same run and compared with ffmpeg's own
//! EBU R128 meter; album gain; the waveform peaks served through `/media/`; a two-track album
//! cut from one signal played back through the HLS renditions; the `veza analyze` backfill and
//! kill -9 in the middle of an analysing job.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use veza::accounts::Role;

use crate::helpers::{
    TestApp, blocking_get_json, cli_admin_token, require_tool, serve_binary, spawn_app_with,
    stderr, stdout, tone, user_with_token, veza,
};

/// Runs ffmpeg with `args` in `dir`; panics with its stderr when it fails.
fn ffmpeg(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new(require_tool("ffmpeg"))
        .current_dir(dir)
        .args(["-nostdin", "-v", "error", "-y"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "ffmpeg {args:?}: {}", stderr(&out));
    out.stdout
}

/// A 10 s stereo 1 kHz tone at `lufs`, FLAC at 48 kHz. Calibrated: a stereo 1 kHz sine of peak
/// amplitude A measures 20·log10(A) LUFS (EBU Tech 3341), and lavfi's sine has A = 1/8.
fn tone_at(dir: &Path, name: &str, lufs: f64, album: &str) -> PathBuf {
    let gain = lufs - 20.0 * (1.0f64 / 8.0).log10();
    ffmpeg(
        dir,
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=1000:sample_rate=48000:duration=10",
            "-af",
            &format!("pan=stereo|c0=c0|c1=c0,volume={gain:.4}dB"),
            "-c:a",
            "flac",
            "-metadata",
            &format!("album={album}"),
            "-metadata",
            "artist=Veza Test",
            "-metadata",
            &format!("title={name}"),
            name,
        ],
    );
    dir.join(name)
}

/// What `ffmpeg -af ebur128=peak=true` says about `file`: (integrated LUFS, true peak dBTP).
fn ffmpeg_meter(file: &Path) -> (f64, f64) {
    let out = Command::new(require_tool("ffmpeg"))
        .args(["-nostdin", "-hide_banner", "-i"])
        .arg(file)
        .args(["-af", "ebur128=peak=true", "-f", "null", "-"])
        .output()
        .unwrap();
    let text = stderr(&out);
    let summary = text
        .split("Summary:")
        .nth(1)
        .unwrap_or_else(|| panic!("{text}"));
    let value = |label: &str| -> f64 {
        let rest = summary.split(label).nth(1).unwrap();
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    (value("I:"), value("Peak:"))
}

/// Polls the track until it carries its analysis (panics after `secs`).
async fn wait_analysed(app: &TestApp, token: &str, id: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let t = app
            .get_json(&format!("/api/v1/tracks/{id}"), Some(token))
            .await;
        if t["status"] == "ready" && t["loudness"].is_object() {
            return t;
        }
        assert!(Instant::now() < deadline, "never analysed: {t}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[tokio::test]
async fn loudness_matches_ffmpegs_meter_and_gains_peaks_and_album_follow() {
    let fx = tempfile::tempdir().unwrap();
    let app = spawn_app_with(|_| {}).await;
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    let quiet = tone_at(fx.path(), "quiet.flac", -23.0, "Levels");
    let loud = tone_at(fx.path(), "loud.flac", -9.0, "Levels");
    let qid = app.upload(&ed, &quiet).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let lid = app.upload(&ed, &loud).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_analysed(&app, &ed, &qid, 60).await;
    let l = wait_analysed(&app, &ed, &lid, 60).await;
    // Read again: the album changed when the second track was analysed.
    let q = wait_analysed(&app, &ed, &qid, 1).await;
    assert_eq!(
        (&q["album"], &l["artist"]),
        (&"Levels".into(), &"Veza Test".into())
    );

    for (file, t, want) in [(&quiet, &q, -23.0), (&loud, &l, -9.0)] {
        let (ff_i, ff_tp) = ffmpeg_meter(file);
        let m = &t["loudness"];
        let i = f(&m["integrated_lufs"]);
        println!(
            "{}: veza {i:.2} LUFS, ffmpeg {ff_i:.1} LUFS (error {:.2} LU); true peak veza {:.2}, ffmpeg {ff_tp:.1} dBTP",
            file.display(),
            (i - ff_i).abs(),
            f(&m["true_peak_dbtp"])
        );
        assert!((ff_i - want).abs() <= 0.3, "calibration: {ff_i} for {want}");
        assert!((i - ff_i).abs() <= 0.2, "{m} vs ffmpeg's {ff_i}");
        assert!(
            (f(&m["true_peak_dbtp"]) - ff_tp).abs() <= 0.2,
            "{m} vs {ff_tp}"
        );
        assert!(f(&m["range_lu"]) < 1.0, "a steady tone has no range: {m}");
        assert!((f(&m["track_gain_db"]) - (-18.0 - i)).abs() < 1e-9, "{m}");
        let peak = 10f64.powf(f(&m["true_peak_dbtp"]) / 20.0);
        assert!((f(&m["track_peak"]) - peak).abs() < 1e-9, "{m}");
        assert_eq!(t["gapless"]["encoder_delay_samples"], 1024, "{t}");
        let pad = t["gapless"]["padding_samples"].as_u64().unwrap();
        assert!(pad < 1024, "{t}");
    }
    // The album: the quiet track is more than 10 LU under the loud one, so the relative gate
    // leaves only the loud one's blocks; both get that gain and the louder peak.
    let (qm, lm) = (&q["loudness"], &l["loudness"]);
    let album_gain = f(&lm["album_gain_db"]);
    assert!((album_gain - f(&lm["track_gain_db"])).abs() < 0.1, "{lm}");
    assert!(
        (f(&qm["album_gain_db"]) - album_gain).abs() < 1e-9,
        "{qm} {lm}"
    );
    assert!(
        (f(&qm["album_gain_db"]) - f(&qm["track_gain_db"])).abs() > 10.0,
        "{qm}"
    );
    assert!(
        (f(&qm["album_peak"]) - f(&lm["track_peak"])).abs() < 1e-9,
        "{qm}"
    );

    // Moving the quiet track to its own album recomputes both.
    let r = app
        .patch_json(
            &format!("/api/v1/tracks/{qid}"),
            Some(&ed),
            &serde_json::json!({"album": "Alone"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let q = app
        .get_json(&format!("/api/v1/tracks/{qid}"), Some(&ed))
        .await;
    let qm = &q["loudness"];
    assert!(
        (f(&qm["album_gain_db"]) - f(&qm["track_gain_db"])).abs() < 0.1,
        "{qm}"
    );
    assert!(
        (f(&qm["album_peak"]) - f(&qm["track_peak"])).abs() < 1e-9,
        "{qm}"
    );
    app.stop().await;
}

/// Downloads `url` whole.
async fn bytes(client: &reqwest::Client, url: &str) -> Vec<u8> {
    let r = client.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    r.bytes().await.unwrap().to_vec()
}

#[tokio::test]
async fn peaks_are_served_signed_and_immutable_and_show_where_the_burst_is() {
    let fx = tempfile::tempdir().unwrap();
    let app = spawn_app_with(|_| {}).await;
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    // 12 s of silence, then 4 s of a loud tone: the burst starts at 75 %.
    let file = fx.path().join("burst.flac");
    ffmpeg(
        fx.path(),
        &[
            "-f",
            "lavfi",
            "-i",
            "anullsrc=r=44100:cl=stereo:d=12",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=300:sample_rate=44100:duration=4",
            "-filter_complex",
            "[1]volume=12dB,pan=stereo|c0=c0|c1=c0[b];[0][b]concat=n=2:v=0:a=1",
            "-c:a",
            "flac",
            "burst.flac",
        ],
    );
    let id = app.upload(&ed, &file).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let t = wait_analysed(&app, &ed, &id, 60).await;
    let from_track = t["peaks_url"].as_str().unwrap_or_else(|| panic!("{t}"));
    let stream = app
        .get_json(&format!("/api/v1/tracks/{id}/stream"), Some(&ed))
        .await;
    let url = stream["peaks_url"]
        .as_str()
        .unwrap_or_else(|| panic!("{stream}"));
    assert_eq!(url, from_track, "the same signed URL from both");
    assert!(url.contains(&format!("/tracks/{id}/hls/peaks/")), "{url}");

    let r = app.origin_get(url).await;
    assert_eq!(r.status(), 200, "{url}");
    crate::helpers::check_kind(
        &r,
        "application/json",
        "public, max-age=86400, immutable",
        &id,
    );
    let body = r.bytes().await.unwrap().to_vec();
    // Unsigned, it is refused like every other object.
    let bare = format!(
        "/media/tracks/{id}/hls/peaks/{}",
        url.rsplit('/').next().unwrap()
    );
    assert_eq!(app.get(&bare, None).await.status(), 403);

    let w: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (&w["version"], &w["channels"], &w["bits"], &w["sample_rate"]),
        (&2.into(), &1.into(), &8.into(), &44100.into()),
        "{}",
        String::from_utf8_lossy(&body[..200])
    );
    let len = w["length"].as_u64().unwrap() as usize;
    let data: Vec<i64> = w["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(data.len(), 2 * len);
    assert!((1620..=1800).contains(&len), "{len} points");
    let spp = w["samples_per_pixel"].as_u64().unwrap() as usize;
    assert!(
        spp * len >= 16 * 44100 && spp * (len - 1) < 16 * 44100,
        "{spp} × {len}"
    );
    // Where the burst starts, within a point or two.
    let first_loud = (0..len).find(|&i| data[2 * i + 1] > 32).unwrap();
    let want = 12 * 44100 / spp;
    assert!(
        first_loud.abs_diff(want) <= 2,
        "burst at point {first_loud}, not {want}"
    );
    assert!(
        data[..2 * want - 4].iter().all(|v| v.abs() <= 1),
        "silence is flat"
    );
    assert!(
        data[2 * (want + 2)..]
            .chunks(2)
            .all(|p| p[0] <= -60 && p[1] >= 60),
        "the burst is loud"
    );

    // Small: gzip it as a CDN would.
    let mut gz = Command::new(require_tool("gzip"))
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    gz.stdin.take().unwrap().write_all(&body).unwrap();
    let zipped = gz.wait_with_output().unwrap().stdout;
    println!("peaks: {} bytes, {} gzipped", body.len(), zipped.len());
    assert!(zipped.len() <= 16 * 1024, "{} bytes gzipped", zipped.len());
    app.stop().await;
}

/// `(segment_duration, media_time)` of the single entry of an init segment's edit list.
fn edit_list(init: &[u8]) -> (u64, u64) {
    let at = init
        .windows(4)
        .position(|w| w == b"elst")
        .expect("an edit list")
        + 4;
    let be = |from: usize, n: usize| {
        init[from..from + n]
            .iter()
            .fold(0u64, |v, b| (v << 8) | u64::from(*b))
    };
    assert_eq!(be(at + 4, 4), 1, "one entry");
    match init[at] {
        1 => (be(at + 8, 8), be(at + 16, 8)),
        _ => (be(at + 8, 4), be(at + 12, 4)),
    }
}

/// Decodes an fMP4 rendition (init + segments, as a player fetches them) to mono f32 PCM;
/// also returns the init segment's edit list.
async fn decode_rendition(
    app: &TestApp,
    token: &str,
    id: &str,
    dir: &Path,
) -> (Vec<f32>, (u64, u64)) {
    let stream = app
        .get_json(
            &format!("/api/v1/tracks/{id}/stream?format=hls"),
            Some(token),
        )
        .await;
    let master = url::Url::parse(&app.reach(stream["url"].as_str().unwrap())).unwrap();
    let text = String::from_utf8(bytes(&app.client, master.as_str()).await).unwrap();
    let media = master
        .join(&crate::helpers::playlist_uris(&text)[0])
        .unwrap();
    let text = String::from_utf8(bytes(&app.client, media.as_str()).await).unwrap();
    let mut mp4 = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for uri in crate::helpers::playlist_uris(&text) {
        if seen.insert(uri.clone()) {
            mp4.extend(bytes(&app.client, media.join(&uri).unwrap().as_str()).await);
        }
    }
    // The init segment comes first (`#EXT-X-MAP`).
    let edits = edit_list(&mp4);
    let path = dir.join(format!("{id}.mp4"));
    std::fs::write(&path, mp4).unwrap();
    (pcm(dir, &path), edits)
}

/// `file` decoded by ffmpeg to mono f32 at 44.1 kHz.
fn pcm(dir: &Path, file: &Path) -> Vec<f32> {
    let raw = ffmpeg(
        dir,
        &[
            "-i",
            file.to_str().unwrap(),
            "-ac",
            "1",
            "-ar",
            "44100",
            "-f",
            "f32le",
            "-",
        ],
    );
    raw.chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// The shift (in samples) of `got[at..at+win]` against `want` that matches best, within
/// ±`reach`: positive when `got` is late (a gap), negative when early (an overlap).
fn offset(got: &[f32], want: &[f32], at: usize, win: usize, reach: usize) -> i64 {
    let score = |d: i64| -> f64 {
        (0..win)
            .map(|k| {
                let w = want[(at as i64 + k as i64 - d) as usize];
                f64::from(got[at + k]) * f64::from(w)
            })
            .sum()
    };
    (-(reach as i64)..=reach as i64)
        .max_by(|a, b| score(*a).total_cmp(&score(*b)))
        .unwrap()
}

#[tokio::test]
async fn a_two_track_album_cut_from_one_signal_joins_without_a_gap() {
    let fx = tempfile::tempdir().unwrap();
    let dir = fx.path();
    let app = spawn_app_with(|_| {}).await;
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    // One continuous signal (a tone over noise, so every instant is distinct), cut at a sample
    // that is no multiple of the AAC frame.
    const CUT: usize = 163_170;
    ffmpeg(
        dir,
        &[
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100:duration=8",
            "-f",
            "lavfi",
            "-i",
            "anoisesrc=color=pink:amplitude=0.2:r=44100:d=8:seed=7",
            "-filter_complex",
            "amix=inputs=2,pan=stereo|c0=c0|c1=c0",
            "-c:a",
            "flac",
            "whole.flac",
        ],
    );
    for (name, trim, n) in [
        ("one.flac", format!("atrim=end_sample={CUT}"), "1"),
        ("two.flac", format!("atrim=start_sample={CUT}"), "2"),
    ] {
        ffmpeg(
            dir,
            &[
                "-i",
                "whole.flac",
                "-af",
                &trim,
                "-metadata",
                "album=Joined",
                "-metadata",
                &format!("track={n}"),
                "-c:a",
                "flac",
                name,
            ],
        );
    }
    let whole = pcm(dir, &dir.join("whole.flac"));
    let mut joined = Vec::new();
    for name in ["one.flac", "two.flac"] {
        let id = app.upload(&ed, &dir.join(name)).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let t = wait_analysed(&app, &ed, &id, 60).await;
        let g = &t["gapless"];
        let (delay, pad) = (
            g["encoder_delay_samples"].as_u64().unwrap() as usize,
            g["padding_samples"].as_u64().unwrap() as usize,
        );
        let (mut got, (duration, media_time)) = decode_rendition(&app, &ed, &id, dir).await;
        let real = if name == "one.flac" {
            CUT
        } else {
            whole.len() - CUT
        };
        // The renditions say it too: the edit list starts after the priming and lasts the
        // real duration (in the movie timescale, 1000 for ffmpeg's fMP4).
        assert_eq!(media_time as usize, delay, "{name}");
        assert_eq!(duration, (real as u64 * 1000).div_ceil(44100), "{name}");
        // A gapless player drops the priming and the padding. ffmpeg's demuxer ignores edit
        // lists in fragmented MP4, so the decode here still has both.
        assert_eq!(got.len(), delay + real + pad, "{name}: {g}");
        println!(
            "{name}: {} samples decoded, {real} real, {delay} + {pad} dropped",
            got.len()
        );
        got.drain(..delay);
        got.truncate(got.len() - pad);
        joined.extend(got);
    }
    assert_eq!(joined.len(), whole.len());
    // Compare around the join: 100 ms windows a little before and after it.
    let win = 4410;
    let before = offset(&joined, &whole, CUT - win - 441, win, 2048);
    let after = offset(&joined, &whole, CUT + 441, win, 2048);
    let ms = |d: i64| d as f64 * 1000.0 / 44100.0;
    println!(
        "join: track 1 ends {:.2} ms off, track 2 starts {:.2} ms off; gap {:.2} ms",
        ms(before),
        ms(after),
        ms(after - before)
    );
    assert!(before.abs() <= 44, "track 1 is {:.2} ms off", ms(before));
    assert!(
        (after - before).abs() <= 132,
        "gap of {:.2} ms",
        ms(after - before)
    );
    app.stop().await;
}

#[test]
fn the_backfill_queues_jobs_and_a_kill_9_mid_analysis_loses_nothing() {
    let home = tempfile::tempdir().unwrap();
    let token = cli_admin_token(home.path());
    let file = tone(home.path(), "long.mp3", 90, 192);
    std::fs::write(home.path().join("veza.toml"), "[jobs]\nlease_secs = 3\n").unwrap();
    let db = home.path().join("veza-data").join(veza::db::DB_FILE);
    let analysed = || -> i64 {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.query_row("SELECT COUNT(*) FROM track_analysis", [], |r| r.get(0))
            .unwrap()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let get = |addr: &str, path: &str| blocking_get_json(&rt, &client, addr, path, &token);
    let wait = |addr: &str, id: &str, what: &dyn Fn(&Value) -> bool| -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let page = get(addr, &format!("/api/v1/jobs?track_id={id}"));
            if what(&page) {
                return page;
            }
            assert!(Instant::now() < deadline, "{page}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let serve = || serve_binary(home.path(), &["--config", "veza.toml", "serve"]);

    // A track packaged "before analysis existed": packaged, then its analysis row removed.
    let (mut child, addr) = serve();
    let id = crate::helpers::blocking_upload(&rt, &client, &addr, &token, &file);
    wait(&addr, &id, &|p| p["jobs"][0]["state"] == "succeeded");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(analysed(), 1);
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute("DELETE FROM track_analysis", [])
        .unwrap();

    // Bad input queues nothing and says why.
    let analyze = |args: &[&str]| {
        veza(home.path())
            .args(["--config", "veza.toml", "analyze"])
            .args(args)
            .output()
            .unwrap()
    };
    for args in [
        &[][..],
        &["--all", &id],
        &["not-a-track"],
        &["0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b", &id],
    ] {
        let out = analyze(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).trim().is_empty(), "{args:?}");
    }
    let out = analyze(&["--all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("1 queued"), "{}", stdout(&out));
    let out = analyze(&[&id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("already pending"), "{}", stdout(&out));

    // kill -9 while the queued job runs: nothing half-recorded, and it runs again.
    let (mut child, addr) = serve();
    wait(&addr, &id, &|p| p["jobs"][0]["state"] == "running");
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        analysed(),
        0,
        "the kill landed after the job finished; the test proves nothing"
    );
    let (mut child, addr) = serve();
    let page = wait(&addr, &id, &|p| p["jobs"][0]["state"] == "succeeded");
    assert_eq!(
        page["jobs"][0]["attempts"], 2,
        "the killed attempt counts: {page}"
    );
    let t = get(&addr, &format!("/api/v1/tracks/{id}"));
    assert_eq!(t["status"], "ready", "{t}");
    assert!(t["loudness"]["integrated_lufs"].is_f64(), "{t}");
    assert!(t["peaks_url"].is_string(), "{t}");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(analysed(), 1);
}

#[tokio::test]
async fn normalize_levels_the_renditions_and_leaves_the_original_alone() {
    let fx = tempfile::tempdir().unwrap();
    let app = spawn_app_with(|c| c.hls.normalize = true).await;
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    let loud = tone_at(fx.path(), "loud.flac", -9.0, "Levels");
    let id = app.upload(&ed, &loud).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let t = wait_analysed(&app, &ed, &id, 60).await;
    // What was measured is the original's loudness, not the renditions'.
    assert!(
        (f(&t["loudness"]["integrated_lufs"]) - -9.0).abs() <= 0.2,
        "{t}"
    );
    decode_rendition(&app, &ed, &id, fx.path()).await;
    let (rendition, _) = ffmpeg_meter(&fx.path().join(format!("{id}.mp4")));
    println!("normalized rendition: {rendition} LUFS (original -9)");
    assert!((rendition - -18.0).abs() <= 0.5, "{rendition}");
    let original = app
        .get_json(
            &format!("/api/v1/tracks/{id}/stream?format=original"),
            Some(&ed),
        )
        .await;
    let body = bytes(&app.client, &app.reach(original["url"].as_str().unwrap())).await;
    assert_eq!(
        body,
        std::fs::read(&loud).unwrap(),
        "the original is untouched"
    );
    app.stop().await;
}
