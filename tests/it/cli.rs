//! The binary's command line: config layering, exit 78, masking, migrations.

use std::fs;

use crate::helpers::{run_with_stdin, stderr, stdout, veza};

fn config_check(
    dir: &std::path::Path,
    envs: &[(&str, &str)],
    file: Option<&str>,
) -> std::process::Output {
    let mut c = veza(dir);
    if let Some(body) = file {
        let p = dir.join("veza.toml");
        fs::write(&p, body).unwrap();
        c.arg("--config").arg(p);
    }
    c.args(["config", "check"]);
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn parse(out: &std::process::Output) -> toml::Value {
    assert!(out.status.success(), "stderr: {}", stderr(out));
    stdout(out).parse().unwrap()
}

#[test]
fn defaults_apply_with_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let v = parse(&config_check(dir.path(), &[], None));
    assert_eq!(v["data_dir"].as_str(), Some("./veza-data"));
    assert_eq!(v["server"]["listen"].as_str(), Some("127.0.0.1:8080"));
    assert_eq!(v["storage"]["backend"].as_str(), Some("local"));
    assert_eq!(
        v["storage"]["local"]["root"].as_str(),
        Some("./veza-data/blobs")
    );
    assert_eq!(v["cdn"]["enabled"].as_bool(), Some(false));
    assert_eq!(v["hls"]["segment_secs"].as_integer(), Some(6));
    // config check touches nothing on disk.
    assert!(!dir.path().join("veza-data").exists());
}

#[test]
fn file_then_alias_then_veza_env_layer_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let file = r#"
        [server]
        listen = "127.0.0.1:9001"
        max_json_bytes = 2048
        [cdn]
        provider = "s3"
        base_url = "https://from-file.example"
        ttl_secs = 60
    "#;
    let out = config_check(
        dir.path(),
        &[
            ("CDN_PROVIDER", "bunny"),                 // alias beats the file
            ("CDN_BASE_URL", "https://alias.example"), // alias, then VEZA_ beats it
            ("VEZA_CDN__BASE_URL", "https://veza.example"),
            ("VEZA_SERVER__LISTEN", "127.0.0.1:9002"), // env beats the file
            ("VEZA_HLS__LADDER_KBPS", "[96, 48]"),
        ],
        Some(file),
    );
    let v = parse(&out);
    assert_eq!(v["server"]["listen"].as_str(), Some("127.0.0.1:9002"));
    assert_eq!(v["server"]["max_json_bytes"].as_integer(), Some(2048));
    assert_eq!(v["cdn"]["provider"].as_str(), Some("bunny"));
    assert_eq!(v["cdn"]["base_url"].as_str(), Some("https://veza.example"));
    assert_eq!(v["cdn"]["ttl_secs"].as_integer(), Some(60));
    let ladder: Vec<i64> = v["hls"]["ladder_kbps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_integer().unwrap())
        .collect();
    assert_eq!(ladder, vec![96, 48]);
}

#[test]
fn config_check_masks_every_secret() {
    let dir = tempfile::tempdir().unwrap();
    let file = r#"
        [storage.s3]
        secret_access_key = "s3-secret-value"
        session_token = "session-secret-value"
        [cdn.bunny]
        api_key = "api-secret-value"
        origin_secret = "origin-secret-value"
    "#;
    let out = config_check(
        dir.path(),
        &[("CDN_SECURITY_KEY", "229248f0-f007-4bf9-ba1f-bbf1b4ad9d40")],
        Some(file),
    );
    let text = stdout(&out);
    for secret in [
        "s3-secret-value",
        "session-secret-value",
        "api-secret-value",
        "origin-secret-value",
        "229248f0",
    ] {
        assert!(!text.contains(secret), "{secret} leaked:\n{text}");
    }
    let v = parse(&out);
    // Set secrets are "****"; unset ones "" so an operator can tell them apart.
    let unset = ["cdn.local.key", "cdn.local.previous_key"];
    for key in veza::config::SECRET_KEYS {
        let mut cur = &v;
        for part in key.split('.') {
            cur = &cur[part];
        }
        let want = if unset.contains(&key) { "" } else { "****" };
        assert_eq!(cur.as_str(), Some(want), "{key}");
    }
}

