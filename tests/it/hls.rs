//! HLS packaging on the job queue against real parts: tones generated with ffmpeg, uploaded
//! or imported, packaged by the real ffmpeg into the real local and S3 stores; a corrupt
//! original that fails, retries and dies; a missing ffmpeg; kill -9 mid-packaging.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};
use veza::accounts::Role;
use veza::storage::{BlobKey, BlobStore};

use crate::helpers::{
    TestApp, cli_admin_token, require_tool, serve_binary, spawn_app_with, stderr, stdout, tone,
    track_with_damaged_original, user_with_token, veza,
};

async fn jobs_of(app: &TestApp, token: &str, id: &str) -> Vec<Value> {
    let page = app
        .get_json(&format!("/api/v1/jobs?track_id={id}"), Some(token))
        .await;
    page["jobs"].as_array().unwrap().clone()
}

/// The track's jobs once none is running: a track turns `ready` inside its packaging job, a
/// moment before the worker records the job's success.
async fn settled_jobs_of(app: &TestApp, token: &str, id: &str) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let jobs = jobs_of(app, token, id).await;
        if jobs.iter().all(|j| j["state"] != "running") {
            return jobs;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a job stays running: {jobs:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn read(store: &BlobStore, key: &str) -> Vec<u8> {
    use futures_util::StreamExt;
    let mut obj = store
        .get(&BlobKey::parse(key).unwrap(), None)
        .await
        .unwrap_or_else(|e| panic!("{key}: {e}"));
    let mut out = Vec::new();
    while let Some(c) = obj.body.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    out
}

/// Checks the stored tree of a track like a player would: master → media playlists → init
/// and segments, every URI relative and present, every segment named by its SHA-256.
/// Returns the rung bitrates and the total duration of the first rendition.
async fn check_tree(store: &BlobStore, id: &str) -> (Vec<u32>, f64) {
    let dir = format!("tracks/{id}/hls/");
    let master = read(store, &format!("{dir}master.m3u8")).await;
    let master = match m3u8_rs::parse_playlist_res(&master).unwrap() {
        m3u8_rs::Playlist::MasterPlaylist(m) => m,
        _ => panic!("master.m3u8 is a media playlist"),
    };
    let mut rungs = Vec::new();
    let mut first_duration = None;
    let mut referenced = std::collections::BTreeSet::new();
    referenced.insert(format!("{dir}master.m3u8"));
    for v in &master.variants {
        assert!(relative(&v.uri), "{}", v.uri);
        assert_eq!(v.codecs.as_deref(), Some("mp4a.40.2"));
        assert!(v.bandwidth > 0 && v.average_bandwidth.unwrap() > 0);
        rungs.push(v.uri.trim_end_matches("k.m3u8").parse::<u32>().unwrap());
        referenced.insert(format!("{dir}{}", v.uri));
        let media = read(store, &format!("{dir}{}", v.uri)).await;
        let media = match m3u8_rs::parse_playlist_res(&media).unwrap() {
            m3u8_rs::Playlist::MediaPlaylist(m) => m,
            _ => panic!("{} is a master playlist", v.uri),
        };
        assert!(media.end_list, "{} has no ENDLIST", v.uri);
        let mut uris: Vec<String> = media.segments.iter().map(|s| s.uri.clone()).collect();
        let map = media.segments[0].map.as_ref().expect("EXT-X-MAP");
        uris.push(map.uri.clone());
        for uri in uris {
            assert!(relative(&uri), "{uri}");
            let bytes = read(store, &format!("{dir}{uri}")).await;
            let name = uri.rsplit('/').next().unwrap();
            let stem = name.split('.').next().unwrap();
            assert_eq!(stem, hex(&Sha256::digest(&bytes)), "{uri}");
            referenced.insert(format!("{dir}{uri}"));
        }
        let total: f64 = media.segments.iter().map(|s| f64::from(s.duration)).sum();
        first_duration.get_or_insert(total);
    }
    let stored: std::collections::BTreeSet<String> = store
        .list(&dir)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key.to_string())
        .collect();
    // One progressive AAC file per rung, named by its SHA-256 too.
    let progressive: Vec<&String> = stored.iter().filter(|k| k.ends_with(".m4a")).collect();
    assert_eq!(progressive.len(), rungs.len(), "{stored:?}");
    for key in progressive {
        let stem = key.rsplit('/').next().unwrap().trim_end_matches(".m4a");
        assert_eq!(stem, hex(&Sha256::digest(read(store, key).await)), "{key}");
        referenced.insert(key.clone());
    }
    // One waveform peaks object (issue 21), named by its SHA-256 too.
    let peaks: Vec<&String> = stored
        .iter()
        .filter(|k| k.starts_with(&format!("{dir}peaks/")))
        .collect();
    assert_eq!(peaks.len(), 1, "{stored:?}");
    let name = peaks[0].rsplit('/').next().unwrap();
    let bytes = read(store, peaks[0]).await;
    assert_eq!(name, format!("{}.json", hex(&Sha256::digest(&bytes))));
    referenced.insert(peaks[0].clone());
    // Nothing else under the prefix that no playlist names.
    assert_eq!(stored, referenced);
    (rungs, first_duration.unwrap())
}

fn relative(uri: &str) -> bool {
    !uri.contains("://") && !uri.starts_with('/') && !uri.contains("..")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn puts(app: &TestApp) -> u64 {
    app.state
        .metrics
        .storage_operations
        .with_label_values(&[app.state.store.backend(), "put", "ok"])
        .get()
}

#[tokio::test]
async fn uploads_become_a_content_addressed_ladder_and_a_rerun_uploads_nothing() {
    let fx = tempfile::tempdir().unwrap();
    let app = spawn_app_with(|_| {}).await;
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    let hi = app.upload(&ed, &tone(fx.path(), "hi.mp3", 30, 320)).await;
    let lo = app.upload(&ed, &tone(fx.path(), "lo.mp3", 30, 96)).await;
    assert_eq!(hi["status"], "processing");
    let (hi_id, lo_id) = (hi["id"].as_str().unwrap(), lo["id"].as_str().unwrap());

    let t = app.wait_status(&ed, hi_id, "ready", 120).await;
    assert_eq!(t["has_hls"], true);
    assert_eq!(t["status_detail"], Value::Null);
    let (rungs, secs) = check_tree(&app.state.store, hi_id).await;
    assert_eq!(rungs, vec![64, 128, 256]);
    assert!((secs - 30.0).abs() <= 0.5, "{secs}");
    app.wait_status(&ed, lo_id, "ready", 120).await;
    let (rungs, _) = check_tree(&app.state.store, lo_id).await;
    assert_eq!(
        rungs,
        vec![64],
        "a 96 kbps source gets only the rungs at or below it"
    );

    let jobs = settled_jobs_of(&app, &ed, hi_id).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0]["kind"], "package_hls");
    assert_eq!(jobs[0]["state"], "succeeded");
    assert_eq!(jobs[0]["attempts"], 1);
    assert_eq!(jobs[0]["progress"], 1.0);
    let renditions: i64 = {
        let id = hi_id.to_owned();
        app.state
            .db
            .call(move |c| {
                c.query_row(
                    "SELECT COUNT(*) FROM track_renditions WHERE track_id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .map_err(veza::db::DbError::from)
            })
            .await
            .unwrap()
    };
    assert_eq!(renditions, 3);

    // A second run of the same job: same names, nothing uploaded.
    let before = puts(&app);
    let id = hi_id.to_owned();
    let job_id = app
        .state
        .db
        .call(move |c| {
            let job = veza::jobs::NewJob::package_hls(&id);
            veza::jobs::store::enqueue(c, &job, 3, veza::clock::now())
        })
        .await
        .unwrap()
        .expect("no other packaging job is pending");
    app.state.jobs.notify();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let jobs = jobs_of(&app, &ed, hi_id).await;
        let j = jobs.iter().find(|j| j["id"] == job_id).unwrap();
        if j["state"] == "succeeded" {
            break;
        }
        assert!(Instant::now() < deadline, "{j}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(puts(&app), before, "the re-run uploaded something");
    check_tree(&app.state.store, hi_id).await;

    // Deleting the track removes its HLS tree.
    let r = app
        .delete(&format!("/api/v1/tracks/{hi_id}"), Some(&ed))
        .await;
    assert_eq!(r.status(), 204);
    let left = app
        .state
        .store
        .list(&format!("tracks/{hi_id}/"))
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
    app.stop().await;
}

#[tokio::test]
async fn without_ffmpeg_tracks_wait_in_processing_and_the_backlog_packages_once_it_is_there() {
    let fx = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let (d1, d2) = (data.clone(), data.clone());
    let app = spawn_app_with(move |c| {
        c.data_dir = d1.clone();
        c.storage.local_root = d1.join("blobs");
        c.hls.ffmpeg = "/nonexistent/ffmpeg".into();
    })
    .await;
    let ready = app.get_json("/readyz", None).await;
    assert_eq!(
        ready["status"], "ok",
        "HLS does not decide readiness: {ready}"
    );
    assert_eq!(ready["hls"]["available"], false, "{ready}");
    assert!(
        ready["checks"]["hls"]
            .as_str()
            .unwrap()
            .starts_with("unavailable"),
        "{ready}"
    );
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    let t = app.upload(&ed, &tone(fx.path(), "a.mp3", 8, 128)).await;
    let id = t["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let page = app
        .get_json(&format!("/api/v1/jobs?track_id={id}"), Some(&ed))
        .await;
    assert_eq!(page["hls"]["available"], false, "{page}");
    assert!(page["hls"]["reason"].as_str().unwrap().contains("ffmpeg"));
    assert_eq!(page["jobs"][0]["state"], "queued", "{page}");
    assert_eq!(
        page["jobs"][0]["attempts"], 0,
        "no attempt is spent waiting for ffmpeg"
    );
    let t = app
        .get_json(&format!("/api/v1/tracks/{id}"), Some(&ed))
        .await;
    assert_eq!(t["status"], "processing");
    app.stop().await;

    // ffmpeg "appears": the restarted server packages the backlog.
    let app = spawn_app_with(move |c| {
        c.data_dir = d2.clone();
        c.storage.local_root = d2.join("blobs");
    })
    .await;
    let t = app.wait_status(&ed, &id, "ready", 120).await;
    assert_eq!(t["has_hls"], true);
    let jobs = settled_jobs_of(&app, &ed, &id).await;
    assert_eq!(
        (jobs.len(), &jobs[0]["state"], &jobs[0]["attempts"]),
        (1, &Value::from("succeeded"), &Value::from(1))
    );
    app.stop().await;
}

#[tokio::test]
async fn with_hls_disabled_a_track_is_ready_with_its_original_and_no_job() {
    let fx = tempfile::tempdir().unwrap();
    let app = spawn_app_with(|c| c.hls.enabled = false).await;
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    let t = app.upload(&ed, &tone(fx.path(), "a.mp3", 2, 128)).await;
    assert_eq!(t["status"], "ready");
    assert_eq!(t["has_hls"], false);
    let page = app.get_json("/api/v1/jobs", Some(&ed)).await;
    assert_eq!(page["jobs"], Value::Array(vec![]));
    assert_eq!(page["hls"]["enabled"], false);
    app.stop().await;
}

#[tokio::test]
async fn a_corrupt_original_fails_retries_with_backoff_then_dies_and_can_be_retried() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("veza-data");
    let d2 = data.clone();
    let (ed, id) = track_with_damaged_original(&data, 4, 3).await;

    let app = spawn_app_with(move |c| {
        c.data_dir = d2.clone();
        c.storage.local_root = d2.join("blobs");
        c.jobs.max_attempts = 3;
        c.jobs.retry_base_secs = 1;
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut saw_backoff = false;
    let job = loop {
        let jobs = jobs_of(&app, &ed, &id).await;
        let j = jobs[0].clone();
        if j["state"] == "failed" {
            saw_backoff |= j["run_at"].as_i64().unwrap() > j["updated_at"].as_i64().unwrap();
            let t = app
                .get_json(&format!("/api/v1/tracks/{id}"), Some(&ed))
                .await;
            assert_eq!(t["status"], "processing", "{t}");
        }
        if j["state"] == "dead" {
            break j;
        }
        assert!(Instant::now() < deadline, "{j}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(saw_backoff, "a failed job waits before its retry");
    assert_eq!(job["attempts"], 3);
    let err = job["last_error"].as_str().unwrap();
    assert!(err.contains("ffmpeg failed"), "{err}");
    let t = app
        .get_json(&format!("/api/v1/tracks/{id}"), Some(&ed))
        .await;
    assert_eq!(t["status"], "failed");
    assert!(
        t["status_detail"]
            .as_str()
            .unwrap()
            .starts_with("HLS packaging failed"),
        "{t}"
    );
    let m = &app.state.metrics;
    assert_eq!(
        m.jobs.with_label_values(&["package_hls", "failed"]).get(),
        2
    );
    assert_eq!(m.jobs.with_label_values(&["package_hls", "dead"]).get(), 1);
    assert_eq!(m.jobs_dead.get(), 1);
    let text = m.render().unwrap();
    assert!(text.contains("veza_job_duration_seconds_count{kind=\"package_hls\"} 3"));
    app.stop().await;

    // The CLI sees and retries it; a bad id is a usage error.
    let listed = veza(home.path())
        .args(["jobs", "list", "--state", "dead"])
        .output()
        .unwrap();
    assert!(listed.status.success(), "{}", stderr(&listed));
    let job_id = job["id"].to_string();
    let out = stdout(&listed);
    assert!(out.lines().nth(1).unwrap().starts_with(&job_id), "{out}");
    assert!(out.contains("package_hls") && out.contains("3/3"), "{out}");
    let bad = veza(home.path())
        .args(["jobs", "retry", "999999"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("job not found"));
    let ok = veza(home.path())
        .args(["jobs", "retry", &job_id])
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", stderr(&ok));
    let queued = veza(home.path())
        .args(["jobs", "list", "--state", "queued"])
        .output()
        .unwrap();
    assert!(stdout(&queued).contains("0/3"), "{}", stdout(&queued));
}

#[tokio::test]
async fn the_retry_api_requeues_dead_jobs_and_refuses_running_or_done_ones() {
    let fx = tempfile::tempdir().unwrap();
    let app = spawn_app_with(|_| {}).await;
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    let t = app.upload(&ed, &tone(fx.path(), "a.mp3", 2, 128)).await;
    let id = t["id"].as_str().unwrap();
    app.wait_ready(&ed, id).await;
    let job = jobs_of(&app, &ed, id).await[0]["id"].clone();
    let r = app
        .client
        .post(app.url(&format!("/api/v1/jobs/{job}/retry")))
        .bearer_auth(&ed)
        .send()
        .await
        .unwrap();
    crate::helpers::assert_envelope(r, 409, "job_not_retryable").await;
    let r = app
        .client
        .post(app.url("/api/v1/jobs/424242/retry"))
        .bearer_auth(&ed)
        .send()
        .await
        .unwrap();
    crate::helpers::assert_envelope(r, 404, "not_found").await;
    let r = app.get("/api/v1/jobs?state=done", Some(&ed)).await;
    crate::helpers::assert_envelope(r, 400, "invalid_query").await;
    let r = app.get("/api/v1/jobs", None).await;
    assert_eq!(r.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn uploaded_and_imported_tracks_become_hls_on_the_s3_backend() {
    use crate::helpers::{ACCESS_KEY, SECRET_KEY, start_s3s};
    let fx = tempfile::tempdir().unwrap();
    let s3_root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(s3_root.path().join("music")).unwrap();
    let s3 = start_s3s(s3_root.path());
    let endpoint = s3.endpoint.clone();
    let home = tempfile::tempdir().unwrap();

    // `veza import` runs beside the server: it only enqueues; the server packages.
    let music = home.path().join("music");
    std::fs::create_dir_all(&music).unwrap();
    tone(&music, "imported.mp3", 6, 192);
    let env = [
        ("VEZA_STORAGE__BACKEND", "s3".to_owned()),
        ("VEZA_STORAGE__S3__ENDPOINT", endpoint.clone()),
        ("VEZA_STORAGE__S3__BUCKET", "music".to_owned()),
        ("VEZA_STORAGE__S3__ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
        ("VEZA_STORAGE__S3__SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
    ];
    crate::helpers::migrate(home.path());
    let imported = veza(home.path())
        .args(["import", "music"])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(imported.status.success(), "{}", stderr(&imported));

    let data = home.path().join("veza-data");
    let app = spawn_app_with(move |c| {
        c.data_dir = data.clone();
        c.storage.backend = veza::config::StorageBackend::S3;
        c.storage.s3.endpoint = Some(endpoint.parse().unwrap());
        c.storage.s3.bucket = "music".into();
        c.storage.s3.access_key_id = ACCESS_KEY.into();
        c.storage.s3.secret_access_key = veza::config::Secret::new(SECRET_KEY);
    })
    .await;
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    let uploaded = app.upload(&ed, &tone(fx.path(), "up.mp3", 6, 320)).await;
    let list = app.get_json("/api/v1/tracks", Some(&ed)).await;
    let ids: Vec<String> = list["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&uploaded["id"].as_str().unwrap().to_owned()));
    for id in &ids {
        app.wait_status(&ed, id, "ready", 120).await;
        let (rungs, secs) = check_tree(&app.state.store, id).await;
        assert!(!rungs.is_empty());
        assert!((secs - 6.0).abs() <= 0.5, "{secs}");
    }
    app.stop().await;
    drop(s3);
}

#[test]
fn kill_9_during_packaging_then_restart_completes_the_job_once() {
    let home = tempfile::tempdir().unwrap();
    let token = cli_admin_token(home.path());
    // Long enough that packaging is still running when the kill lands.
    let file = tone(home.path(), "long.mp3", 300, 320);
    // A short lease, so the restarted server takes the killed attempt over quickly.
    std::fs::write(home.path().join("veza.toml"), "[jobs]\nlease_secs = 3\n").unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let get = |addr: &str, path: &str| {
        crate::helpers::blocking_get_json(&rt, &client, addr, path, &token)
    };

    let (mut child, addr) = serve_binary(home.path(), &["--config", "veza.toml", "serve"]);
    let id = crate::helpers::blocking_upload(&rt, &client, &addr, &token, &file);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = get(&addr, &format!("/api/v1/jobs?track_id={id}"));
        if page["jobs"][0]["state"] == "running" {
            break;
        }
        assert!(Instant::now() < deadline, "{page}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Let ffmpeg write some segments first.
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap();
    child.wait().unwrap();
    let work = home.path().join("veza-data/work");
    assert!(
        std::fs::read_dir(&work).unwrap().next().is_some(),
        "the kill landed after packaging finished; the test proves nothing"
    );

    let (mut child, addr) = serve_binary(home.path(), &["--config", "veza.toml", "serve"]);
    let deadline = Instant::now() + Duration::from_secs(240);
    let job = loop {
        let page = get(&addr, &format!("/api/v1/jobs?track_id={id}"));
        if page["jobs"][0]["state"] == "succeeded" {
            break page["jobs"].clone();
        }
        assert!(Instant::now() < deadline, "{page}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let jobs = job.as_array().unwrap();
    assert_eq!(jobs.len(), 1, "one job, run to completion once: {job}");
    assert_eq!(jobs[0]["attempts"], 2, "the killed attempt counts: {job}");
    let t = get(&addr, &format!("/api/v1/tracks/{id}"));
    assert_eq!(t["status"], "ready", "{t}");
    child.kill().unwrap();
    child.wait().unwrap();

    // Every object the playlists name exists, and nothing else is under the prefix.
    rt.block_on(async {
        let cfg = veza::config::from_toml_str(&format!(
            "data_dir = {:?}\n",
            home.path().join("veza-data").display().to_string()
        ))
        .unwrap();
        let store = BlobStore::open(&cfg.storage).await.unwrap();
        let (rungs, secs) = check_tree(&store, &id).await;
        assert_eq!(rungs, vec![64, 128, 256]);
        assert!((secs - 300.0).abs() <= 0.5, "{secs}");
    });
}

#[tokio::test]
async fn a_player_and_ffprobe_play_a_packaged_track_from_the_urls_veza_hands_out() {
    let ffprobe = require_tool("ffprobe");
    let fx = tempfile::tempdir().unwrap();
    let app = spawn_app_with(|_| {}).await;
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    let t = app.upload(&ed, &tone(fx.path(), "song.mp3", 30, 320)).await;
    let id = t["id"].as_str().unwrap();
    // Before packaging ends, asking for HLS is a clear 409; the original already streams.
    let early = app
        .get(&format!("/api/v1/tracks/{id}/stream?format=hls"), None)
        .await;
    if early.status() != 200 {
        crate::helpers::assert_envelope(early, 409, "hls_not_ready").await;
    }
    app.wait_status(&ed, id, "ready", 120).await;

    // Anonymous, as a public player: the default format is HLS once it exists.
    let s: Value = app
        .get(&format!("/api/v1/tracks/{id}/stream"), None)
        .await
        .json()
        .await
        .unwrap();
    // public_url is the default (port 8080); the test server listens on a free port.
    let master = s["url"]
        .as_str()
        .unwrap()
        .replacen("http://127.0.0.1:8080", &app.url(""), 1);
    let master = master.as_str();
    assert!(
        master.ends_with(&format!("/tracks/{id}/hls/master.m3u8")),
        "{s}"
    );
    let fetched = crate::helpers::play(&app.client, master, id).await;
    // master + 3 media playlists + at least 5 segments each for 30 s at ~6 s.
    assert!(fetched.len() >= 1 + 3 + 3 * 5, "{fetched:?}");

    // Off the test's runtime thread, which also runs the server ffprobe talks to.
    let url = master.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(ffprobe)
            .args([
                "-v",
                "error",
                "-show_entries",
                "format=duration:stream=codec_name",
            ])
            .args(["-of", "json", "-rw_timeout", "10000000"])
            .arg(url)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let probed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let duration: f64 = probed["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((duration - 30.0).abs() <= 0.5, "{probed}");
    assert_eq!(probed["streams"][0]["codec_name"], "aac", "{probed}");
    app.stop().await;
}
