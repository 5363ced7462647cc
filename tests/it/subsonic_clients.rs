//! The `/rest/` (OpenSubsonic) API driven by client libraries nobody here wrote: `py-sonic`
//! (PyPI) and `subsonic-api` (npm), run as scripts from `tests/subsonic/` against the real app
//! with tagged tracks made by ffmpeg and packaged for real. Every JSON answer they saw is then
//! validated against the OpenSubsonic OpenAPI description in `../shared/subsonic/` and compared
//! with its XML form. A second run goes through the loopback Bunny edge stand-in.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use veza::accounts::Role;
use veza::config::Config;

use crate::helpers::{
    TestApp, free_port, header, hex_sha, require_tool, spawn_app_behind_edge, spawn_app_with,
    stderr, stdout, user_with_token,
};

/// `user_with_token`'s login password: Subsonic must refuse it.
const LOGIN_PASSWORD: &str = "a-long-password";
const BUNNY_KEY: &str = "7d3f1c2e-5a4b-4c6d-8e9f-0a1b2c3d4e5f";
const ORIGIN_SECRET: &str = "subsonic-edge-secret-0123456789ab";
/// `stream?maxBitRate=` asks for this rung of the test ladder.
const TRANSCODE_KBPS: u32 = 64;

/// A track's tags, as ffmpeg writes them and the clients expect them back.
struct Tags {
    title: &'static str,
    artist: &'static str,
    album: &'static str,
    album_artist: &'static str,
    genre: &'static str,
    year: u32,
    track: u32,
    cover: bool,
}

/// Two tracks on one album (one with a featured artist, one with a cover picture), one on
/// another album in another genre and year.
const TRACKS: [Tags; 3] = [
    Tags {
        title: "Morning Light",
        artist: "Ada Stone",
        album: "First Album",
        album_artist: "Ada Stone",
        genre: "Ambient",
        year: 2021,
        track: 1,
        cover: true,
    },
    Tags {
        title: "Evening Tide",
        artist: "Ada Stone feat. Bo",
        album: "First Album",
        album_artist: "Ada Stone",
        genre: "Ambient",
        year: 2021,
        track: 2,
        cover: false,
    },
    Tags {
        title: "Paper Boats",
        artist: "Cy Harbour",
        album: "Second Thoughts",
        album_artist: "Cy Harbour",
        genre: "Jazz",
        year: 2019,
        track: 1,
        cover: false,
    },
];

/// A 4 s, 192 kbps MP3 with `t`'s tags (and an attached PNG when `t.cover`), made by ffmpeg.
fn tagged(dir: &Path, i: usize, t: &Tags) -> PathBuf {
    let ffmpeg = require_tool("ffmpeg");
    let name = format!("track{i}.mp3");
    let mut cmd = Command::new(&ffmpeg);
    cmd.current_dir(dir)
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"]);
    cmd.arg(format!("sine=frequency={}:duration=4", 330 + 110 * i));
    if t.cover {
        // A still picture first: a lavfi video source as the second input never ends.
        let png = dir.join("cover.png");
        let made = Command::new(&ffmpeg)
            .args([
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "color=c=teal:s=64x64",
            ])
            .args(["-frames:v", "1"])
            .arg(&png)
            .output()
            .unwrap();
        assert!(made.status.success(), "ffmpeg: {}", stderr(&made));
        cmd.arg("-i").arg(&png);
        cmd.args(["-map", "0:a", "-map", "1:v", "-c:v", "png"]);
        cmd.args(["-disposition:v", "attached_pic"]);
    }
    cmd.args(["-c:a", "libmp3lame", "-b:a", "192k", "-id3v2_version", "3"]);
    for (k, v) in [
        ("title", t.title.to_owned()),
        ("artist", t.artist.to_owned()),
        ("album", t.album.to_owned()),
        ("album_artist", t.album_artist.to_owned()),
        ("genre", t.genre.to_owned()),
        ("date", t.year.to_string()),
        ("track", t.track.to_string()),
    ] {
        cmd.arg("-metadata").arg(format!("{k}={v}"));
    }
    let out = cmd.arg(&name).output().unwrap();
    assert!(out.status.success(), "ffmpeg: {}", stderr(&out));
    dir.join(name)
}

/// The test ladder (64 and 128 kbps: the smallest packaging that has a 64 kbps rung).
fn ladder(c: &mut Config) {
    c.hls.ladder_kbps = vec![TRANSCODE_KBPS, 128];
}

/// `tests/subsonic/`.
fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/subsonic")
}

/// The venv's Python with py-sonic and jsonschema (`.ci/test` makes it).
fn python() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/cache/venv/bin/python");
    let ok = p.is_file()
        && Command::new(&p)
            .args(["-c", "import libsonic, jsonschema, referencing"])
            .status()
            .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{} with py-sonic, jsonschema and referencing is required by this test; run ./.ci/test, \
         which installs them",
        p.display()
    );
    p
}

