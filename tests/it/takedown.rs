//! Takedown and restore against real parts, with a local fake of Bunny's purge API (the one
//! third party that cannot run here) that checks what Bunny checks: method, path, the `url`
//! parameter and the `AccessKey` header. It answers 429 once, so the retry path runs too.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use veza::accounts::Role;
use veza::config::{CdnProvider, Secret};
use warp::Filter;

use crate::helpers::{assert_envelope, spawn_app_with, tone, user_with_token};

const API_KEY: &str = "bunny-account-key-0123456789";
const ORIGIN_SECRET: &str = "edge-secret-0123456789abcdefghij";
const CDN: &str = "https://cdn.example.com";

#[derive(Default)]
struct FakeBunny {
    /// `url` parameters of accepted purges.
    purged: Vec<String>,
    /// Requests refused for a wrong method, path, key or parameter.
    refused: Vec<String>,
    /// Requests answered 429.
    throttled: usize,
}

async fn spawn_fake_bunny(state: Arc<Mutex<FakeBunny>>) -> SocketAddr {
    let route = warp::method()
        .and(warp::path::full())
        .and(warp::header::optional::<String>("accesskey"))
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .map(
            move |m: warp::http::Method,
                  p: warp::path::FullPath,
                  key: Option<String>,
                  q: String| {
                let mut st = state.lock().unwrap();
                let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&q).unwrap();
                let url = pairs
                    .iter()
                    .find(|(k, _)| k == "url")
                    .map(|(_, v)| v.clone());
                let ok = m == warp::http::Method::POST
                    && p.as_str() == "/purge"
                    && key.as_deref() == Some(API_KEY)
                    && url.as_deref().is_some_and(|u| u.starts_with(CDN))
                    && pairs.iter().any(|(k, v)| k == "async" && v == "false");
                if !ok {
                    st.refused
                        .push(format!("{m} {} {q} key={key:?}", p.as_str()));
                    return warp::reply::with_status(
                        "bad request",
                        warp::http::StatusCode::BAD_REQUEST,
                    );
                }
                if st.throttled == 0 {
                    st.throttled += 1;
                    return warp::reply::with_status(
                        "slow down",
                        warp::http::StatusCode::TOO_MANY_REQUESTS,
                    );
                }
                st.purged.push(url.unwrap());
                warp::reply::with_status("", warp::http::StatusCode::OK)
            },
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    addr
}

