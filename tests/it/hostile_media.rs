//! Hostile uploads against the real ffprobe and ffmpeg (issue #16): playlists named `.mp3`,
//! one live (an unrestricted ffprobe waits on it for minutes), one naming a file on the host
//! (an unrestricted ffprobe and ffmpeg read and republish it). Each is refused 415 at once,
//! through the API and through `veza import`, no ffprobe is left running, and no refusal or
//! failure quotes a server path.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use veza::accounts::Role;

use crate::helpers::{
    TestApp, assert_envelope, require_tool, spawn_app, spawn_app_with, stderr, stdout, tone,
    user_with_token, veza,
};

/// A live HLS playlist: no `#EXT-X-ENDLIST`, one segment on a closed port.
const LIVE_PLAYLIST: &str =
    "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nhttp://127.0.0.1:9/x.ts\n";

/// A finished HLS playlist whose one segment is `target`, a file on the host.
fn local_playlist(target: &Path) -> String {
    format!(
        "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:2,\n{}\n#EXT-X-ENDLIST\n",
        target.display()
    )
}

/// Uploads `bytes` as `name`, giving up after `secs` (a hung probe fails the test, not CI).
async fn post(
    app: &TestApp,
    token: &str,
    name: &str,
    bytes: &[u8],
    secs: u64,
) -> reqwest::Response {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(name.to_owned()),
    );
    app.client
        .post(app.url("/api/v1/tracks"))
        .bearer_auth(token)
        .timeout(Duration::from_secs(secs))
        .multipart(form)
        .send()
        .await
        .unwrap_or_else(|e| panic!("uploading {name}: {e}"))
}

/// Pids of this process's ffprobe children working on a file under `dir`.
fn ffprobes_under(dir: &Path) -> Vec<u32> {
    let me = std::process::id();
    let dir = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces, so split after the last ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let ppid: Option<u32> = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if ppid == Some(me)
            && head.ends_with("(ffprobe")
            && String::from_utf8_lossy(&cmdline).contains(&dir)
        {
            found.push(pid);
        }
    }
    found
}

/// Asserts a 415 `not_audio` envelope whose message names nothing of the server's disk.
async fn assert_not_audio_without_paths(app: &TestApp, resp: reqwest::Response) -> Value {
    let body = assert_envelope(resp, 415, "not_audio").await;
    let message = body["error"]["message"].as_str().unwrap();
    let data_dir = app.data_dir.to_string_lossy();
    for leak in ["/tmp", "upload-", &*data_dir, "/proc", "/srv", "/var"] {
        assert!(!message.contains(leak), "{leak:?} in {message:?}");
    }
    body
}

#[tokio::test]
async fn a_live_playlist_named_mp3_is_refused_at_once_and_leaves_no_ffprobe() {
    require_tool("ffprobe");
    let app = spawn_app().await;
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    let started = Instant::now();
    // Unrestricted, ffprobe kept waiting on this for more than 100 s.
    let resp = post(&app, &ed, "x.mp3", LIVE_PLAYLIST.as_bytes(), 15).await;
    let took = started.elapsed();
    assert_not_audio_without_paths(&app, resp).await;
    assert!(took < Duration::from_secs(5), "refused after {took:?}");
    assert_eq!(ffprobes_under(&app.data_dir), Vec::<u32>::new());
    app.stop().await;
}

#[tokio::test]
async fn a_playlist_naming_a_file_on_the_host_is_refused_and_nothing_is_kept() {
    let fx = tempfile::tempdir().unwrap();
    let secret = tone(fx.path(), "secret.mp3", 2, 128);
    let app = spawn_app().await;
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    // As the stored original of another track would be, too: any file Veza can read.
    let text = local_playlist(&secret);
    let resp = post(&app, &ed, "innocent.mp3", text.as_bytes(), 15).await;
    assert_not_audio_without_paths(&app, resp).await;
    let page = app.get_json("/api/v1/tracks", Some(&ed)).await;
    assert_eq!(page["tracks"].as_array().unwrap().len(), 0, "{page}");
    assert!(
        app.state.store.list("").await.unwrap().is_empty(),
        "no blob kept"
    );
    // The same file as itself is welcome: the refusal is about the playlist.
    let t = app.upload(&ed, &secret).await;
    assert_eq!(t["codec"], "mp3");
    app.stop().await;
}