/// `node`, with `subsonic-api` installed in `tests/subsonic/node_modules` (`npm ci`).
fn node() -> PathBuf {
    let node = require_tool("node");
    assert!(
        scripts()
            .join("node_modules/subsonic-api/package.json")
            .is_file(),
        "tests/subsonic/node_modules lacks subsonic-api; run ./.ci/test (or `npm ci` in \
         tests/subsonic)"
    );
    node
}

/// The OpenSubsonic description: `$OPENSUBSONIC_SPEC` or `<repo>/../shared/subsonic` (it is
/// read from there, never copied into the project). When it is absent the test says so
/// plainly, on stderr and in its `SKIPPED PART` line, and runs everything else: a clone
/// without the reference folder beside it still tests the clients.
fn spec_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("OPENSUBSONIC_SPEC")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/subsonic"));
    if dir.join("openapi/openapi.json").is_file() {
        return Some(dir);
    }
    let msg = format!(
        "the OpenSubsonic description is not at {}/openapi/openapi.json (set OPENSUBSONIC_SPEC \
         to the folder holding openapi/): the JSON schema and XML checks cannot run",
        dir.display()
    );
    eprintln!("SKIPPED PART: {msg}");
    None
}

/// Runs `program args` with the scene in its environment, from `tests/subsonic/`; prints its
/// output. On a non-zero exit, the failure with the output.
async fn run(program: PathBuf, args: &[&str], scene: &Path) -> Result<(), String> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let scene = scene.to_owned();
    let label = format!("{} {}", program.display(), args.join(" "));
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&program)
            .args(&args)
            .current_dir(scripts())
            .env("VEZA_SUBSONIC_SCENE", &scene)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    print!("{}", stdout(&out));
    eprint!("{}", stderr(&out));
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{label} failed ({}):\n{}{}",
        out.status,
        stdout(&out),
        stderr(&out)
    ))
}