/// Runs `veza serve` expecting a config error: exit 78, one stderr line naming `key`, and no
/// data dir created.
fn assert_refused(envs: &[(&str, &str)], file: Option<&str>, key: &str, source: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut c = veza(dir.path());
    c.env("VEZA_DATA_DIR", &data);
    if let Some(body) = file {
        let p = dir.path().join("veza.toml");
        fs::write(&p, body).unwrap();
        c.arg("--config").arg(p);
    }
    for (k, v) in envs {
        c.env(k, v);
    }
    let out = c.arg("serve").output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(78), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(key), "names {key}: {err}");
    assert!(err.contains(source), "names source {source}: {err}");
    assert!(!data.exists(), "data dir was created");
}

#[test]
fn enabled_bunny_cdn_with_empty_key_exits_78() {
    assert_refused(
        &[
            ("CDN_ENABLED", "true"),
            ("CDN_PROVIDER", "bunny"),
            ("CDN_BASE_URL", "https://veza-test.b-cdn.net"),
        ],
        None,
        "cdn.security_key",
        "default",
    );
}

#[test]
fn unknown_file_key_exits_78() {
    assert_refused(
        &[],
        Some("[server]\nlisten_adress = \"127.0.0.1:1\"\n"),
        "server.listen_adress",
        "veza.toml",
    );
}

#[test]
fn bad_listen_address_exits_78() {
    assert_refused(
        &[("VEZA_SERVER__LISTEN", "localhost:http")],
        None,
        "server.listen",
        "VEZA_SERVER__LISTEN",
    );
}

#[test]
fn missing_config_file_exits_78() {
    let dir = tempfile::tempdir().unwrap();
    let out = veza(dir.path())
        .args(["--config", "/nonexistent/veza.toml", "config", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(stderr(&out).contains("/nonexistent/veza.toml"));
}

#[test]
fn migrate_applies_then_reports_nothing_new() {
    let dir = tempfile::tempdir().unwrap();
    let first = veza(dir.path()).arg("migrate").output().unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stdout(&first).contains("V1 init: applied\n"),
        "{}",
        stdout(&first)
    );
    assert!(dir.path().join("veza-data/veza.db").is_file());
    let second = veza(dir.path()).arg("migrate").output().unwrap();
    assert!(second.status.success());
    assert!(
        stdout(&second).contains("V1 init: already applied\n"),
        "{}",
        stdout(&second)
    );
}

#[test]
fn a_database_from_a_newer_veza_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        veza(dir.path())
            .arg("migrate")
            .output()
            .unwrap()
            .status
            .success()
    );
    let db = rusqlite_open(&dir.path().join("veza-data/veza.db"));
    db.execute(
        "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) VALUES (999, 'future', '2030-01-01T00:00:00Z', '0')",
        [],
    )
    .unwrap();
    drop(db);
    for cmd in ["migrate", "serve"] {
        let out = veza(dir.path()).arg(cmd).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{cmd}");
        let err = stderr(&out);
        assert!(err.contains("schema version 999"), "{cmd}: {err}");
        let knows = format!("knows up to {}", veza::db::binary_schema_version());
        assert!(err.contains(&knows), "{cmd}: {err}");
    }
}

#[test]
fn an_edited_migration_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        veza(dir.path())
            .arg("migrate")
            .output()
            .unwrap()
            .status
            .success()
    );
    let db = rusqlite_open(&dir.path().join("veza-data/veza.db"));
    db.execute(
        "UPDATE refinery_schema_history SET checksum = '1' WHERE version = 1",
        [],
    )
    .unwrap();
    drop(db);
    let out = veza(dir.path()).arg("migrate").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("migration"), "{}", stderr(&out));
}

#[test]
fn version_flag_prints_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let out = veza(dir.path()).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(stdout(&out).starts_with(&format!("veza {}", env!("CARGO_PKG_VERSION"))));
}