#[tokio::test]
async fn a_takedown_hides_the_track_at_once_purges_the_cdn_and_restore_brings_it_back() {
    let fx = tempfile::tempdir().unwrap();
    let fake = Arc::new(Mutex::new(FakeBunny::default()));
    let api = spawn_fake_bunny(fake.clone()).await;
    let app = spawn_app_with(|c| {
        c.cdn.enabled = true;
        c.cdn.provider = CdnProvider::Bunny;
        c.cdn.base_url = Some(url::Url::parse(CDN).unwrap());
        c.cdn.security_key = Secret::new("bunny-token-key-0123456789");
        c.cdn.bunny.api_key = Secret::new(API_KEY);
        c.cdn.bunny.api_url = url::Url::parse(&format!("http://{api}")).unwrap();
        c.cdn.bunny.origin_secret = Secret::new(ORIGIN_SECRET);
        c.jobs.retry_base_secs = 1;
    })
    .await;
    let (_, admin) = user_with_token(&app, "boss", Role::Admin).await;
    let (_, ed) = user_with_token(&app, "ed", Role::Editor).await;

    let t = app.upload(&ed, &tone(fx.path(), "t.mp3", 3, 128)).await;
    let id = t["id"].as_str().unwrap().to_owned();
    app.wait_ready(&ed, &id).await;
    let track = {
        let tid = id.parse().unwrap();
        app.state
            .db
            .call(move |c| veza::library::store::get(c, &tid))
            .await
            .unwrap()
            .unwrap()
    };
    let objects = [
        format!("tracks/{id}/hls/master.m3u8"),
        track.original_key.to_string(),
    ];
    let origin_get = |key: String| {
        let (client, url) = (app.client.clone(), app.url(&format!("/media/{key}")));
        async move {
            client
                .get(url)
                .header("x-veza-origin-secret", ORIGIN_SECRET)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    for k in &objects {
        assert_eq!(origin_get(k.clone()).await, 200, "{k}");
    }
    let stream = format!("/api/v1/tracks/{id}/stream");
    assert_eq!(app.get(&stream, None).await.status(), 200);

    // Editors cannot take down; an empty reason is refused.
    let post = |path: String, token: String, body: Value| {
        let (client, url) = (app.client.clone(), app.url(&path));
        async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let takedown = format!("/api/v1/tracks/{id}/takedown");
    let r = post(takedown.clone(), ed.clone(), json!({"reason": "dmca"})).await;
    assert_envelope(r, 403, "forbidden").await;
    let r = post(takedown.clone(), admin.clone(), json!({"reason": "  "})).await;
    assert_envelope(r, 400, "invalid_field").await;

    let r = post(
        takedown.clone(),
        admin.clone(),
        json!({"reason": "DMCA notice 42"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let done: Value = r.json().await.unwrap();
    assert_eq!(done["track"]["status"], "taken_down");
    let job_id = done["purge_job_id"].as_i64().expect("a purge job");

    // At once: no URL is signed, and the origin answers 451 for every object.
    let r = app.get(&stream, None).await;
    assert_eq!(r.status(), 451);
    let r = app.get(&stream, Some(&admin)).await;
    assert_envelope(r, 451, "taken_down").await;
    for k in &objects {
        assert_eq!(origin_get(k.clone()).await, 451, "{k}");
    }
    let again = post(takedown.clone(), admin.clone(), json!({"reason": "twice"})).await;
    assert_envelope(again, 409, "already_taken_down").await;

    // The purge reaches Bunny after one 429 and a backoff.
    let deadline = Instant::now() + Duration::from_secs(30);
    let job = loop {
        let page = app
            .get_json(
                &format!("/api/v1/jobs?track_id={id}&kind=purge_cdn"),
                Some(&admin),
            )
            .await;
        let j = page["jobs"][0].clone();
        if j["state"] == "succeeded" {
            break j;
        }
        assert!(Instant::now() < deadline, "{page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(job["id"], job_id);
    assert_eq!(job["attempts"], 2, "{job}");
    assert!(job["last_error"].as_str().unwrap().contains("429"), "{job}");
    {
        let st = fake.lock().unwrap();
        assert!(st.refused.is_empty(), "{:?}", st.refused);
        assert_eq!(st.throttled, 1);
        assert_eq!(
            st.purged,
            vec![
                format!("{CDN}/tracks/{id}/*"),
                format!("{CDN}/{}", track.original_key),
            ]
        );
    }

    // Restore: streamable again, and the audit trail says who and why.
    let r = post(
        format!("/api/v1/tracks/{id}/restore"),
        admin.clone(),
        json!({"reason": "counter-notice"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let back: Value = r.json().await.unwrap();
    assert_eq!(back["status"], "ready", "it kept its HLS");
    assert_eq!(app.get(&stream, None).await.status(), 200);
    for k in &objects {
        assert_eq!(origin_get(k.clone()).await, 200, "{k}");
    }
    let audit = app
        .get_json(&format!("/api/v1/tracks/{id}/audit"), Some(&ed))
        .await;
    let a = audit.as_array().unwrap();
    assert_eq!(a.len(), 2, "{audit}");
    assert_eq!(
        (&a[0]["action"], &a[0]["reason"], &a[0]["actor"]),
        (&json!("takedown"), &json!("DMCA notice 42"), &json!("boss"))
    );
    assert_eq!(a[1]["action"], "restore");
    let r = post(
        format!("/api/v1/tracks/{id}/restore"),
        admin.clone(),
        json!({}),
    )
    .await;
    assert_envelope(r, 409, "not_taken_down").await;
    app.stop().await;
}
