//! Accounts and API access: setup link, sessions + CSRF, login throttling, API tokens, roles,
//! the last-admin rule, secrets kept out of logs, the OpenAPI document.

use std::sync::{Arc, Mutex};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use veza::accounts::Role;

use crate::helpers::{
    TestApp, assert_envelope, create_user, spawn_app, spawn_app_with, stderr, stdout,
    user_with_token, veza,
};

fn setup_token(app: &TestApp) -> String {
    let link = app
        .setup_link
        .clone()
        .expect("a fresh app has a setup link");
    assert!(
        link.starts_with("http://127.0.0.1:8080/setup?token="),
        "{link}"
    );
    link.split("token=").nth(1).unwrap().to_owned()
}

#[tokio::test]
async fn the_setup_link_creates_the_first_admin_once() {
    let app = spawn_app().await;
    let token = setup_token(&app);
    let post = |body: Value| app.client.post(app.url("/api/v1/setup")).json(&body).send();
    let page = app.get("/setup", None).await;
    assert_eq!(page.status(), 200);

    let bad = post(json!({"token": "nope", "username": "root", "password": "long-enough-pw"}))
        .await
        .unwrap();
    assert_envelope(bad, 403, "invalid_setup_token").await;
    let weak = post(json!({"token": token, "username": "root", "password": "short"}))
        .await
        .unwrap();
    assert_envelope(weak, 400, "weak_password").await;

    let ok = post(json!({"token": token, "username": "root", "password": "long-enough-pw"}))
        .await
        .unwrap();
    assert_eq!(ok.status(), 201);
    let user: Value = ok.json().await.unwrap();
    assert_eq!(user["role"], "admin");
    assert_eq!(user["username"], "root");

    let again = post(json!({"token": token, "username": "root2", "password": "long-enough-pw"}))
        .await
        .unwrap();
    assert_envelope(again, 409, "already_set_up").await;
    app.stop().await;
}

async fn login(app: &TestApp, username: &str, password: &str) -> reqwest::Response {
    app.post_json(
        "/api/v1/auth/login",
        None,
        &json!({"username": username, "password": password}),
    )
    .await
}