fn rusqlite_open(p: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(p).unwrap()
}

#[test]
fn commands_never_create_a_database_and_say_where_they_looked() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["admin", "list"],
        vec!["jobs", "list"],
        vec!["jobs", "retry", "1"],
        vec!["token", "create", "--username", "a", "--name", "n"],
        vec!["import", "."],
    ] {
        let out = veza(dir.path()).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(66), "{args:?}: {}", stderr(&out));
        let msg = stderr(&out);
        assert!(
            msg.contains("veza-data/veza.db") && msg.contains("VEZA_DATA_DIR"),
            "{msg}"
        );
        assert!(
            !dir.path().join("veza-data").exists(),
            "{args:?} created the data dir"
        );
    }
    // Pointed elsewhere with VEZA_DATA_DIR, the message names that place.
    let out = veza(dir.path())
        .args(["admin", "list"])
        .env("VEZA_DATA_DIR", "/nonexistent/lib/veza")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(66));
    assert!(stderr(&out).contains("/nonexistent/lib/veza/veza.db"));
}

#[test]
fn cli_output_is_plain_aligned_and_available_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let migrated = veza(dir.path()).arg("migrate").output().unwrap();
    assert!(migrated.status.success());
    // No colour codes and no migration library lines when stderr is a pipe.
    let err = stderr(&migrated);
    assert!(!err.contains('\u{1b}'), "{err:?}");
    assert!(!err.to_lowercase().contains("applying migration"), "{err}");
    for (name, role) in [("root", "admin"), ("a-much-longer-name", "editor")] {
        let out = run_with_stdin(
            dir.path(),
            &[
                "admin",
                "create",
                "--username",
                name,
                "--role",
                role,
                "--password-stdin",
            ],
            "long-enough-password\n",
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(!stderr(&out).contains('\u{1b}'));
    }
    let table = veza(dir.path()).args(["admin", "list"]).output().unwrap();
    let text = stdout(&table);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    // Every row's ROLE column starts where its header does.
    let col = lines[0].find("ROLE").unwrap();
    for l in &lines[1..] {
        let role = &l[col..];
        assert!(
            role.starts_with("admin") || role.starts_with("editor"),
            "{text}"
        );
        assert!(l.ends_with("never"), "{text}");
    }
    let json = veza(dir.path())
        .args(["admin", "list", "--json"])
        .output()
        .unwrap();
    let users: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(users.as_array().unwrap().len(), 2);
    assert!(users[0]["username"].is_string());
    let jobs = veza(dir.path())
        .args(["jobs", "list", "--json"])
        .output()
        .unwrap();
    assert!(jobs.status.success(), "{}", stderr(&jobs));
    let jobs: serde_json::Value = serde_json::from_slice(&jobs.stdout).unwrap();
    assert!(jobs.as_array().unwrap().is_empty());
}

#[cfg(unix)]
#[test]
fn the_data_dir_is_private_and_an_old_install_is_tightened() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("veza-data");
    let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert!(veza(dir.path()).arg("migrate").status().unwrap().success());
    assert_eq!(mode(&data), 0o750);
    assert_eq!(mode(&data.join("veza.db")), 0o600);
    assert_eq!(mode(&data.join("tmp")), 0o700);
    assert_eq!(mode(&data.join("work")), 0o700);
    for f in ["veza.db-wal", "veza.db-shm"] {
        if data.join(f).exists() {
            assert_eq!(mode(&data.join(f)), 0o600, "{f}");
        }
    }
    // An install made before: world-readable database, open folder.
    fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(data.join("veza.db"), fs::Permissions::from_mode(0o644)).unwrap();
    let (mut child, _addr) = crate::helpers::serve_binary(dir.path(), &[]);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(mode(&data), 0o750);
    assert_eq!(mode(&data.join("veza.db")), 0o600);
    for f in ["veza.db-wal", "veza.db-shm"] {
        if data.join(f).exists() {
            assert_eq!(mode(&data.join(f)), 0o600, "{f}");
        }
    }
}