#[tokio::test]
async fn a_refusal_names_no_server_path() {
    let app = spawn_app().await;
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    // lofty and ffprobe both fail on text; ffprobe's stderr quoted the spool file's path.
    let resp = post(&app, &ed, "notes.mp3", b"these are not the bytes", 15).await;
    let body = assert_not_audio_without_paths(&app, resp).await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("not a recognised audio container"),
        "{message}"
    );
    let resp = post(&app, &ed, "x.mp3", LIVE_PLAYLIST.as_bytes(), 15).await;
    assert_not_audio_without_paths(&app, resp).await;
    app.stop().await;
}

#[test]
fn import_of_playlists_named_mp3_fails_them_without_hanging() {
    require_tool("ffprobe");
    let home = tempfile::tempdir().unwrap();
    let tree = home.path().join("music");
    std::fs::create_dir_all(&tree).unwrap();
    let secret = tone(home.path(), "secret.mp3", 2, 128);
    std::fs::write(tree.join("live.mp3"), LIVE_PLAYLIST).unwrap();
    std::fs::write(tree.join("local.mp3"), local_playlist(&secret)).unwrap();
    std::fs::copy(&secret, tree.join("real.mp3")).unwrap();

    let migrated = veza(home.path()).arg("migrate").output().unwrap();
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    let mut child = veza(home.path())
        .arg("import")
        .arg(&tree)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let guard = Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > guard {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "veza import still running after {guard:?}: {}{}",
                stdout(&out),
                stderr(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let took = started.elapsed();
    let (err, text) = (stderr(&out), stdout(&out));
    assert_eq!(out.status.code(), Some(1), "{text}{err}");
    assert!(
        err.contains("1 imported, 0 duplicates, 0 skipped (not audio), 2 failed"),
        "{err}"
    );
    assert!(
        text.contains("failed live.mp3") && text.contains("failed local.mp3"),
        "{text}"
    );
    assert!(text.contains("imported real.mp3"), "{text}");
    assert!(took < Duration::from_secs(30), "import took {took:?}");
}

/// A hung ffprobe (a script that sleeps) as the configured program: the upload's client gives
/// up, and the probe's child goes with its request instead of running on.
#[tokio::test]
async fn a_client_that_goes_away_takes_its_ffprobe_with_it() {
    use std::os::unix::fs::PermissionsExt;
    let fx = tempfile::tempdir().unwrap();
    let pid_file = fx.path().join("pid");
    let fake: PathBuf = fx.path().join("fake-ffprobe");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho $$ > '{}'\nexec sleep 60\n",
            pid_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let program = fake.display().to_string();
    let app = spawn_app_with(move |c| c.hls.ffprobe = program).await;
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"not audio for lofty".to_vec()).file_name("x.mp3"),
    );
    let gone = app
        .client
        .post(app.url("/api/v1/tracks"))
        .bearer_auth(&ed)
        .timeout(Duration::from_secs(2))
        .multipart(form)
        .send()
        .await;
    assert!(gone.is_err(), "the fake ffprobe answered: {gone:?}");
    let pid = std::fs::read_to_string(&pid_file).expect("the fake ffprobe ran");
    let proc = PathBuf::from(format!("/proc/{}", pid.trim()));
    let deadline = Instant::now() + Duration::from_secs(5);
    while proc.exists() {
        assert!(
            Instant::now() < deadline,
            "ffprobe {} outlived its request",
            pid.trim()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}

/// A packaging failure is shown to anyone who can see the track (`status_detail`) and to
/// admins (`last_error`): ffmpeg's message quotes its input, which lives in the data dir.
#[tokio::test]
async fn a_failed_packaging_names_no_server_path() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("veza-data");
    let d2 = data.clone();
    let (ed, id) = crate::helpers::track_with_damaged_original(&data, 2, 1).await;

    let app = spawn_app_with(move |c| {
        c.data_dir = d2.clone();
        c.storage.local_root = d2.join("blobs");
    })
    .await;
    let t = app.wait_status(&ed, &id, "failed", 60).await;
    let detail = t["status_detail"].as_str().unwrap();
    let jobs = app
        .get_json(&format!("/api/v1/jobs?track_id={id}"), Some(&ed))
        .await;
    let last_error = jobs["jobs"][0]["last_error"].as_str().unwrap_or_default();
    assert!(detail.starts_with("HLS packaging failed"), "{detail}");
    let home_dir = home.path().to_string_lossy();
    for text in [detail, last_error] {
        assert!(!text.contains(&*home_dir), "{text}");
        assert!(!text.contains("/work/job-"), "{text}");
    }
    app.stop().await;
}
