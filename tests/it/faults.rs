//! Proof under faults (issue 22): the S3 store stopped mid-load and a data dir on a disk that
//! fills. Real s3s-fs on loopback, real tmpfs, real ffmpeg, real SQLite, real HTTP.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use veza::accounts::Role;

use crate::helpers::{
    ACCESS_KEY, SECRET_KEY, TestApp, assert_envelope, hex_sha, spawn_app_with, start_s3s,
    start_s3s_on, tone, user_with_token,
};

const BUCKET: &str = "media";

/// `(status, body)` of `/readyz`.
async fn readyz(app: &TestApp) -> (u16, Value) {
    let r = app.get("/readyz", None).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

/// Polls `/readyz` until it answers `want` (panics after `secs`).
async fn wait_readyz(app: &TestApp, want: u16, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (status, body) = readyz(app).await;
        if status == want {
            return body;
        }
        assert!(Instant::now() < deadline, "readyz never {want}: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One SQL count on the app's database.
async fn count(app: &TestApp, sql: &'static str) -> i64 {
    app.state
        .db
        .call(move |c| Ok::<_, veza::db::DbError>(c.query_row(sql, [], |r| r.get(0))?))
        .await
        .unwrap()
}

/// The package_hls job of a track: `(state, attempts, last_error)`.
async fn job_of(app: &TestApp, track: &str) -> (String, i64, Option<String>) {
    let id = track.to_owned();
    app.state
        .db
        .call(move |c| {
            Ok::<_, veza::db::DbError>(c.query_row(
                "SELECT state, attempts, last_error FROM jobs
                 WHERE track_id = ?1 AND kind = 'package_hls' ORDER BY id DESC LIMIT 1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?)
        })
        .await
        .unwrap()
}

/// Every file below `dir`, relative, sorted (empty when `dir` is missing).
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn stored_originals(files: &[String]) -> Vec<&String> {
    files
        .iter()
        .filter(|f| f.starts_with("originals/"))
        .collect()
}

/// Failed S3 writes so far (an upload's `head` and `put`; the readiness probe is not counted).
fn store_writes_failed(app: &TestApp) -> u64 {
    let m = &app.state.metrics.storage_operations;
    ["head", "put"]
        .iter()
        .map(|op| m.with_label_values(&["s3", op, "error"]).get())
        .sum()
}

/// Uploads `file` while the store is down: 503 `store_unavailable` with `retry-after` and no
/// path in the message; returns how long the refusal took.
async fn refused_upload(app: &TestApp, token: &str, file: &Path, root: &str) -> Duration {
    let started = Instant::now();
    let r = app.upload_with(token, file, &[]).await;
    let took = started.elapsed();
    let retry_after = crate::helpers::header(&r, "retry-after").to_owned();
    let body = assert_envelope(r, 503, "store_unavailable").await;
    assert_eq!(retry_after, "30", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("media store is unavailable"), "{message}");
    assert!(!message.contains(root), "{message}");
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_refuses_uploads_fast_keeps_issuing_urls_and_drains_after() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("s3");
    std::fs::create_dir_all(root.join(BUCKET)).unwrap();
    let mut s3 = start_s3s(&root);
    let port = s3.port();
    let endpoint = s3.endpoint.clone();
    let app = spawn_app_with(move |c| {
        c.storage.backend = veza::config::StorageBackend::S3;
        c.storage.s3.endpoint = Some(endpoint.parse().unwrap());
        c.storage.s3.bucket = BUCKET.into();
        c.storage.s3.access_key_id = ACCESS_KEY.into();
        c.storage.s3.secret_access_key = veza::config::Secret::new(SECRET_KEY);
        c.storage.s3.path_style = true;
        // One attempt: an outage that spent it would kill the job below. A first retry 30 to
        // 60 s away: a drain sooner than that is the store's return waking the queue.
        c.jobs.max_attempts = 1;
        c.jobs.retry_base_secs = 60;
        c.jobs.retry_max_secs = 120;
        // A store found down by /readyz is trusted this long: uploads are refused at once.
        c.server.readyz_check = Duration::from_secs(2);
    })
    .await;
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    let fx = tempfile::tempdir().unwrap();
    let a = app.upload(&ed, &tone(fx.path(), "a.mp3", 3, 128)).await;
    let a = a["id"].as_str().unwrap().to_owned();
    app.wait_ready(&ed, &a).await;
    // Made before the outage: distinct bytes each (lengths differ).
    let refused: Vec<PathBuf> = (0..6)
        .map(|i| tone(fx.path(), &format!("o{i}.mp3"), 2 + i, 96))
        .collect();
    let b = app.upload(&ed, &tone(fx.path(), "b.mp3", 20, 192)).await;
    let b = b["id"].as_str().unwrap().to_owned();

    // The store goes away while b's packaging job runs.
    s3.stop();
    let outage = Instant::now();

    let (status, body) = readyz(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable", "{body}");
    assert_eq!(
        body["checks"]["storage"], "unavailable (see the server log)",
        "{body}"
    );
    assert_eq!(body["checks"]["database"], "ok", "{body}");

    // Concurrent uploads and stream-URL requests while it is down; /readyz has just found the
    // store down, so the uploads are refused before their body is read.
    let root_shown = root.display().to_string();
    let tries_before = store_writes_failed(&app);
    let uploads = refused
        .iter()
        .map(|f| refused_upload(&app, &ed, f, &root_shown));
    let urls = (0..40).map(|i| {
        let app = &app;
        let ed = &ed;
        let id = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move {
            let started = Instant::now();
            let r = app
                .get(&format!("/api/v1/tracks/{id}/stream"), Some(ed))
                .await;
            assert_eq!(r.status(), 200);
            let v: Value = r.json().await.unwrap();
            assert!(v["url"].as_str().unwrap().contains("/media/"), "{v}");
            started.elapsed()
        }
    });
    let (mut took, mut issued) = futures_util::future::join(
        futures_util::future::join_all(uploads),
        futures_util::future::join_all(urls),
    )
    .await;
    took.sort();
    issued.sort();
    assert_eq!(
        store_writes_failed(&app),
        tries_before,
        "an upload tried the store known to be down"
    );
    let slowest = *took.last().unwrap();
    eprintln!(
        "store outage: {} uploads refused with 503 (store known down) in median {:?}, slowest \
         {:?}; {} stream URLs issued, slowest {:?}",
        took.len(),
        took[took.len() / 2],
        slowest,
        issued.len(),
        issued.last().unwrap()
    );
    assert!(
        slowest < Duration::from_secs(3),
        "uploads refused slowly: {took:?}"
    );

    // b's job meets the outage and is neither dead nor out of attempts.
    let failed = || {
        app.state
            .metrics
            .jobs
            .with_label_values(&["package_hls", "failed"])
            .get()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while failed() < 1 {
        assert!(Instant::now() < deadline, "b's job never met the outage");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (state, attempts, error) = job_of(&app, &b).await;
    assert_eq!(state, "failed");
    assert_eq!(attempts, 0, "an outage spent an attempt");
    let error = error.unwrap_or_default();
    assert!(error.contains("storage unavailable"), "{error}");
    let t = app
        .get_json(&format!("/api/v1/tracks/{b}"), Some(&ed))
        .await;
    assert_eq!(t["status"], "processing", "{t}");
    // The store stays down a while: the queue's probes fail and the job keeps waiting.
    tokio::time::sleep_until((outage + Duration::from_secs(4)).into()).await;
    let (state, attempts, _) = job_of(&app, &b).await;
    assert_eq!((state.as_str(), attempts), ("failed", 0));
    // The last check is older than readyz_check: this upload tries the store and is refused.
    let tried = refused_upload(&app, &ed, &refused[1], &root_shown).await;
    assert!(store_writes_failed(&app) > tries_before);
    eprintln!("store outage: an upload that tried the store was refused with 503 in {tried:?}");
    assert!(tried < Duration::from_secs(5), "{tried:?}");
    let outage_secs = outage.elapsed();

    // The store comes back where it was; nothing else is done.
    let _s3 = start_s3s_on(&root, port);
    let back = Instant::now();
    app.wait_status(&ed, &b, "ready", 90).await;
    let drained = back.elapsed();
    assert!(
        drained < Duration::from_secs(30),
        "drained only at the retry time: {drained:?}"
    );
    wait_readyz(&app, 200, 30).await;
    // The track is marked ready just before the job records its success.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (state, attempts) = loop {
        let (state, attempts, _) = job_of(&app, &b).await;
        if state != "running" || Instant::now() > deadline {
            break (state, attempts);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((state.as_str(), attempts), ("succeeded", 1));
    eprintln!(
        "store outage: down {outage_secs:?}; b's packaging job failed {} times meanwhile and \
         succeeded {drained:?} after the store came back",
        failed()
    );

    // No row and no object for a refused upload; nothing in flight left behind.
    assert_eq!(count(&app, "SELECT COUNT(*) FROM tracks").await, 2);
    let raw = files_under(&root.join(BUCKET));
    let originals = stored_originals(&raw);
    assert_eq!(originals.len(), 2, "{originals:?}");
    for f in &refused {
        let sha = hex_sha(&std::fs::read(f).unwrap());
        assert!(
            !raw.iter().any(|k| k.contains(&sha)),
            "{sha} stored: {raw:?}"
        );
    }
    assert!(
        !raw.iter().any(|k| k.starts_with(".tmp/")),
        "temp objects left: {raw:?}"
    );

    // Uploads work again, on the same process.
    let again = app.upload(&ed, &refused[0]).await;
    app.wait_ready(&ed, again["id"].as_str().unwrap()).await;
    app.stop().await;
}

/// A tmpfs mounted for the test, lazily unmounted when dropped (even if the app still holds
/// files on it after a failure).
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` (the test is skipped) where mounting is not allowed, except in CI, where it fails.
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("tmpfs")
            .arg(at)
            .output();
        let why = match out {
            Ok(o) if o.status.success() => return Some(Tmpfs(at.to_owned())),
            Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
            Err(e) => e.to_string(),
        };
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("cannot mount a tmpfs (CI runs as root): {why}");
        }
        eprintln!("skipping the full-disk test: cannot mount a tmpfs here: {why}");
        None
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes `path` until the filesystem refuses (ENOSPC); returns its size.
fn fill(path: &Path) -> u64 {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    for chunk in [1 << 20, 4096] {
        let buf = vec![0xA5u8; chunk];
        loop {
            match f.write_all(&buf) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
    }
    let _ = f.flush();
    std::fs::metadata(path).unwrap().len()
}

async fn upload_refused_for_space(app: &TestApp, token: &str, file: &Path) -> String {
    let r = app.upload_with(token, file, &[]).await;
    let body = assert_envelope(r, 507, "insufficient_storage").await;
    let message = body["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("full"), "{message}");
    assert!(message.contains("nothing was kept"), "{message}");
    assert!(!message.contains('/'), "a path in {message}");
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_gets_507_keeps_the_database_whole_and_recovers() {
    let mnt = tempfile::tempdir().unwrap();
    let Some(_tmpfs) = Tmpfs::mount(mnt.path(), "24m") else {
        return;
    };
    let data = mnt.path().join("data");
    let db_file = data.join("veza.db");
    let blobs = data.join("blobs");
    let app = spawn_app_with({
        let (data, blobs) = (data.clone(), blobs.clone());
        move |c| {
            c.data_dir = data;
            c.storage.local_root = blobs;
            c.hls.enabled = false;
            c.server.readyz_check = Duration::ZERO;
        }
    })
    .await;
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;
    let fx = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = (0..4)
        .map(|i| tone(fx.path(), &format!("f{i}.mp3"), 30 + i, 128))
        .collect();
    let first = app.upload(&ed, &files[0]).await;
    let first = first["id"].as_str().unwrap().to_owned();

    // Full to the last byte: the upload cannot even be received.
    let filler = mnt.path().join("filler");
    let filled = fill(&filler);
    let spool_full = upload_refused_for_space(&app, &ed, &files[1]).await;
    assert!(spool_full.contains("server's disk is full"), "{spool_full}");
    assert_eq!(app.get("/healthz", None).await.status(), 200);
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        body["checks"]["storage"], "full (see the server log)",
        "{body}"
    );
    // Reads and stream URLs still work; an edit either lands or is refused with 507.
    let r = app
        .get(&format!("/api/v1/tracks/{first}/stream"), Some(&ed))
        .await;
    assert_eq!(r.status(), 200);
    let mut edits = Vec::new();
    for i in 0..5 {
        let title = format!("edit {i} {}", "x".repeat(200));
        let r = app
            .patch_json(
                &format!("/api/v1/tracks/{first}"),
                Some(&ed),
                &serde_json::json!({ "title": title }),
            )
            .await;
        let status = r.status().as_u16();
        edits.push(status);
        if status != 200 {
            assert_envelope(r, 507, "insufficient_storage").await;
        }
    }

    // Room to receive the upload, not to store it too: the store refuses.
    let size = std::fs::metadata(&files[2]).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap()
        .set_len(filled - size - size / 2)
        .unwrap();
    let store_full = upload_refused_for_space(&app, &ed, &files[2]).await;
    eprintln!(
        "full disk: edits while full answered {edits:?}; 507 while receiving: {spool_full:?}; \
         while storing: {store_full:?}"
    );
    assert!(store_full.contains("media store is full"), "{store_full}");
    assert_eq!(app.get("/healthz", None).await.status(), 200);

    // Nothing of the refused uploads: no row, no object, no temp or spool file.
    assert_eq!(count(&app, "SELECT COUNT(*) FROM tracks").await, 1);
    let stored = files_under(&blobs);
    assert_eq!(stored_originals(&stored).len(), 1, "{stored:?}");
    assert!(
        !stored.iter().any(|k| k.starts_with(".tmp/")),
        "temp files left: {stored:?}"
    );
    let spool = files_under(&veza::datadir::spool_dir(&data));
    assert!(spool.is_empty(), "spool files left: {spool:?}");

    // Space comes back: uploads work again, on the same process.
    std::fs::remove_file(&filler).unwrap();
    wait_readyz(&app, 200, 10).await;
    for f in &files[1..] {
        app.upload(&ed, f).await;
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM tracks").await, 4);
    app.stop().await;

    let c = rusqlite::Connection::open(&db_file).unwrap();
    let check: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let tracks: i64 = c
        .query_row("SELECT COUNT(*) FROM tracks", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tracks, 4);
}