#[tokio::test]
async fn sessions_use_a_strict_httponly_cookie_and_writes_need_the_csrf_token() {
    let app = spawn_app().await;
    create_user(&app, "Edith", "edith-password", Role::Editor).await;
    let resp = login(&app, "edith", "edith-password").await; // names are case-insensitive
    assert_eq!(resp.status(), 200);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attr in ["veza_session=", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain-http public_url: no Secure flag"
    );
    let body: Value = resp.json().await.unwrap();
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();
    assert_eq!(body["user"]["username"], "Edith");
    let session = cookie.split(';').next().unwrap().to_owned();

    let me: Value = app
        .client
        .get(app.url("/api/v1/me"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["csrf_token"], csrf.as_str());

    let create = |csrf: Option<&str>| {
        let mut r = app
            .client
            .post(app.url("/api/v1/tokens"))
            .header("cookie", &session)
            .json(&json!({"name": "ci"}));
        if let Some(c) = csrf {
            r = r.header("x-csrf-token", c);
        }
        r.send()
    };
    assert_envelope(create(None).await.unwrap(), 403, "csrf_failed").await;
    assert_envelope(create(Some("wrong")).await.unwrap(), 403, "csrf_failed").await;
    assert_eq!(create(Some(&csrf)).await.unwrap().status(), 201);

    let out = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .header("cookie", &session)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let after = app
        .client
        .get(app.url("/api/v1/me"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_envelope(after, 401, "unauthorized").await;
    app.stop().await;
}

#[tokio::test]
async fn failed_logins_get_401_then_429_with_retry_after() {
    let app = spawn_app_with(|c| c.auth.login_attempts_per_min = 3).await;
    create_user(&app, "alice", "alice-password", Role::Admin).await;
    assert_envelope(
        login(&app, "alice", "wrong-password").await,
        401,
        "unauthorized",
    )
    .await;
    // An unknown user gets the same answer as a wrong password.
    let unknown = assert_envelope(
        login(&app, "nobody", "wrong-password").await,
        401,
        "unauthorized",
    )
    .await;
    assert_eq!(unknown["error"]["message"], "wrong username or password");
    assert_envelope(
        login(&app, "alice", "wrong-password").await,
        401,
        "unauthorized",
    )
    .await;
    // Per username: a fourth try on alice, even with the right password, is throttled.
    let limited = login(&app, "alice", "alice-password").await;
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    assert_envelope(limited, 429, "rate_limited").await;
    app.stop().await;
}

#[tokio::test]
async fn disabled_users_cannot_log_in() {
    let app = spawn_app().await;
    let id = create_user(&app, "gone", "gone-password", Role::Editor).await;
    let (_, admin) = user_with_token(&app, "boss", Role::Admin).await;
    let r = app
        .patch_json(
            &format!("/api/v1/users/{id}"),
            Some(&admin),
            &json!({"disabled": true}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_envelope(
        login(&app, "gone", "gone-password").await,
        401,
        "unauthorized",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn api_tokens_work_until_revoked_or_expired() {
    let app = spawn_app().await;
    let (_, admin) = user_with_token(&app, "boss", Role::Admin).await;
    let created = app
        .post_json(
            "/api/v1/tokens",
            Some(&admin),
            &json!({"name": "script", "expires_days": 30}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("vz_"));
    assert!(
        created["expires_at"].as_i64().unwrap()
            > created["created_at"].as_i64().unwrap() + 29 * 86400
    );
    let me = app.get("/api/v1/me", Some(&token)).await;
    assert_eq!(me.status(), 200);

    let list: Value = app.get_json("/api/v1/tokens", Some(&admin)).await;
    assert!(
        !list.to_string().contains(&token),
        "listing never shows a secret"
    );
    let id = created["id"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/api/v1/tokens/{id}"), Some(&admin))
            .await
            .status(),
        204
    );
    assert_envelope(
        app.get("/api/v1/me", Some(&token)).await,
        401,
        "unauthorized",
    )
    .await;

    // Expired: stored with an expiry in the past.
    let old = veza::accounts::new_api_token();
    let hash = veza::accounts::secret_hash(&old);
    let uid = created["user_id"].as_str().unwrap().to_owned();
    app.state
        .db
        .call(move |c| veza::accounts::store::create_token(c, &uid, "old", &hash, 0, Some(1)))
        .await
        .unwrap();
    assert_envelope(app.get("/api/v1/me", Some(&old)).await, 401, "unauthorized").await;
    assert_envelope(
        app.get("/api/v1/me", Some("vz_unknown")).await,
        401,
        "unauthorized",
    )
    .await;
    let basic = app
        .client
        .get(app.url("/api/v1/me"))
        .header("authorization", "Basic Zm9vOmJhcg==")
        .send()
        .await
        .unwrap();
    assert_eq!(basic.headers()["www-authenticate"], "Bearer realm=\"veza\"");
    assert_envelope(basic, 401, "unauthorized").await;
    app.stop().await;
}

#[tokio::test]
async fn editors_see_and_revoke_only_their_own_tokens() {
    let app = spawn_app().await;
    let (_, admin) = user_with_token(&app, "boss", Role::Admin).await;
    let (_, editor) = user_with_token(&app, "ed", Role::Editor).await;
    let mine: Value = app.get_json("/api/v1/tokens", Some(&editor)).await;
    assert_eq!(mine["tokens"].as_array().unwrap().len(), 1);
    let all: Value = app.get_json("/api/v1/tokens", Some(&admin)).await;
    assert_eq!(all["tokens"].as_array().unwrap().len(), 2);
    let admins = all["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["username"] == "boss")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .delete(&format!("/api/v1/tokens/{admins}"), Some(&editor))
        .await;
    assert_envelope(r, 404, "not_found").await;
    app.stop().await;
}

#[tokio::test]
async fn each_role_against_each_protected_route() {
    let app = spawn_app().await;
    let (editor_id, editor) = user_with_token(&app, "ed", Role::Editor).await;
    let (_, admin) = user_with_token(&app, "boss", Role::Admin).await;
    let victim = create_user(&app, "victim", "victim-password", Role::Editor).await;
    let some_token = "0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b";
    let _ = editor_id;
    // (method, path, body, least role) — None = anonymous allowed.
    let table: Vec<(Method, String, Option<Value>, Option<Role>)> = vec![
        (Method::GET, "/healthz".into(), None, None),
        (Method::GET, "/metrics".into(), None, None),
        (Method::GET, "/api/v1/openapi.json".into(), None, None),
        (Method::GET, "/api/v1/me".into(), None, Some(Role::Editor)),
        (
            Method::GET,
            "/api/v1/tokens".into(),
            None,
            Some(Role::Editor),
        ),
        (
            Method::POST,
            "/api/v1/tokens".into(),
            Some(json!({"name": "t"})),
            Some(Role::Editor),
        ),
        (
            Method::DELETE,
            format!("/api/v1/tokens/{some_token}"),
            None,
            Some(Role::Editor),
        ),
        (
            Method::POST,
            "/api/v1/auth/logout".into(),
            None,
            Some(Role::Editor),
        ),
        (Method::GET, "/api/v1/users".into(), None, Some(Role::Admin)),
        (
            Method::POST,
            "/api/v1/users".into(),
            Some(json!({"username": "new1", "password": "new-password-1"})),
            Some(Role::Admin),
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{victim}"),
            Some(json!({"role": "editor"})),
            Some(Role::Admin),
        ),
        (
            Method::DELETE,
            format!("/api/v1/users/{victim}"),
            None,
            Some(Role::Admin),
        ),
    ];
    for (method, path, body, least) in table {
        for (who, token, role) in [
            ("anonymous", None, None),
            ("editor", Some(&editor), Some(Role::Editor)),
            ("admin", Some(&admin), Some(Role::Admin)),
        ] {
            let mut req = app.client.request(method.clone(), app.url(&path));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if let Some(b) = &body {
                req = req.json(b);
            }
            let status = req.send().await.unwrap().status();
            let expected_denial = match (least, role) {
                (None, _) => None,
                (Some(_), None) => Some(StatusCode::UNAUTHORIZED),
                (Some(need), Some(have)) if !have.allows(need) => Some(StatusCode::FORBIDDEN),
                _ => None,
            };
            match expected_denial {
                Some(code) => assert_eq!(status, code, "{who} {method} {path}"),
                None => assert!(
                    status != StatusCode::UNAUTHORIZED
                        && status != StatusCode::FORBIDDEN
                        && !status.is_server_error(),
                    "{who} {method} {path}: {status}"
                ),
            }
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn the_last_admin_cannot_be_demoted_disabled_or_deleted() {
    let app = spawn_app().await;
    let (admin_id, admin) = user_with_token(&app, "boss", Role::Admin).await;
    let url = app.url(&format!("/api/v1/users/{admin_id}"));
    for body in [json!({"role": "editor"}), json!({"disabled": true})] {
        let r = app
            .client
            .patch(&url)
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_envelope(r, 409, "last_admin").await;
    }
    assert_envelope(
        app.client
            .delete(&url)
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap(),
        409,
        "last_admin",
    )
    .await;
    // With a second admin, the first may step down.
    let second = app
        .post_json(
            "/api/v1/users",
            Some(&admin),
            &json!({"username": "second", "password": "second-password", "role": "admin"}),
        )
        .await;
    assert_eq!(second.status(), 201);
    let dup = app
        .post_json(
            "/api/v1/users",
            Some(&admin),
            &json!({"username": "SECOND", "password": "second-password"}),
        )
        .await;
    assert_envelope(dup, 409, "username_taken").await;
    let r = app
        .client
        .patch(&url)
        .bearer_auth(&admin)
        .json(&json!({"role": "editor"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn metrics_can_require_a_bearer_token() {
    let app = spawn_app_with(|c| c.server.metrics_public = false).await;
    let (_, editor) = user_with_token(&app, "ed", Role::Editor).await;
    assert_envelope(app.get("/metrics", None).await, 401, "unauthorized").await;
    assert_eq!(app.get("/metrics", Some(&editor)).await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn openapi_documents_every_served_api_route() {
    let app = spawn_app().await;
    let doc: Value = app.get_json("/api/v1/openapi.json", None).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["ErrorEnvelope"].is_object());
    let served = veza::http::served_routes();
    let api: Vec<_> = served
        .iter()
        .filter(|(_, p)| p.starts_with("/api/v1/"))
        .collect();
    assert!(api.len() >= 12, "{api:?}");
    for (method, path) in api {
        assert!(
            doc["paths"][path][method.to_ascii_lowercase()].is_object(),
            "{method} {path} is served but missing from openapi.json"
        );
    }
    app.stop().await;
}

/// A writer that keeps everything logged, to search it.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn passwords_and_tokens_never_reach_the_logs() {
    let logs = Captured::default();
    let sink = logs.clone();
    let installed = tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_writer(move || sink.clone())
        .try_init();
    assert!(
        installed.is_ok(),
        "this test must own the global subscriber"
    );

    let app = spawn_app().await;
    let password = "Sup3r-secret-Passw0rd";
    create_user(&app, "carol", password, Role::Admin).await;
    let _ = login(&app, "carol", "Wrong-secret-Passw0rd").await;
    let ok = login(&app, "carol", password).await;
    let cookie = ok.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .split('=')
        .nth(1)
        .unwrap()
        .to_owned();
    let body: Value = ok.json().await.unwrap();
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();
    let created: Value = app
        .client
        .post(app.url("/api/v1/tokens"))
        .header("cookie", format!("veza_session={cookie}"))
        .header("x-csrf-token", &csrf)
        .json(&json!({"name": "logged?"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    assert_eq!(app.get("/api/v1/me", Some(&token)).await.status(), 200);
    let setup = setup_token(&app);
    app.stop().await;

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("login failed") && text.contains("API token created"),
        "capture works:\n{text}"
    );
    for secret in [
        password,
        "Wrong-secret-Passw0rd",
        &token,
        &cookie,
        &csrf,
        &setup,
    ] {
        assert!(!text.contains(secret), "a secret reached the logs");
    }
}

#[test]
fn cli_creates_admins_and_tokens_that_the_server_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], stdin: Option<&str>| {
        use std::io::Write;
        let mut c = veza(dir.path());
        c.args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    };
    // No database yet: refused with exit 66, naming the path and how to point elsewhere,
    // and nothing is created.
    let missing = run(
        &["admin", "create", "--username", "root", "--password-stdin"],
        Some("long-enough-pw\n"),
    );
    assert_eq!(missing.status.code(), Some(66), "{}", stderr(&missing));
    let msg = stderr(&missing);
    assert!(msg.contains("veza-data/veza.db"), "{msg}");
    assert!(
        msg.contains("--config") && msg.contains("VEZA_DATA_DIR"),
        "{msg}"
    );
    assert!(!dir.path().join("veza-data").exists());
    let migrated = run(&["migrate"], None);
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    let weak = run(
        &["admin", "create", "--username", "root", "--password-stdin"],
        Some("short\n"),
    );
    assert_eq!(weak.status.code(), Some(2), "{}", stderr(&weak));
    let no_tty = run(&["admin", "create", "--username", "root"], None);
    assert_eq!(no_tty.status.code(), Some(2));
    assert!(stderr(&no_tty).contains("--password-stdin"));
    let ok = run(
        &["admin", "create", "--username", "root", "--password-stdin"],
        Some("root-password-1\n"),
    );
    assert!(ok.status.success(), "{}", stderr(&ok));
    let ed = run(
        &[
            "admin",
            "create",
            "--username",
            "ed",
            "--role",
            "editor",
            "--password-stdin",
        ],
        Some("ed-password-12\n"),
    );
    assert!(ed.status.success());
    let taken = run(
        &["admin", "create", "--username", "ROOT", "--password-stdin"],
        Some("root-password-1\n"),
    );
    assert_eq!(taken.status.code(), Some(2));
    let list = stdout(&run(&["admin", "list"], None));
    assert!(
        list.contains("root") && list.contains("admin") && list.contains("editor"),
        "{list}"
    );
    let reset = run(
        &[
            "admin",
            "reset-password",
            "--username",
            "ed",
            "--password-stdin",
        ],
        Some("ed-password-new\n"),
    );
    assert!(reset.status.success(), "{}", stderr(&reset));
    let tok = run(
        &[
            "token",
            "create",
            "--username",
            "root",
            "--name",
            "backup",
            "--expires-days",
            "7",
        ],
        None,
    );
    assert!(tok.status.success(), "{}", stderr(&tok));
    let token = stdout(&tok).trim().to_owned();
    assert!(token.starts_with("vz_") && token.len() == 46, "{token}");

    // The same data dir served: the CLI's token and password work.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let data = dir.path().join("veza-data");
        let app = spawn_app_with(|c| {
            c.data_dir = data.clone();
            c.storage.local_root = data.join("blobs");
        })
        .await;
        assert!(app.setup_link.is_none(), "an admin exists: no setup link");
        let me: Value = app.get_json("/api/v1/me", Some(&token)).await;
        assert_eq!(me["user"]["username"], "root");
        assert_eq!(login(&app, "ed", "ed-password-new").await.status(), 200);
        assert_eq!(login(&app, "ed", "ed-password-12").await.status(), 401);
        app.stop().await;
    });
}

#[tokio::test]
async fn cached_tokens_obey_revokes_disables_and_role_changes_at_once() {
    // A long TTL: only the invalidation can make these answers right.
    let app = spawn_app_with(|c| c.cache.metadata_ttl_secs = 3600).await;
    let (_, admin) = user_with_token(&app, "boss", Role::Admin).await;
    let (uid, token) = user_with_token(&app, "ed", Role::Editor).await;
    let hits = |app: &TestApp| -> u64 {
        let text = app.state.metrics.render().unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("veza_cache_hits_total{subsystem=\"api_tokens\"} "))
            .map_or(0, |v| v.parse().unwrap())
    };
    for _ in 0..3 {
        assert_eq!(app.get("/api/v1/jobs", Some(&token)).await.status(), 200);
    }
    assert!(hits(&app) >= 2, "repeat calls are answered from the cache");

    let user = format!("/api/v1/users/{uid}");
    let patch = |body: Value| {
        let (app, admin, user) = (&app, admin.clone(), user.clone());
        async move {
            assert_eq!(
                app.patch_json(&user, Some(&admin), &body).await.status(),
                200
            );
        }
    };
    patch(json!({"role": "listener"})).await;
    assert_envelope(
        app.get("/api/v1/jobs", Some(&token)).await,
        403,
        "forbidden",
    )
    .await;
    patch(json!({"role": "editor"})).await;
    assert_eq!(app.get("/api/v1/jobs", Some(&token)).await.status(), 200);
    patch(json!({"disabled": true})).await;
    assert_envelope(
        app.get("/api/v1/me", Some(&token)).await,
        401,
        "unauthorized",
    )
    .await;
    patch(json!({"disabled": false})).await;
    assert_eq!(app.get("/api/v1/me", Some(&token)).await.status(), 200);

    let list: Value = app.get_json("/api/v1/tokens", Some(&token)).await;
    let id = list["tokens"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(app.get("/api/v1/me", Some(&token)).await.status(), 200);
    assert_eq!(
        app.delete(&format!("/api/v1/tokens/{id}"), Some(&token))
            .await
            .status(),
        204
    );
    assert_envelope(
        app.get("/api/v1/me", Some(&token)).await,
        401,
        "unauthorized",
    )
    .await;
    app.stop().await;
}
