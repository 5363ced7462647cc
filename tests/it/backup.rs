//! `veza backup`, `restore` and `check` with the real binary against a running server: a
//! backup taken while uploads and streams go on restores into a new data dir that serves the
//! same tracks; a damaged archive restores nothing; check finds an orphan, a missing and a
//! corrupt blob, and `--repair` removes only the old orphan.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use sha2::{Digest, Sha256};
use veza::accounts::Role;

use crate::helpers::{
    TestApp, serve_binary, spawn_app_with, stderr, stdout, tone, user_with_token, veza,
};

/// A config file naming `data_dir`, for the binary.
fn config_for(dir: &Path, data_dir: &Path) -> PathBuf {
    let p = dir.join(format!(
        "{}.toml",
        data_dir.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(
        &p,
        format!("data_dir = {:?}\n", data_dir.display().to_string()),
    )
    .unwrap();
    p
}

/// `GET url` with a bearer token, as JSON.
pub(crate) async fn get_json(client: &reqwest::Client, url: &str, token: &str) -> Value {
    let r = client.get(url).bearer_auth(token).send().await.unwrap();
    r.json().await.unwrap()
}

/// Every track of the library as id → [sha256, size, has_hls], through the API.
pub(crate) async fn library(
    client: &reqwest::Client,
    base: &str,
    token: &str,
) -> BTreeMap<String, Value> {
    let page = get_json(client, &format!("{base}/api/v1/tracks?limit=100"), token).await;
    page["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let id = t["id"].as_str().unwrap().to_owned();
            (
                id,
                serde_json::json!([t["sha256"], t["size_bytes"], t["has_hls"]]),
            )
        })
        .collect()
}

/// The URL Veza hands out for a track in `format`, pointed at `base`.
pub(crate) async fn stream_url(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    id: &str,
    format: &str,
) -> String {
    let s = get_json(
        client,
        &format!("{base}/api/v1/tracks/{id}/stream?format={format}"),
        token,
    )
    .await;
    // public_url is the default (port 8080); the servers listen on free ports.
    s["url"]
        .as_str()
        .unwrap_or_else(|| panic!("{s}"))
        .replacen("http://127.0.0.1:8080", base, 1)
}

/// Fetches a track's original through the URL Veza hands out; its SHA-256.
pub(crate) async fn play_original(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    id: &str,
) -> String {
    let url = stream_url(client, base, token, id, "original").await;
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 200, "{url}");
    hex(&Sha256::digest(r.bytes().await.unwrap()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn run(home: &Path, args: &[&str]) -> std::process::Output {
    veza(home).args(args).output().unwrap()
}

/// `veza restore ARCHIVE --data-dir DIR`
fn restore(home: &Path, archive: &Path, dir: &Path) -> std::process::Output {
    veza(home)
        .arg("restore")
        .arg(archive)
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_upload_and_stream_load_restores_into_a_copy_that_serves_the_same_tracks() {
    let fx = tempfile::tempdir().unwrap();
    let app = spawn_app_with(|_| {}).await;
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    let mut ids = Vec::new();
    for (i, kbps) in [128, 96].into_iter().enumerate() {
        let t = app
            .upload(&ed, &tone(fx.path(), &format!("base{i}.mp3"), 8, kbps))
            .await;
        ids.push(t["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        app.wait_status(&ed, id, "ready", 120).await;
    }
    let files: Vec<PathBuf> = (0..6)
        .map(|i| tone(fx.path(), &format!("load{i}.mp3"), 3, 64 + 8 * i))
        .collect();
    let before = library(&app.client, &app.url(""), &ed).await;

    // Load: a steady stream of uploads and of plays while the backup runs.
    let stop = Arc::new(AtomicBool::new(false));
    let plays = Arc::new(AtomicU64::new(0));
    let app = Arc::new(app);
    let uploader = {
        let (app, ed, stop) = (app.clone(), ed.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            for f in &files {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                app.upload(&ed, f).await;
                n += 1;
            }
            n
        })
    };
    let player = {
        let (app, ed, stop, plays, id) = (
            app.clone(),
            ed.clone(),
            stop.clone(),
            plays.clone(),
            ids[0].clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                play_original(&app.client, &app.url(""), &ed, &id).await;
                plays.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cfg = config_for(fx.path(), &app.data_dir);
    let archive = fx.path().join("out.tar");
    let started = std::time::Instant::now();
    let out = {
        let (cfg, archive) = (cfg.clone(), archive.clone());
        let home = fx.path().to_owned();
        tokio::task::spawn_blocking(move || {
            veza(&home)
                .arg("--config")
                .arg(&cfg)
                .arg("backup")
                .arg(&archive)
                .output()
                .unwrap()
        })
        .await
        .unwrap()
    };
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let uploaded = uploader.await.unwrap();
    player.await.unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("tracks, database"),
        "{}",
        stdout(&out)
    );
    assert!(
        plays.load(Ordering::Relaxed) > 0,
        "no play ran during the backup"
    );
    assert!(uploaded > 0, "no upload ran during the backup");
    eprintln!(
        "backup took {took:?} with {uploaded} uploads and {} plays around it",
        plays.load(Ordering::Relaxed)
    );
    let after = library(&app.client, &app.url(""), &ed).await;
    assert!(
        !archive.with_extension("tar.partial").exists(),
        "scratch file left"
    );

    // A truncated archive (no manifest) restores nothing and says so.
    let bytes = std::fs::read(&archive).unwrap();
    let cut = fx.path().join("cut.tar");
    std::fs::write(&cut, &bytes[..bytes.len() - 4096]).unwrap();
    let nothing = fx.path().join("nothing");
    let o = restore(fx.path(), &cut, &nothing);
    assert_eq!(o.status.code(), Some(65), "{}", stderr(&o));
    assert!(
        !nothing.join("veza.db").exists(),
        "a refused archive left a database"
    );

    let restored = fx.path().join("restored");
    let o = restore(fx.path(), &archive, &restored);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(restored.join("veza.toml.from-backup").is_file());
    let masked = std::fs::read_to_string(restored.join("veza.toml.from-backup")).unwrap();
    assert!(masked.contains("data_dir"), "{masked}");
    // A second restore into the now non-empty dir is refused without --force.
    let o = restore(fx.path(), &archive, &restored);
    assert_eq!(o.status.code(), Some(73), "{}", stderr(&o));

    let rcfg = config_for(fx.path(), &restored);
    let o = run(
        fx.path(),
        &["--config", rcfg.to_str().unwrap(), "check", "--json"],
    );
    let report: Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", stderr(&o)));
    assert_eq!(report["ok"], true, "{report}");
    assert!(report["referenced"].as_u64().unwrap() > 4, "{report}");

    let (mut child, addr) = serve_binary(fx.path(), &["--config", rcfg.to_str().unwrap()]);
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    let copy = library(&client, &base, &ed).await;
    // The snapshot lies between the library before the load and after it, row for row.
    for (id, t) in &before {
        assert_eq!(copy.get(id), Some(t), "{id} before the backup");
    }
    for (id, t) in &copy {
        assert_eq!(
            after.get(id).map(|a| (&a[0], &a[1])),
            Some((&t[0], &t[1])),
            "{id} in the copy"
        );
    }
    for id in &ids {
        let sha = play_original(&client, &base, &ed, id).await;
        assert_eq!(Some(sha.as_str()), copy[id][0].as_str(), "{id} plays");
        let master = stream_url(&client, &base, &ed, id, "hls").await;
        let fetched = crate::helpers::play(&client, &master, id).await;
        assert!(fetched.len() >= 3, "{fetched:?}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    Arc::try_unwrap(app).ok().unwrap().stop().await;
}

/// Sets a file's modification time `ago` in the past.
fn age(path: &Path, ago: Duration) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - ago).unwrap();
}

#[tokio::test]
async fn check_finds_an_orphan_a_missing_and_a_corrupt_blob_and_repair_removes_only_the_old_orphan()
{
    let fx = tempfile::tempdir().unwrap();
    // No data dir yet: EX_NOINPUT for all three commands.
    let none = config_for(fx.path(), &fx.path().join("none"));
    for args in [vec!["check"], vec!["backup", "x.tar"]] {
        let o = veza(fx.path())
            .arg("--config")
            .arg(&none)
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(66), "{args:?}: {}", stderr(&o));
    }
    let o = run(fx.path(), &["restore", "missing.tar", "--data-dir", "d"]);
    assert_eq!(o.status.code(), Some(66), "{}", stderr(&o));

    let app: TestApp = spawn_app_with(|c| c.hls.enabled = false).await;
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    let a = app.upload(&ed, &tone(fx.path(), "a.mp3", 3, 96)).await;
    let b = app.upload(&ed, &tone(fx.path(), "b.mp3", 3, 128)).await;
    let cfg = config_for(fx.path(), &app.data_dir);
    let cfg = cfg.to_str().unwrap();
    let check = |extra: &[&str]| {
        let o = run(
            fx.path(),
            &[&["--config", cfg, "check", "--json"][..], extra].concat(),
        );
        let v: Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", stderr(&o)));
        (o.status.code(), v)
    };
    let (code, clean) = check(&[]);
    assert_eq!(
        (code, &clean["ok"]),
        (Some(0), &Value::Bool(true)),
        "{clean}"
    );
    assert_eq!(clean["referenced"], 2);

    let blobs = app.data_dir.join("blobs");
    let key_of = |t: &Value| {
        let sha = t["sha256"].as_str().unwrap();
        format!("originals/{}/{}/{sha}.mp3", &sha[..2], &sha[2..4])
    };
    let (ka, kb) = (key_of(&a), key_of(&b));
    assert!(blobs.join(&ka).is_file(), "{ka}");
    let old = format!("originals/00/11/{}.mp3", "0011".repeat(16));
    let young = format!("covers/22/33/{}.jpg", "2233".repeat(16));
    for k in [&old, &young] {
        std::fs::create_dir_all(blobs.join(k).parent().unwrap()).unwrap();
        std::fs::write(blobs.join(k), b"nobody references me").unwrap();
    }
    age(&blobs.join(&old), Duration::from_secs(2 * 3600));
    // Same size, other bytes; and a referenced blob gone.
    let len = std::fs::metadata(blobs.join(&ka)).unwrap().len() as usize;
    std::fs::write(blobs.join(&ka), vec![7u8; len]).unwrap();
    std::fs::remove_file(blobs.join(&kb)).unwrap();

    let (code, found) = check(&[]);
    assert_eq!(code, Some(65), "{found}");
    assert_eq!(found["integrity"], serde_json::json!(["ok"]));
    assert_eq!(found["missing"], serde_json::json!([kb]));
    assert_eq!(found["corrupt"][0]["key"], ka.as_str(), "{found}");
    assert_eq!(found["orphans"], serde_json::json!([old]));
    assert_eq!(found["recent_orphans"], serde_json::json!([young]));

    let (code, repaired) = check(&["--repair"]);
    assert_eq!(code, Some(65), "missing and corrupt remain: {repaired}");
    assert_eq!(repaired["removed"], serde_json::json!([old]));
    assert!(!blobs.join(&old).exists());
    assert!(blobs.join(&young).exists(), "a young orphan was removed");
    assert!(
        blobs.join(&ka).exists(),
        "a referenced (corrupt) blob was removed"
    );
    let (_, again) = check(&[]);
    assert_eq!(again["orphans"], serde_json::json!([]), "{again}");
    app.stop().await;
}
