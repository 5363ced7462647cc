//! The dashboard and the embed player: the bundle's size budget, the pages' security and cache
//! headers, oEmbed and the stats endpoint over real HTTP, and the whole admin flow in headless
//! Chromium (tests/browser/dashboard.mjs) against the real binary.

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use veza::accounts::Role;

use crate::helpers::{assert_envelope, require_tool, spawn_app_with, tone, user_with_token, veza};

const BUDGET_GZIP_BYTES: u64 = 250 * 1000;

fn dist() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/target/dashboard"))
}

#[test]
fn the_bundled_javascript_fits_the_budget_and_is_content_hashed() {
    let gzip = require_tool("gzip");
    let mut total = 0;
    let mut names = vec![];
    for entry in std::fs::read_dir(dist().join("assets")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // esbuild's [name]-[hash]: the hash is 8 characters of [A-Z0-9].
        let stem = name.rsplit_once('.').unwrap().0;
        let hash = stem.rsplit_once('-').map(|(_, h)| h).unwrap_or("");
        assert!(
            hash.len() == 8 && hash.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{name} carries no content hash"
        );
        if name.ends_with(".js") {
            let out = Command::new(&gzip)
                .args(["-9", "-c"])
                .arg(&path)
                .output()
                .unwrap();
            assert!(out.status.success());
            total += out.stdout.len() as u64;
            names.push(name);
        }
    }
    eprintln!("dashboard JS: {} files, {total} bytes gzipped", names.len());
    assert!(names.iter().any(|n| n.starts_with("app-")));
    assert!(names.iter().any(|n| n.starts_with("embed-")));
    assert!(
        total <= BUDGET_GZIP_BYTES,
        "{total} bytes of gzipped JS is over the {BUDGET_GZIP_BYTES} budget: {names:?}"
    );
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

#[tokio::test]
async fn pages_send_a_strict_policy_and_assets_are_immutable() {
    let cdn = "https://cdn.example.net";
    let app = spawn_app_with(|c| {
        c.cdn.base_url = Some(url::Url::parse(&format!("{cdn}/x/")).unwrap());
    })
    .await;
    for path in ["/", "/library", "/login", "/setup", "/settings"] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(header(&r, "cache-control"), "no-cache", "{path}");
        assert_eq!(header(&r, "x-content-type-options"), "nosniff");
        assert_eq!(header(&r, "referrer-policy"), "same-origin");
        let csp = header(&r, "content-security-policy").to_owned();
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(csp.contains("style-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        for d in ["media-src", "connect-src", "img-src"] {
            let directive = csp.split(';').find(|p| p.trim().starts_with(d)).unwrap();
            assert!(directive.contains(cdn), "{d} lacks the CDN host: {csp}");
        }
        let html = r.text().await.unwrap();
        assert!(
            !html.contains("<script>") && !html.contains("style="),
            "inline code"
        );
        assert!(html.contains(r#"name="veza-rum-sample-rate" content="1""#));
    }
    // The page names its hashed assets; they are cached for a year.
    let html = app
        .client
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let js = html
        .split("src=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let r = app.client.get(app.url(js)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert!(header(&r, "content-type").starts_with("text/javascript"));
    let r = app
        .client
        .get(app.url("/assets/nope-ABCDEFGH.js"))
        .send()
        .await
        .unwrap();
    assert_envelope(r, 404, "not_found").await;
    let r = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn embed_and_oembed_show_public_and_unlisted_tracks_only() {
    let app = spawn_app_with(|c| {
        c.hls.enabled = false;
        c.embed.frame_ancestors = "https://cms.example".into();
    })
    .await;
    // Taking down needs an admin.
    let (_, token) = user_with_token(&app, "root", Role::Admin).await;
    let dir = tempfile::tempdir().unwrap();
    let t = app.upload(&token, &tone(dir.path(), "a.mp3", 2, 64)).await;
    let id = t["id"].as_str().unwrap().to_owned();
    let public = app
        .state
        .config
        .server
        .public_url
        .as_str()
        .trim_end_matches('/')
        .to_owned();
    let embed = app.url(&format!("/embed/{id}"));
    let r = app.client.get(&embed).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(header(&r, "content-security-policy").contains("frame-ancestors https://cms.example"));
    let oembed = |u: String| {
        let app = &app;
        async move {
            let q = url::Url::parse_with_params(
                &app.url("/api/v1/oembed"),
                &[("url", u.as_str()), ("maxwidth", "300")],
            )
            .unwrap();
            app.client.get(q).send().await.unwrap()
        }
    };
    let r = oembed(format!("{public}/embed/{id}")).await;
    assert_eq!(r.status(), 200);
    let o: serde_json::Value = r.json().await.unwrap();
    assert_eq!(o["type"], "rich");
    assert_eq!(o["version"], "1.0");
    assert_eq!(o["width"], 300);
    assert!(
        o["html"]
            .as_str()
            .unwrap()
            .contains(&format!("{public}/embed/{id}"))
    );
    // Another host's URL is not ours to describe.
    let r = oembed(format!("https://elsewhere.example/embed/{id}")).await;
    assert_eq!(r.status(), 404);
    let set = |vis: &'static str| {
        let (app, token, id) = (&app, token.clone(), id.clone());
        async move {
            let r = app
                .client
                .patch(app.url(&format!("/api/v1/tracks/{id}")))
                .bearer_auth(token)
                .json(&serde_json::json!({ "visibility": vis }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    };
    set("unlisted").await;
    assert_eq!(app.client.get(&embed).send().await.unwrap().status(), 200);
    set("private").await;
    assert_eq!(app.client.get(&embed).send().await.unwrap().status(), 404);
    assert_eq!(oembed(format!("{public}/embed/{id}")).await.status(), 404);
    set("public").await;
    let r = app
        .client
        .post(app.url(&format!("/api/v1/tracks/{id}/takedown")))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "reason": "claim" }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(app.client.get(&embed).send().await.unwrap().status(), 404);
    assert_eq!(oembed(format!("{public}/embed/{id}")).await.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn stats_report_the_minute_in_progress_and_refuse_bad_windows() {
    let app = spawn_app_with(|_| {}).await;
    let (_, token) = user_with_token(&app, "ed", Role::Editor).await;
    let anon = app
        .client
        .get(app.url("/api/v1/stats"))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
    app.client.get(app.url("/nope")).send().await.unwrap();
    let s = app.get_json("/api/v1/stats?window=24h", Some(&token)).await;
    let samples = s["samples"].as_array().unwrap();
    let now = samples.last().unwrap();
    assert!(now["requests"][3].as_u64().unwrap() >= 2, "{now}");
    assert_eq!(s["step_secs"], 60);
    assert_eq!(s["cdn"]["enabled"], false);
    assert_eq!(s["storage"].as_array().unwrap().len(), 4);
    for bad in ["25h", "0m", "1d", "x"] {
        let r = app
            .client
            .get(app.url(&format!("/api/v1/stats?window={bad}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    app.stop().await;
}

/// The whole admin flow in Chromium against the real binary.
#[test]
fn the_dashboard_and_the_embed_work_in_chromium() {
    let chromium = require_tool("chromium");
    let node = require_tool("node");
    require_tool("ffmpeg");
    let home = tempfile::tempdir().unwrap();
    // A free port, so public_url (which signed /media/ URLs use) is the real address.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = veza(home.path())
        .arg("serve")
        .env("VEZA_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("VEZA_SERVER__PUBLIC_URL", &base)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let setup = loop {
        let line = lines
            .next()
            .expect("server exited before logging its setup link")
            .unwrap();
        if let Some(rest) = line
            .split("open ")
            .nth(1)
            .filter(|r| r.contains("/setup?token="))
        {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let log = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());
    let a = tone(home.path(), "first.mp3", 40, 128);
    let b = tone(home.path(), "second.mp3", 40, 96);
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    let started = Instant::now();
    let out = Command::new(node)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/dashboard.mjs"))
        .env("VEZA_URL", &base)
        .env("SETUP_URL", &setup)
        .env("TRACKS", format!("{}:{}", a.display(), b.display()))
        .env("SHOTS", &shots)
        .env("CHROMIUM", &chromium)
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let server_log = log.join().unwrap_or_default();
    assert!(
        out.status.success(),
        "browser test failed after {:?}:\n{}\n{}\n--- server log (tail) ---\n{}",
        started.elapsed(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        server_log[server_log.len().saturating_sub(30)..].join("\n")
    );
    let measured: serde_json::Value = serde_json::from_slice(out.stdout.trim_ascii())
        .expect("the script prints its measurements");
    eprintln!(
        "browser test: {measured} in {:?}; screenshots in {}",
        started.elapsed(),
        shots.display()
    );
    assert!(measured["beacons"].as_u64().unwrap() >= 1);
    assert!(measured["overview_lcp_ms"].as_f64().unwrap() > 0.0);
    assert!(measured["embed_lcp_ms"].as_f64().unwrap() > 0.0);
}
