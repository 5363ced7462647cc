//! Hostile internet: what an anonymous attacker (or a careless editor) sends, against the real
//! server over real sockets. Each test here failed before the fix it names.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use veza::accounts::Role;

use crate::helpers::{
    TestApp, assert_envelope, create_user, serve_binary, spawn_app, spawn_app_with, user_with_token,
};

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Open descriptors of a process.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// A client whose connections come from `ip` (any 127.x address reaches the loopback).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn login(client: &reqwest::Client, app: &TestApp, user: &str, pw: &str) -> u16 {
    client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"username": user, "password": pw}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Writes a config file for the real binary and returns its path.
fn config_file(home: &Path, body: &str) -> String {
    let p = home.join("veza.toml");
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

/// POSTs every body to `url` at once; each answer's status and whether it has `retry-after`.
async fn flood(client: &reqwest::Client, url: &str, bodies: Vec<Value>) -> Vec<(u16, bool)> {
    let mut set = tokio::task::JoinSet::new();
    for body in bodies {
        let (client, url) = (client.clone(), url.to_owned());
        set.spawn(async move {
            let r = client.post(url).json(&body).send().await.unwrap();
            (
                r.status().as_u16(),
                r.headers().get("retry-after").is_some(),
            )
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.unwrap());
    }
    out
}

#[tokio::test]
async fn a_setup_flood_is_refused_before_hashing_and_memory_stays_flat() {
    let home = tempfile::tempdir().unwrap();
    let (mut child, addr) = serve_binary(home.path(), &[]);
    let pid = child.id();
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/api/v1/setup");
    // Warm up the allocator and the route once.
    let _ = client.get(format!("http://{addr}/healthz")).send().await;
    let before = rss_kib(pid);
    let mut statuses = std::collections::BTreeMap::new();
    for _round in 0..4 {
        let guesses = (0..64)
            .map(|i| json!({"token": format!("guess-{i}"), "username": "root", "password": "a-long-password"}))
            .collect();
        for (status, _) in flood(&client, &url, guesses).await {
            *statuses.entry(status).or_insert(0) += 1;
        }
    }
    let after = rss_kib(pid);
    eprintln!("setup flood: 256 requests, RSS {before} KiB -> {after} KiB, statuses {statuses:?}");
    assert!(
        statuses.keys().all(|s| *s == 403 || *s == 429),
        "{statuses:?}"
    );
    // Before the fix: +1 GB (19 MiB of argon2 per request, 64 at once).
    assert!(
        after.saturating_sub(before) < 60 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn password_checks_run_in_a_bounded_pool_and_the_overflow_gets_503() {
    let home = tempfile::tempdir().unwrap();
    // The admin `root` the flood guesses for (its token goes unused).
    crate::helpers::cli_admin_token(home.path());
    let cfg = config_file(
        home.path(),
        "[auth]\nlogin_attempts_per_min = 10000\nhash_concurrency = 2\nhash_queue = 4\n",
    );
    let (mut child, addr) = serve_binary(home.path(), &["--config", &cfg]);
    let pid = child.id();
    let client = reqwest::Client::new();
    let _ = client.get(format!("http://{addr}/healthz")).send().await;
    let before = rss_kib(pid);
    let url = format!("http://{addr}/api/v1/auth/login");
    let logins = || async {
        let wrong = json!({"username": "root", "password": "wrong-password"});
        let (mut checked, mut busy) = (0, 0);
        for answer in flood(&client, &url, vec![wrong; 64]).await {
            match answer {
                (401, _) => checked += 1,
                (503, true) => busy += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        (checked, busy)
    };
    let (wrong, busy) = logins().await;
    let after_one = rss_kib(pid);
    let (wrong2, busy2) = logins().await;
    let after_two = rss_kib(pid);
    eprintln!(
        "login floods: 64 at once, {wrong}+{wrong2} checked, {busy}+{busy2} refused busy; RSS {before} KiB -> {after_one} KiB -> {after_two} KiB"
    );
    assert!(busy > 0 && busy2 > 0, "the queue never filled");
    assert!(wrong >= 6 && wrong2 >= 6, "{wrong} {wrong2}");
    // Two hashing threads' argon2 blocks at most, and a second flood adds nothing.
    assert!(
        after_one.saturating_sub(before) < 100 * 1024,
        "{before} -> {after_one}"
    );
    assert!(
        after_two.saturating_sub(after_one) < 10 * 1024,
        "{after_one} -> {after_two}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn the_rightful_admin_logs_in_during_a_brute_force_from_another_address() {
    let app = spawn_app().await;
    create_user(&app, "admin", "the-right-password", Role::Admin).await;
    let attacker = client_from("127.0.0.2");
    let mut codes = Vec::new();
    for i in 0..40 {
        codes.push(login(&attacker, &app, "admin", &format!("guess-{i}")).await);
    }
    assert_eq!(codes[0], 401);
    assert!(codes.contains(&429), "{codes:?}");
    let admin = client_from("127.0.0.1");
    assert_eq!(
        login(&admin, &app, "admin", "the-right-password").await,
        200
    );
    // A typo from the rightful address, then the right password: still in.
    assert_eq!(login(&admin, &app, "admin", "typo").await, 401);
    assert_eq!(
        login(&admin, &app, "admin", "the-right-password").await,
        200
    );
    // Successes never count: logging in often is not throttled.
    for _ in 0..15 {
        assert_eq!(
            login(&admin, &app, "admin", "the-right-password").await,
            200
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn malformed_usernames_are_refused_without_becoming_keys() {
    let app = spawn_app().await;
    let c = reqwest::Client::new();
    for name in ["eve\nINFO forged line", &"x".repeat(8 * 1024), ""] {
        let r = c
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"username": name, "password": "whatever-password"}))
            .send()
            .await
            .unwrap();
        assert_envelope(r, 401, "unauthorized").await;
    }
    app.stop().await;
}

#[tokio::test]
async fn forwarded_addresses_count_only_from_trusted_proxies() {
    // Trusted: the proxy on 127.0.0.1 names the client; each named client has its own budget.
    let app = spawn_app_with(|c| {
        c.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.auth.login_attempts_per_min = 3;
    })
    .await;
    let c = reqwest::Client::new();
    let attempt = |xff: &'static str| {
        c.post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", xff)
            .json(&json!({"username": "nobody", "password": "wrong-password"}))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(attempt("203.0.113.9").await.unwrap().status(), 401);
    }
    assert_eq!(attempt("203.0.113.9").await.unwrap().status(), 429);
    assert_eq!(attempt("203.0.113.10").await.unwrap().status(), 401);
    app.stop().await;

    // Untrusted (the default): the header is ignored, so rotating it gains nothing.
    let app = spawn_app_with(|c| c.auth.login_attempts_per_min = 3).await;
    let c = reqwest::Client::new();
    let mut last = 0;
    for i in 0..4 {
        last = c
            .post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .json(&json!({"username": "nobody", "password": "wrong-password"}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
    }
    assert_eq!(last, 429);
    app.stop().await;
}

/// Reads until the server closes the connection or `limit` passes; true when it closed.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn slowloris_and_idle_connections_are_closed() {
    let app = spawn_app_with(|c| {
        c.server.header_read_timeout = Duration::from_secs(1);
        c.server.idle_timeout = Duration::from_secs(2);
    })
    .await;
    let addr = app.addr;
    let result = tokio::task::spawn_blocking(move || {
        // Half-sent heads, trickled a byte at a time.
        let mut slow: Vec<TcpStream> = (0..50)
            .map(|_| {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                    .unwrap();
                s
            })
            .collect();
        for s in &mut slow {
            let _ = s.write_all(b"X");
        }
        let started = Instant::now();
        let closed = slow
            .iter_mut()
            .map(|s| closed_within(s, Duration::from_secs(5)))
            .filter(|c| *c)
            .count();
        let slow_secs = started.elapsed().as_secs_f64();
        // A finished request, then silence: closed after the idle timeout.
        let mut idle = TcpStream::connect(addr).unwrap();
        idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let t = Instant::now();
        let idle_closed = closed_within(&mut idle, Duration::from_secs(6));
        (closed, slow_secs, idle_closed, t.elapsed().as_secs_f64())
    })
    .await
    .unwrap();
    let (closed, slow_secs, idle_closed, idle_secs) = result;
    eprintln!(
        "slowloris: {closed}/50 closed within {slow_secs:.1} s; idle keep-alive closed after {idle_secs:.1} s"
    );
    assert_eq!(closed, 50);
    assert!(idle_closed);
    assert!(
        idle_secs >= 1.5,
        "closed before the idle timeout: {idle_secs}"
    );
    let text = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("veza_http_connections_timed_out_total{reason=\"header_read\"} 50"),
        "{}",
        text.lines()
            .filter(|l| l.contains("connections"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(text.contains("veza_http_connections_timed_out_total{reason=\"idle\"} 1"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_over_the_cap_get_503_and_are_closed() {
    let app = spawn_app_with(|c| c.server.max_connections = 8).await;
    let addr = app.addr;
    let (refused_reply, recovered) = tokio::task::spawn_blocking(move || {
        let held: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(addr).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(300));
        let mut extra = TcpStream::connect(addr).unwrap();
        extra
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut reply = String::new();
        let _ = extra.read_to_string(&mut reply);
        drop(held);
        std::thread::sleep(Duration::from_millis(300));
        let mut again = TcpStream::connect(addr).unwrap();
        again
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut ok = String::new();
        again.read_to_string(&mut ok).unwrap();
        (reply, ok)
    })
    .await
    .unwrap();
    assert!(
        refused_reply.starts_with("HTTP/1.1 503"),
        "{refused_reply:?}"
    );
    assert!(refused_reply.contains("too_many_connections"));
    assert!(recovered.starts_with("HTTP/1.1 200"), "{recovered:?}");
    let text = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("veza_http_connections_refused_total 1"),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_half_open_flood_against_the_binary_stays_within_its_cap() {
    let home = tempfile::tempdir().unwrap();
    let cfg = config_file(
        home.path(),
        "[server]\nmax_connections = 100\nheader_read_timeout_secs = 2\n",
    );
    let (mut child, addr) = serve_binary(home.path(), &["--config", &cfg]);
    let pid = child.id();
    let fds_before = fds(pid);
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let flood: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            let _ = s.write_all(b"GET / HTTP/1.1\r\n");
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let during = fds(pid);
    // Header timeout 2 s plus the watchdog's half-second tick, with room for a loaded machine.
    std::thread::sleep(Duration::from_secs(4));
    let after = fds(pid);
    eprintln!("300 half-open connections: fds {fds_before} -> {during} -> {after} (cap 100)");
    assert!(during <= fds_before + 100 + 10, "{fds_before} -> {during}");
    assert!(after <= fds_before + 5, "{fds_before} -> {after}");
    // And it still serves.
    let r = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(flood);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A multipart POST of raw bytes, chunked (no Content-Length) when `chunked`.
async fn raw_upload(app: &TestApp, token: &str, body: Vec<u8>, chunked: bool) -> reqwest::Response {
    let req = app
        .client
        .post(app.url("/api/v1/tracks"))
        .bearer_auth(token)
        .header("content-type", "multipart/form-data; boundary=XyZ");
    let req = if chunked {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            body.chunks(16 * 1024).map(|c| Ok(c.to_vec())).collect();
        req.body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
    } else {
        req.body(body)
    };
    req.send().await.unwrap()
}

#[tokio::test]
async fn multipart_header_bombs_and_endless_chunked_bodies_are_refused() {
    let app = spawn_app_with(|c| c.storage.max_upload_bytes = 1024 * 1024).await;
    let (_, token) = user_with_token(&app, "ed", Role::Editor).await;

    // One part header that never ends (4 MiB without a blank line), with and without a length.
    let mut bomb =
        b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp3\"\r\nX-Pad: "
            .to_vec();
    bomb.extend(std::iter::repeat_n(b'a', 4 * 1024 * 1024));
    for chunked in [false, true] {
        let r = raw_upload(&app, &token, bomb.clone(), chunked).await;
        let status = r.status().as_u16();
        assert!(
            status == 400 || status == 413,
            "chunked={chunked}: {status}"
        );
    }

    // A file part past the limit, chunked: no Content-Length to check up front.
    let mut big =
        b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp3\"\r\n\r\n"
            .to_vec();
    big.extend(std::iter::repeat_n(0u8, 3 * 1024 * 1024));
    big.extend_from_slice(b"\r\n--XyZ--\r\n");
    let r = raw_upload(&app, &token, big, true).await;
    assert_envelope(r, 413, "payload_too_large").await;

    // A preamble that never reaches a boundary.
    let pre = vec![b'p'; 2 * 1024 * 1024];
    let r = raw_upload(&app, &token, pre, true).await;
    assert!(matches!(r.status().as_u16(), 400 | 413), "{}", r.status());

    // Nothing was kept: no spooled files, no tracks.
    let spool: Vec<_> = std::fs::read_dir(app.data_dir.join("tmp"))
        .unwrap()
        .collect();
    assert!(spool.is_empty(), "{spool:?}");
    let list: Value = app.get_json("/api/v1/tracks", Some(&token)).await;
    assert_eq!(list["tracks"].as_array().unwrap().len(), 0);
    app.stop().await;
}

#[tokio::test]
async fn a_stalled_request_body_gets_408() {
    let app = spawn_app_with(|c| c.server.body_timeout = Duration::from_secs(1)).await;
    let addr = app.addr;
    let reply = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(
            b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user",
        )
        .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    })
    .await
    .unwrap();
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("body_timeout"), "{reply}");
    app.stop().await;
}

#[tokio::test]
async fn trailing_garbage_after_json_and_huge_searches_are_refused() {
    let app = spawn_app().await;
    let r = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body(r#"{"username":"a","password":"b"} {"more":1}"#)
        .send()
        .await
        .unwrap();
    assert_envelope(r, 400, "invalid_json").await;
    let many = vec!["w"; 40].join("+");
    let r = app.get(&format!("/api/v1/tracks?q={many}"), None).await;
    assert_envelope(r, 400, "invalid_field").await;
    app.stop().await;
}

#[tokio::test]
async fn a_token_cannot_mint_one_that_outlives_it_and_a_new_password_revokes_tokens() {
    let app = spawn_app().await;
    let (uid, _) = user_with_token(&app, "ed", Role::Editor).await;
    // A short-lived token (expires in a day).
    let short = veza::accounts::new_api_token();
    let hash = veza::accounts::secret_hash(&short);
    let now = veza::clock::now();
    let u = uid.clone();
    app.state
        .db
        .call(move |c| {
            veza::accounts::store::create_token(c, &u, "short", &hash, now, Some(now + 86_400))
        })
        .await
        .unwrap();
    let mint = |days: Option<u32>| {
        let mut body = json!({"name": "minted"});
        if let Some(d) = days {
            body["expires_days"] = d.into();
        }
        app.client
            .post(app.url("/api/v1/tokens"))
            .bearer_auth(&short)
            .json(&body)
            .send()
    };
    assert_envelope(mint(None).await.unwrap(), 403, "token_outlives_caller").await;
    assert_envelope(mint(Some(30)).await.unwrap(), 403, "token_outlives_caller").await;

    // A password change (admin API) revokes the user's tokens.
    let (_, admin) = user_with_token(&app, "boss", Role::Admin).await;
    let r = app
        .patch_json(
            &format!("/api/v1/users/{uid}"),
            Some(&admin),
            &json!({"password": "a-brand-new-password"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let me = app.get("/api/v1/me", Some(&short)).await;
    assert_envelope(me, 401, "unauthorized").await;
    app.stop().await;
}

#[tokio::test]
async fn anonymous_callers_see_no_failure_details_and_private_bytes_stay_out_of_shared_caches() {
    let app = spawn_app_with(|c| c.hls.enabled = false).await;
    let (_, token) = user_with_token(&app, "ed", Role::Editor).await;
    let dir = tempfile::tempdir().unwrap();
    let file = crate::helpers::tone(dir.path(), "t.mp3", 1, 128);
    let t = app.upload(&token, &file).await;
    let id = t["id"].as_str().unwrap().to_owned();
    let tid = id.clone();
    app.state
        .db
        .call(move |c| {
            c.execute(
                "UPDATE tracks SET status = 'failed', status_detail = 'ffmpeg: /srv/secret/work/x: boom' WHERE id = ?1",
                [&tid],
            )
            .map_err(veza::db::DbError::from)
        })
        .await
        .unwrap();
    app.state.caches.tracks_changed();
    let anon: Value = app.get_json(&format!("/api/v1/tracks/{id}"), None).await;
    assert!(anon["status_detail"].is_null(), "{anon}");
    let listed: Value = app.get_json("/api/v1/tracks", None).await;
    assert!(listed["tracks"][0]["status_detail"].is_null(), "{listed}");
    let editor: Value = app
        .get_json(&format!("/api/v1/tracks/{id}"), Some(&token))
        .await;
    assert!(editor["status_detail"].as_str().unwrap().contains("boom"));

    // Private: its original is sent `private`, never `public, max-age=31536000`.
    let r = app
        .patch_json(
            &format!("/api/v1/tracks/{id}"),
            Some(&token),
            &json!({"visibility": "private"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let s: Value = app
        .get_json(&format!("/api/v1/tracks/{id}/stream"), Some(&token))
        .await;
    // Signed against the configured public URL; reach it on the test's port.
    let url = s["url"].as_str().unwrap().replacen(
        "http://127.0.0.1:8080",
        &format!("http://{}", app.addr),
        1,
    );
    let r = app.client.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let cc = r.headers()["cache-control"].to_str().unwrap().to_owned();
    assert!(cc.starts_with("private"), "{cc}");
    app.stop().await;
}

#[tokio::test]
async fn arbitrary_multipart_bodies_never_get_a_5xx() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let app = spawn_app_with(|c| c.storage.max_upload_bytes = 64 * 1024).await;
    let (_, token) = user_with_token(&app, "ed", Role::Editor).await;
    let mut runner = TestRunner::new(Config {
        cases: 48,
        ..Config::default()
    });
    // Bodies built from multipart's own pieces and random bytes.
    let piece = prop_oneof![
        Just(b"--XyZ\r\n".to_vec()),
        Just(b"--XyZ--\r\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"Content-Disposition: form-data; name=\"file\"; filename=\"a.mp3\"\r\n".to_vec()),
        Just(b"Content-Disposition: form-data; name=\"title\"\r\n".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..64),
    ];
    let strategy = (proptest::collection::vec(piece, 0..12), any::<bool>());
    let cases = std::sync::Mutex::new(Vec::new());
    runner
        .run(&strategy, |(parts, chunked)| {
            cases.lock().unwrap().push((parts.concat(), chunked));
            Ok(())
        })
        .unwrap();
    let cases = cases.into_inner().unwrap();
    for (body, chunked) in cases {
        let r = raw_upload(&app, &token, body.clone(), chunked).await;
        assert!(
            r.status().as_u16() < 500,
            "{} for {:?}",
            r.status(),
            String::from_utf8_lossy(&body)
        );
    }
    app.stop().await;
}