/// Panics with every failed script's output.
fn all_passed(runs: Vec<Result<(), String>>) {
    let failed: Vec<String> = runs.into_iter().filter_map(Result::err).collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// A library on `app`: an admin with an API token and an app password, and the tagged tracks
/// uploaded and packaged. Returns the scene the scripts read (without `url`/`redirect_prefix`).
async fn library(app: &TestApp, dir: &Path, how_many: usize) -> Value {
    let (uid, token) = user_with_token(app, "root", Role::Admin).await;
    let mut tracks = Vec::new();
    for (i, t) in TRACKS.iter().take(how_many).enumerate() {
        let file = tagged(dir, i, t);
        let r = app
            .upload_with(&token, &file, &[("visibility", "public")])
            .await;
        let status = r.status();
        let up: Value = r.json().await.unwrap();
        assert_eq!(status, 201, "upload of {}: {up}", t.title);
        let id = up["id"].as_str().unwrap().to_owned();
        let sha = hex_sha(&std::fs::read(&file).unwrap());
        assert_eq!(up["sha256"], sha.as_str());
        tracks.push(json!({
            "id": id, "title": t.title, "artist": t.artist, "album": t.album,
            "album_artist": t.album_artist, "genre": t.genre, "year": t.year,
            "track": t.track, "cover": t.cover, "sha256": sha,
        }));
    }
    for t in &tracks {
        let got = app.wait_ready(&token, t["id"].as_str().unwrap()).await;
        // The track API reads the same tags.
        assert_eq!(got["album_artist"], t["album_artist"], "{got}");
        assert_eq!(got["genre"], t["genre"], "{got}");
        assert_eq!(got["year"], t["year"], "{got}");
    }
    let app_password = app_password_of(app, &token, &uid, "root").await;
    assert_ne!(app_password, LOGIN_PASSWORD);
    // A listener of the same household: their own stars, plays and playlists.
    let r = app
        .post_json(
            "/api/v1/users",
            Some(&token),
            &json!({"username": "kim", "password": "kims-login-password", "role": "listener"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let kim: Value = r.json().await.unwrap();
    let kim_password = app_password_of(app, &token, kim["id"].as_str().unwrap(), "kim").await;
    json!({
        "username": "root",
        "app_password": app_password,
        "listener": {"username": "kim", "app_password": kim_password},
        "login_password": LOGIN_PASSWORD,
        "api_key": token,
        "tracks": tracks,
        "transcode_kbps": TRANSCODE_KBPS,
        "record": dir.join("answers.jsonl"),
        "workdir": dir,
    })
}

/// A new app password for the user `id` (named `username`), made by the admin `token`.
async fn app_password_of(app: &TestApp, token: &str, id: &str, username: &str) -> String {
    let r = app
        .post_json(
            &format!("/api/v1/users/{id}/app-password"),
            Some(token),
            &json!({}),
        )
        .await;
    let status = r.status();
    let made: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["username"], username);
    made["app_password"].as_str().unwrap().to_owned()
}

fn write_scene(dir: &Path, scene: &Value) -> PathBuf {
    let path = dir.join("scene.json");
    std::fs::write(&path, serde_json::to_vec_pretty(scene).unwrap()).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn py_sonic_and_subsonic_api_browse_search_and_play_and_every_answer_matches_the_description()
{
    let (py, node) = (python(), node());
    let spec = spec_dir();
    let dir = tempfile::tempdir().unwrap();
    // Players follow the 302 to the signed URL, so the public URL is the app's real address.
    let port = free_port();
    let app = spawn_app_with(|c| {
        c.server.listen = ([127, 0, 0, 1], port).into();
        c.server.public_url = url::Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        ladder(c);
    })
    .await;
    let mut scene = library(&app, dir.path(), TRACKS.len()).await;
    scene["url"] = json!(app.url(""));
    scene["redirect_prefix"] = json!(app.url("/media/"));
    scene["spec"] = json!(spec);
    let scene_file = write_scene(dir.path(), &scene);

    // Every script runs even when one fails, so one run names every broken endpoint.
    let mut runs = vec![
        run(py.clone(), &["pysonic_client.py"], &scene_file).await,
        run(node, &["node_client.mjs"], &scene_file).await,
    ];

    if spec.is_some() {
        runs.push(run(py, &["validate.py"], &scene_file).await);
    }
    // py-sonic scrobbled the second track once; the track API shows the play.
    let id = scene["tracks"][1]["id"].as_str().unwrap();
    let t = app
        .get_json(&format!("/api/v1/tracks/{id}"), scene["api_key"].as_str())
        .await;
    let played = t["play_count"] == 1 && t["last_played_at"].as_i64().is_some_and(|s| s > 0);
    runs.push(
        played
            .then_some(())
            .ok_or(format!("one scrobble, in the track API: {t}")),
    );

    // A taken-down track: `stream` answers a Subsonic error, and the URL it signed before
    // answers 451.
    let id = scene["tracks"][2]["id"].as_str().unwrap();
    let key = scene["api_key"].as_str().unwrap();
    let rest = format!("/rest/stream?id={id}&apiKey={key}&f=json&c=t&v=1.16.1");
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let before = no_redirects.get(app.url(&rest)).send().await.unwrap();
    assert_eq!(before.status(), 302);
    let old_url = header(&before, "location").to_owned();
    let r = app
        .post_json(
            &format!("/api/v1/tracks/{id}/takedown"),
            Some(key),
            &json!({"reason": "DMCA notice 7"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let after = no_redirects.get(app.url(&rest)).send().await.unwrap();
    assert_eq!(after.status(), 200);
    let body: Value = after.json().await.unwrap();
    assert_eq!(body["subsonic-response"]["status"], "failed", "{body}");
    assert_eq!(
        reqwest::get(&old_url).await.unwrap().status(),
        451,
        "{old_url}"
    );
    app.stop().await;
    all_passed(runs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_bunny_edge_the_apps_stream_bytes_come_from_the_edge() {
    let py = python();
    let dir = tempfile::tempdir().unwrap();
    let (app, edge_url) = spawn_app_behind_edge(BUNNY_KEY, ORIGIN_SECRET, ladder).await;
    let mut scene = library(&app, dir.path(), 1).await;
    scene["url"] = json!(app.url(""));
    scene["redirect_prefix"] = json!(format!("{edge_url}/"));
    scene["only"] = json!(["stream"]);
    let scene_file = write_scene(dir.path(), &scene);
    // py-sonic plays the original, the 64 kbps AAC and the download, each through the edge.
    all_passed(vec![run(py, &["pysonic_client.py"], &scene_file).await]);

    // Players seek with range requests: the edge's token must allow them.
    let t = &scene["tracks"][0];
    let (id, key) = (
        t["id"].as_str().unwrap(),
        scene["api_key"].as_str().unwrap(),
    );
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let original = std::fs::read(dir.path().join("track0.mp3")).unwrap();
    for method in ["stream", "download"] {
        let r = no_redirects
            .get(app.url(&format!("/rest/{method}?id={id}&apiKey={key}&c=t&v=1.16.1")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302, "{method}");
        let loc = header(&r, "location").to_owned();
        assert!(loc.starts_with(&edge_url), "{method}: {loc}");
        let whole = app.client.get(&loc).send().await.unwrap();
        assert_eq!(whole.status(), 200, "{method}");
        assert_eq!(hex_sha(&whole.bytes().await.unwrap()), t["sha256"]);
        let part = app
            .client
            .get(&loc)
            .header("range", "bytes=1000-4999")
            .send()
            .await
            .unwrap();
        assert_eq!(part.status(), 206, "{method}");
        assert_eq!(
            header(&part, "content-range"),
            format!("bytes 1000-4999/{}", original.len())
        );
        assert_eq!(&part.bytes().await.unwrap()[..], &original[1000..5000]);
    }
    app.stop().await;
}
