//! The library against real parts: audio generated with ffmpeg, uploaded over HTTP, stored in
//! the blob store, listed, edited, deleted; `veza import` on a real tree; kill -9 mid-upload.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use veza::accounts::Role;

use crate::helpers::{
    assert_envelope, cli_admin_token, require_tool, serve_binary, spawn_app, spawn_app_with,
    stderr, stdout, user_with_token, veza,
};

/// Generated fixtures, made once per test in a temp dir.
struct Fixtures {
    dir: tempfile::TempDir,
}

impl Fixtures {
    fn new() -> Fixtures {
        require_tool("ffmpeg");
        let f = Fixtures {
            dir: tempfile::tempdir().unwrap(),
        };
        f.ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "color=c=red:s=32x32",
            "-frames:v",
            "1",
            "cover.png",
        ]);
        f
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ffmpeg(&self, args: &[&str]) {
        let out = Command::new("ffmpeg")
            .current_dir(self.dir.path())
            .args(["-v", "error", "-y"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ffmpeg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A 2 s 440 Hz tone with tags (and cover art where the container allows it).
    fn tone(&self, name: &str, secs: u32, freq: u32) -> PathBuf {
        let ext = name.rsplit('.').next().unwrap();
        let src = format!("sine=frequency={freq}:duration={secs}");
        let tags = [
            "-metadata",
            "title=Sine Tone",
            "-metadata",
            "artist=Tone Artist",
            "-metadata",
            "album=Test Album",
            "-metadata",
            "track=3",
        ];
        let mut args: Vec<&str> = vec!["-f", "lavfi", "-i", &src];
        match ext {
            "mp3" => args.extend([
                "-i",
                "cover.png",
                "-map",
                "0:a",
                "-map",
                "1:v",
                "-c:a",
                "libmp3lame",
                "-b:a",
                "128k",
                "-c:v",
                "png",
                "-disposition:v",
                "attached_pic",
                "-id3v2_version",
                "3",
            ]),
            "flac" => args.extend([
                "-i",
                "cover.png",
                "-map",
                "0:a",
                "-map",
                "1:v",
                "-c:a",
                "flac",
                "-c:v",
                "png",
                "-disposition:v",
                "attached_pic",
            ]),
            "m4a" => args.extend([
                "-i",
                "cover.png",
                "-map",
                "0:a",
                "-map",
                "1:v",
                "-c:a",
                "aac",
                "-b:a",
                "96k",
                "-c:v",
                "png",
                "-disposition:v",
                "attached_pic",
            ]),
            "opus" => args.extend(["-c:a", "libopus", "-b:a", "64k"]),
            "wav" => args.extend(["-c:a", "pcm_s16le"]),
            other => panic!("no recipe for {other}"),
        }
        args.extend(tags);
        args.push(name);
        self.ffmpeg(&args);
        self.path(name)
    }
}

#[tokio::test]
async fn uploads_extract_every_field_for_each_format() {
    let fx = Fixtures::new();
    let app = spawn_app().await;
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    let cover_png = std::fs::read(fx.path("cover.png")).unwrap();
    for (name, codec, ctype, has_cover) in [
        ("t.mp3", "mp3", "audio/mpeg", true),
        ("t.flac", "flac", "audio/flac", true),
        ("t.m4a", "aac", "audio/mp4", true),
        ("t.opus", "opus", "audio/ogg", false),
        ("t.wav", "pcm", "audio/wav", false),
    ] {
        let file = fx.tone(name, 2, 440);
        let resp = app.upload_with(&ed, &file, &[]).await;
        assert_eq!(resp.status(), 201, "{name}: {}", resp.text().await.unwrap());
        let t: Value = resp.json().await.unwrap();
        assert_eq!(t["title"], "Sine Tone", "{name} {t}");
        assert_eq!(t["artist"], "Tone Artist", "{name}");
        assert_eq!(t["album"], "Test Album", "{name}");
        if name != "t.wav" {
            assert_eq!(t["track_number"], 3, "{name} {t}");
        }
        let ms = t["duration_ms"].as_u64().unwrap();
        assert!((1900..=2100).contains(&ms), "{name}: duration {ms}");
        assert_eq!(t["codec"], codec, "{name}");
        assert_eq!(t["content_type"], ctype, "{name}");
        assert_eq!(t["channels"], 1, "{name}");
        assert!(t["sample_rate"].as_u64().unwrap() >= 44100, "{name}");
        assert_eq!(
            t["size_bytes"].as_u64().unwrap(),
            std::fs::metadata(&file).unwrap().len()
        );
        // HLS is on by default: the upload answers before packaging, which makes it ready.
        assert_eq!(t["status"], "processing", "{name}");
        assert_eq!(t["has_hls"], false, "{name}");
        assert_eq!(t["visibility"], "public");
        assert_eq!(t["has_cover"], has_cover, "{name}");
        let id = t["id"].as_str().unwrap();
        let cover = app.get(&format!("/api/v1/tracks/{id}/cover"), None).await;
        if has_cover {
            assert_eq!(cover.status(), 200, "{name}");
            assert_eq!(cover.headers()["content-type"], "image/png");
            assert_eq!(
                cover.bytes().await.unwrap().to_vec(),
                cover_png,
                "{name} cover bytes"
            );
        } else {
            assert_envelope(cover, 404, "not_found").await;
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn a_byte_identical_upload_returns_the_existing_track_and_no_second_blob() {
    let fx = Fixtures::new();
    let app = spawn_app().await;
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    let file = fx.tone("a.mp3", 1, 500);
    let first: Value = app
        .upload_with(&ed, &file, &[("title", "Override")])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["title"], "Override");
    let again = app.upload_with(&ed, &file, &[]).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    let originals = app.state.store.list("originals").await.unwrap();
    assert_eq!(originals.len(), 1, "{originals:?}");
    app.stop().await;
}

#[tokio::test]
async fn oversize_and_non_audio_uploads_are_refused_and_nothing_is_kept() {
    let fx = Fixtures::new();
    let app = spawn_app_with(|c| c.storage.max_upload_bytes = 8 * 1024).await;
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    let big = fx.tone("big.wav", 1, 300); // ~88 KB
    assert_envelope(
        app.upload_with(&ed, &big, &[]).await,
        413,
        "payload_too_large",
    )
    .await;
    let text = fx.path("notes.mp3");
    std::fs::write(&text, "these are not the bytes you are looking for").unwrap();
    let r = assert_envelope(app.upload_with(&ed, &text, &[]).await, 415, "not_audio").await;
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not an audio file")
    );
    let raw = app
        .client
        .post(app.url("/api/v1/tracks"))
        .bearer_auth(&ed)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_envelope(raw, 415, "unsupported_media_type").await;
    let anon = app
        .client
        .post(app.url("/api/v1/tracks"))
        .multipart(reqwest::multipart::Form::new().text("title", "x"))
        .send()
        .await
        .unwrap();
    assert_envelope(anon, 401, "unauthorized").await;

    // A body cut off before the closing boundary: the client's fault, not a 5xx.
    let cut = app
        .client
        .post(app.url("/api/v1/tracks"))
        .bearer_auth(&ed)
        .header("content-type", "multipart/form-data; boundary=XB")
        .body(
            "--XB\r\ncontent-disposition: form-data; name=\"file\"; filename=\"a.mp3\"\r\n\r\nabc",
        )
        .send()
        .await
        .unwrap();
    assert_envelope(cut, 400, "invalid_body").await;

    let page: Value = app.get_json("/api/v1/tracks", Some(&ed)).await;
    assert_eq!(page["tracks"].as_array().unwrap().len(), 0);
    assert!(
        app.state.store.list("").await.unwrap().is_empty(),
        "no blob kept"
    );
    let spool = app.data_dir.join("tmp");
    let left = std::fs::read_dir(&spool).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "spool files left in {}", spool.display());
    app.stop().await;
}

#[tokio::test]
async fn listing_filters_searches_and_paginates_stably() {
    let fx = Fixtures::new();
    let app = spawn_app().await;
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    let mut ids = Vec::new();
    for (i, (title, vis)) in [
        ("Blue Monday", "public"),
        ("Blue Train", "private"),
        ("Red Rain", "public"),
        ("Green Onions", "unlisted"),
    ]
    .iter()
    .enumerate()
    {
        let f = fx.tone(&format!("l{i}.opus"), 1, 300 + i as u32 * 50);
        let t: Value = app
            .upload_with(
                &ed,
                &f,
                &[("title", *title), ("visibility", *vis), ("artist", "Band")],
            )
            .await
            .json()
            .await
            .unwrap();
        ids.push(t["id"].as_str().unwrap().to_owned());
    }
    let get = |q: &str, auth: bool| {
        let mut r = app.client.get(app.url(&format!("/api/v1/tracks{q}")));
        if auth {
            r = r.bearer_auth(&ed);
        }
        async move { r.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let titles = |v: &Value| {
        v["tracks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["title"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        titles(&get("", false).await),
        vec!["Red Rain", "Blue Monday"],
        "anonymous: public only, newest first"
    );
    assert_eq!(
        titles(&get("?q=blue&sort=newest", true).await),
        vec!["Blue Train", "Blue Monday"]
    );
    assert_eq!(titles(&get("?q=mon", false).await), vec!["Blue Monday"]);
    assert_eq!(
        titles(&get("?visibility=unlisted", true).await),
        vec!["Green Onions"]
    );
    assert_eq!(
        titles(&get("?sort=title", true).await),
        vec!["Blue Monday", "Blue Train", "Green Onions", "Red Rain"]
    );
    // Unlisted: readable by id without an account, never listed.
    assert_eq!(
        app.get(&format!("/api/v1/tracks/{}", ids[3]), None)
            .await
            .status(),
        200
    );
    assert_envelope(
        app.get(&format!("/api/v1/tracks/{}", ids[1]), None).await,
        404,
        "not_found",
    )
    .await;
    assert_envelope(
        app.get("/api/v1/tracks/not-a-uuid", None).await,
        404,
        "not_found",
    )
    .await;
    let bad = app.get("/api/v1/tracks?sort=size", None).await;
    assert_envelope(bad, 400, "invalid_query").await;

    // Pages of 1 by title; an insert sorting before the cursor does not shift later pages.
    let p1 = get("?sort=title&limit=1", true).await;
    assert_eq!(titles(&p1), vec!["Blue Monday"]);
    let cur = p1["next_cursor"].as_str().unwrap().to_owned();
    let f = fx.tone("l9.opus", 1, 900);
    app.upload_with(&ed, &f, &[("title", "Aaa First")]).await;
    let p2 = get(&format!("?sort=title&limit=2&cursor={cur}"), true).await;
    assert_eq!(titles(&p2), vec!["Blue Train", "Green Onions"]);
    let p3 = get(
        &format!(
            "?sort=title&limit=2&cursor={}",
            p2["next_cursor"].as_str().unwrap()
        ),
        true,
    )
    .await;
    assert_eq!(titles(&p3), vec!["Red Rain"]);
    assert!(p3["next_cursor"].is_null());
    app.stop().await;
}

#[tokio::test]
async fn a_search_lists_the_best_matches_first_and_pages_through_them() {
    let fx = Fixtures::new();
    let app = spawn_app().await;
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    // Oldest first: the best match is the oldest, so "newest" and "relevance" differ.
    for (i, title) in [
        "River",
        "Lake",
        "A Long Slow Song About Walking Down To The River",
        "Down The River",
    ]
    .iter()
    .enumerate()
    {
        let f = fx.tone(&format!("r{i}.opus"), 1, 500 + i as u32 * 40);
        let r = app.upload_with(&ed, &f, &[("title", *title)]).await;
        assert_eq!(r.status(), 201);
    }
    let titles = |q: String| {
        let r = app
            .client
            .get(app.url(&format!("/api/v1/tracks{q}")))
            .bearer_auth(&ed);
        async move {
            let v: Value = r.send().await.unwrap().json().await.unwrap();
            let t: Vec<String> = v["tracks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["title"].as_str().unwrap().to_owned())
                .collect();
            (t, v["next_cursor"].as_str().map(str::to_owned))
        }
    };
    let best = vec![
        "River",
        "Down The River",
        "A Long Slow Song About Walking Down To The River",
    ];
    assert_eq!(
        titles("?q=river".into()).await.0,
        best,
        "relevance is the default with q"
    );
    assert_eq!(titles("?q=river&sort=relevance".into()).await.0, best);
    let newest = titles("?q=river&sort=newest".into()).await.0;
    assert_eq!(newest.first().map(String::as_str), Some("Down The River"));
    // Pages of one follow the same order, without repeats or gaps.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("?q=river&limit=1&cursor={c}"),
            None => "?q=river&limit=1".into(),
        };
        let (page, next) = titles(q).await;
        paged.extend(page);
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
        assert!(paged.len() <= 3, "{paged:?}");
    }
    assert_eq!(paged, best);
    let bad = app.get("/api/v1/tracks?sort=relevance", Some(&ed)).await;
    assert_envelope(bad, 400, "invalid_field").await;
    app.stop().await;
}

#[tokio::test]
async fn edits_apply_and_delete_removes_rows_and_blobs() {
    let fx = Fixtures::new();
    let app = spawn_app().await;
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    let t: Value = app
        .upload_with(&ed, &fx.tone("d.mp3", 1, 700), &[])
        .await
        .json()
        .await
        .unwrap();
    let id = t["id"].as_str().unwrap();
    let url = app.url(&format!("/api/v1/tracks/{id}"));
    let patched: Value = app.client.patch(&url).bearer_auth(&ed)
        .json(&json!({"title": "New Title", "visibility": "private", "tags": ["demo", "sine"], "track_number": null}))
        .send().await.unwrap().json().await.unwrap();
    assert_eq!(patched["title"], "New Title");
    assert_eq!(patched["visibility"], "private");
    assert_eq!(patched["tags"], json!(["demo", "sine"]));
    assert!(patched["track_number"].is_null());
    let empty = app
        .client
        .patch(&url)
        .bearer_auth(&ed)
        .json(&json!({"title": "  "}))
        .send()
        .await
        .unwrap();
    assert_envelope(empty, 400, "invalid_field").await;
    assert_envelope(app.client.get(&url).send().await.unwrap(), 404, "not_found").await; // private now

    assert_eq!(
        app.state.store.list("").await.unwrap().len(),
        2,
        "original + cover"
    );
    assert_eq!(
        app.client
            .delete(&url)
            .bearer_auth(&ed)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_envelope(
        app.client.get(&url).bearer_auth(&ed).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    assert!(
        app.state.store.list("").await.unwrap().is_empty(),
        "blobs removed"
    );
    assert_envelope(
        app.client
            .delete(&url)
            .bearer_auth(&ed)
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    app.stop().await;
}

#[test]
fn import_walks_a_tree_and_reports_each_outcome() {
    let fx = Fixtures::new();
    let home = tempfile::tempdir().unwrap();
    let tree = home.path().join("music");
    std::fs::create_dir_all(tree.join("a/b")).unwrap();
    std::fs::copy(fx.tone("one.mp3", 1, 410), tree.join("one.mp3")).unwrap();
    std::fs::copy(fx.tone("two.flac", 1, 420), tree.join("a/two.flac")).unwrap();
    std::fs::copy(fx.tone("three.opus", 1, 430), tree.join("a/b/three.opus")).unwrap();
    std::fs::copy(fx.path("one.mp3"), tree.join("a/b/copy-of-one.mp3")).unwrap(); // duplicate
    std::fs::write(tree.join("a/cover.txt"), "not audio").unwrap();
    std::fs::write(tree.join("a/b/broken.mp3"), [0u8; 4096]).unwrap();

    crate::helpers::migrate(home.path());
    let run = |jobs: &str| {
        veza(home.path())
            .args(["import", "-j", jobs])
            .arg(&tree)
            .output()
            .unwrap()
    };
    let zero = run("0");
    assert_eq!(zero.status.code(), Some(2), "{}", stderr(&zero));
    assert!(stderr(&zero).contains("--jobs"), "{}", stderr(&zero));
    // Four files at a time: the outcome is the one a sequential run gives.
    let first = run("4");
    let err = stderr(&first);
    assert_eq!(
        first.status.code(),
        Some(1),
        "a corrupt file fails the run: {err}"
    );
    assert!(
        err.contains("3 imported, 1 duplicates, 1 skipped (not audio), 1 failed"),
        "{err}"
    );
    assert!(err.contains("broken.mp3"), "{err}");
    let out = stdout(&first);
    // The walk is sorted: a/b/copy-of-one.mp3 comes before one.mp3, so the copy is imported,
    // whichever of the two finished hashing first.
    assert!(
        out.contains("imported a/b/copy-of-one.mp3") && out.contains("duplicate one.mp3"),
        "{out}"
    );

    std::fs::remove_file(tree.join("a/b/broken.mp3")).unwrap();
    let second = run("1");
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("0 imported, 4 duplicates, 1 skipped (not audio), 0 failed"),
        "{}",
        stderr(&second)
    );
    let dry = veza(home.path())
        .args(["import", "--dry-run"])
        .arg(&tree)
        .output()
        .unwrap();
    assert!(dry.status.success());
    assert!(stderr(&dry).contains("0 imported, 4 duplicates"));
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}

#[test]
fn kill_9_in_the_middle_of_an_upload_leaves_no_object_and_no_row() {
    use std::io::Write;
    let fx = Fixtures::new();
    let home = tempfile::tempdir().unwrap();
    let token = cli_admin_token(home.path());

    let (mut child, addr) = serve_binary(home.path(), &["serve"]);
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    let boundary = "XBOUNDARYX";
    let head = format!(
        "--{boundary}\r\ncontent-disposition: form-data; name=\"file\"; filename=\"big.wav\"\r\ncontent-type: audio/wav\r\n\r\n"
    );
    let total = 64 * 1024 * 1024;
    write!(s, "POST /api/v1/tracks HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\ncontent-type: multipart/form-data; boundary={boundary}\r\ncontent-length: {total}\r\n\r\n{head}").unwrap();
    let chunk = vec![0x55u8; 1024 * 1024];
    for _ in 0..8 {
        s.write_all(&chunk).unwrap();
    }
    s.flush().unwrap();
    let spool = home.path().join("veza-data/tmp");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while files_under(&spool)
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum::<u64>()
        < 1024 * 1024
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the upload never reached the spool"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    drop(s);
    assert!(
        !files_under(&spool).is_empty(),
        "a partial spool file is what kill -9 leaves"
    );

    let (mut child, addr) = serve_binary(home.path(), &["serve"]);
    assert!(
        files_under(&spool).is_empty(),
        "start-up sweeps the partial upload"
    );
    let blobs: Vec<_> = files_under(&home.path().join("veza-data/blobs"));
    assert!(blobs.is_empty(), "no object: {blobs:?}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = reqwest::Client::new();
        let page: Value = c
            .get(format!("http://{addr}/api/v1/tracks"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(page["tracks"].as_array().unwrap().len(), 0, "no row");
        // The restarted server takes uploads again.
        let f = fx.tone("after.opus", 1, 600);
        let r = crate::helpers::upload_to(&c, &format!("http://{addr}"), &token, &f, &[]).await;
        assert_eq!(r.status(), 201);
    });
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn uploads_imports_and_deletes_work_on_the_s3_backend() {
    use crate::helpers::{ACCESS_KEY, SECRET_KEY, start_s3s};
    let fx = Fixtures::new();
    let s3_root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(s3_root.path().join("music")).unwrap();
    let s3 = start_s3s(s3_root.path());
    let endpoint = s3.endpoint.clone();
    let app = spawn_app_with(|c| {
        c.storage.backend = veza::config::StorageBackend::S3;
        c.storage.s3.endpoint = Some(endpoint.parse().unwrap());
        c.storage.s3.bucket = "music".into();
        c.storage.s3.access_key_id = ACCESS_KEY.into();
        c.storage.s3.secret_access_key = veza::config::Secret::new(SECRET_KEY);
    })
    .await;
    assert_eq!(app.state.store.backend(), "s3");
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    let t: Value = app
        .upload_with(&ed, &fx.tone("s3.mp3", 1, 440), &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(t["has_cover"], true, "{t}");
    let id = t["id"].as_str().unwrap();
    let cover = app.get(&format!("/api/v1/tracks/{id}/cover"), None).await;
    assert_eq!(
        cover.bytes().await.unwrap().to_vec(),
        std::fs::read(fx.path("cover.png")).unwrap()
    );
    assert_eq!(app.state.store.list("originals").await.unwrap().len(), 1);
    assert_eq!(
        app.delete(&format!("/api/v1/tracks/{id}"), Some(&ed))
            .await
            .status(),
        204
    );
    assert!(
        app.state.store.list("").await.unwrap().is_empty(),
        "original and cover deleted from the bucket"
    );
    app.stop().await;

    // `veza import` into the same bucket through the CLI's own configuration.
    let home = tempfile::tempdir().unwrap();
    let tree = home.path().join("in");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::copy(fx.tone("imp.flac", 1, 480), tree.join("imp.flac")).unwrap();
    crate::helpers::migrate(home.path());
    let out = veza(home.path())
        .args(["import"])
        .arg(&tree)
        .env("VEZA_STORAGE__BACKEND", "s3")
        .env("VEZA_STORAGE__S3__ENDPOINT", &s3.endpoint)
        .env("VEZA_STORAGE__S3__BUCKET", "music")
        .env("VEZA_STORAGE__S3__ACCESS_KEY_ID", ACCESS_KEY)
        .env("VEZA_STORAGE__S3__SECRET_ACCESS_KEY", SECRET_KEY)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("1 imported"), "{}", stderr(&out));
    let in_bucket = files_under(&s3_root.path().join("music/originals"));
    assert_eq!(in_bucket.len(), 1, "{in_bucket:?}");
}
