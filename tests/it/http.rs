//! The HTTP surface of the foundation: health, readiness, metrics, envelopes, request ids,
//! and the web-vitals beacon.

use crate::helpers::{assert_envelope, promtool_check_metrics, spawn_app, spawn_app_with};

const BEACON: &str = "/api/v1/observability/web-vitals";

#[tokio::test]
async fn healthz_reports_ok_and_version() {
    let app = spawn_app().await;
    let resp = app.get("/healthz", None).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-request-id"));
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")})
    );
    app.stop().await;
}

#[tokio::test]
async fn readyz_is_cached_then_reports_the_broken_store_without_paths() {
    let app = spawn_app_with(|c| c.server.readyz_check = std::time::Duration::from_secs(2)).await;
    let resp = app.get("/readyz", None).await;
    assert_eq!(resp.status(), 200);
    std::fs::remove_dir_all(app.data_dir.join("blobs")).unwrap();
    // Within the interval the cached result answers (a real probe would fail now): no
    // store write per anonymous call.
    for _ in 0..20 {
        let r = app.get("/readyz", None).await;
        assert_eq!(r.status(), 200);
    }
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let resp = app.get("/readyz", None).await;
    assert_eq!(resp.status(), 503);
    let text = resp.text().await.unwrap();
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["checks"]["database"], "ok");
    assert!(
        body["checks"]["storage"]
            .as_str()
            .unwrap()
            .starts_with("error"),
        "{body}"
    );
    let dir = app.data_dir.display().to_string();
    assert!(
        !text.contains(&dir) && !text.contains("/tmp"),
        "a path leaked: {text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn head_healthz_and_readyz_answer_like_get() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz"] {
        let get = app.get(path, None).await;
        let head = app.client.head(app.url(path)).send().await.unwrap();
        assert_eq!(head.status(), get.status(), "{path}");
        assert_eq!(head.status(), 200, "{path}");
        assert_eq!(
            head.headers()["content-type"],
            get.headers()["content-type"],
            "{path}"
        );
        assert!(
            head.bytes().await.unwrap().is_empty(),
            "{path}: HEAD has no body"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_sane_incoming_request_id_is_kept_and_a_bad_one_replaced() {
    let app = spawn_app().await;
    let resp = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "edge-42.abc")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "edge-42.abc");
    let resp = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "bad id <x>")
        .send()
        .await
        .unwrap();
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(id, "bad id <x>");
    assert_eq!(id.len(), 32);
    app.stop().await;
}

#[tokio::test]
async fn every_error_status_returns_the_envelope() {
    let app = spawn_app_with(|c| c.server.max_json_bytes = 1024).await;
    let c = &app.client;
    assert_envelope(
        c.get(app.url("/no/such/route")).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    assert_envelope(
        c.delete(app.url("/healthz")).send().await.unwrap(),
        405,
        "method_not_allowed",
    )
    .await;
    assert_envelope(
        c.get(app.url(BEACON)).send().await.unwrap(),
        405,
        "method_not_allowed",
    )
    .await;

    let post = |body: &'static str, ct: &'static str| {
        c.post(app.url(BEACON))
            .header("content-type", ct)
            .body(body)
    };
    // Each bad body: its status, code, and what the message must name.
    let cases: [(&str, &str, u16, &str, &str); 5] = [
        (
            "{\"name\":",
            "application/json",
            400,
            "invalid_json",
            "invalid JSON",
        ),
        (
            r#"{"name":"LCP","value":"slow","route":"/"}"#,
            "application/json",
            400,
            "invalid_json",
            "value",
        ),
        (
            r#"[{"name":"LCP","value":1,"route":"/"},{"name":"CLS","value":0.1,"route":7}]"#,
            "application/json",
            400,
            "invalid_json",
            "[1].route",
        ),
        (
            r#"{"name":"LCP","value":1,"route":"/","colour":"red"}"#,
            "application/json",
            400,
            "invalid_json",
            "colour",
        ),
        ("<x/>", "application/xml", 415, "unsupported_media_type", ""),
    ];
    for (body, ct, status, code, names) in cases {
        let e = assert_envelope(post(body, ct).send().await.unwrap(), status, code).await;
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.contains(names), "{body}: {e}");
    }
    assert_envelope(
        c.post(app.url(BEACON)).body("{}").send().await.unwrap(),
        415,
        "unsupported_media_type",
    )
    .await;

    // Over max_json_bytes: with a declared length, and streamed without one.
    let big = format!(
        r#"{{"name":"LCP","value":1,"route":"/{}"}}"#,
        "a".repeat(2000)
    );
    let too_big = assert_envelope(
        c.post(app.url(BEACON))
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await
            .unwrap(),
        413,
        "payload_too_large",
    )
    .await;
    assert!(
        too_big["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1024")
    );
    let stream = futures_util::stream::iter(
        big.into_bytes()
            .chunks(100)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    assert_envelope(
        c.post(app.url(BEACON))
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await
            .unwrap(),
        413,
        "payload_too_large",
    )
    .await;
    app.stop().await;
}

async fn metrics_text(app: &crate::helpers::TestApp) -> String {
    let resp = app.get("/metrics", None).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    resp.text().await.unwrap()
}

#[tokio::test]
async fn metrics_label_routes_by_template_and_pass_promtool() {
    let app = spawn_app().await;
    app.get("/healthz", None).await;
    app.get(
        "/tracks/0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b/secret-path",
        None,
    )
    .await;
    let text = metrics_text(&app).await;
    assert!(
        text.contains(&format!(
            "veza_build_info{{commit=\"{}\",version=\"{}\"}} 1",
            veza::version::COMMIT,
            veza::version::VERSION
        )),
        "{text}"
    );
    assert!(
        text.contains(
            r#"veza_http_requests_total{method="GET",route="/healthz",status_class="2xx"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"veza_http_requests_total{method="GET",route="unmatched",status_class="4xx"} 1"#
        ),
        "{text}"
    );
    assert!(
        !text.contains("secret-path"),
        "raw paths must never become labels"
    );
    assert!(text.contains("veza_http_request_duration_seconds_bucket"));
    assert!(text.contains("process_resident_memory_bytes"));

    promtool_check_metrics(&text);
    app.stop().await;
}

#[tokio::test]
async fn building_two_apps_in_one_process_does_not_panic() {
    let a = spawn_app().await;
    let b = spawn_app().await;
    assert_ne!(a.addr, b.addr);
    for app in [&a, &b] {
        assert_eq!(app.get("/healthz", None).await.status(), 200);
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn second_start_on_the_same_data_dir_reuses_the_database() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    for round in 0..2 {
        let dir = dir.clone();
        let cfg = veza::config::from_toml_str(&format!(
            "data_dir = {:?}\n[server]\nlisten = \"127.0.0.1:0\"\n",
            dir.display().to_string()
        ))
        .unwrap();
        let app = veza::App::build(cfg).await.unwrap();
        let fresh = app.migrations().iter().filter(|m| m.now).count();
        let all = veza::db::binary_schema_version() as usize;
        assert_eq!(fresh, if round == 0 { all } else { 0 }, "round {round}");
        assert!(dir.join("veza.db").is_file());
    }
}

#[tokio::test]
async fn beacons_are_recorded_with_bounded_labels() {
    let app = spawn_app_with(|c| c.rum.max_routes = 2).await;
    let send = |body: String, ct: &'static str| {
        app.client
            .post(app.url(BEACON))
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let ok = send(
        r#"[{"name":"LCP","value":2300,"route":"/Library/Tracks/0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b/Edit","device":"mobile"},
            {"name":"CLS","value":0.3,"route":"/","device":"fridge","rating":"poor","id":"v4-1","navigation_type":"navigate"}]"#
            .into(),
        "text/plain;charset=UTF-8",
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), 204);
    // A third distinct route is past the cap of 2.
    assert_eq!(
        send(
            r#"{"name":"TTFB","value":100,"route":"/settings"}"#.into(),
            "application/json"
        )
        .await
        .unwrap()
        .status(),
        204
    );
    let bad = send(
        r#"[{"name":"FID","value":10,"route":"/"},{"name":"INP","value":90000,"route":"/"},{"name":"FCP","value":900,"route":"/"}]"#.into(),
        "application/json",
    )
    .await
    .unwrap();
    let body = assert_envelope(bad, 400, "invalid_beacon").await;
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("[0] unknown_metric") && msg.contains("[1] out_of_range"),
        "{msg}"
    );
    let many: Vec<String> = (0..21)
        .map(|_| r#"{"name":"FCP","value":1,"route":"/"}"#.to_owned())
        .collect();
    assert_envelope(
        send(format!("[{}]", many.join(",")), "application/json")
            .await
            .unwrap(),
        400,
        "invalid_beacon",
    )
    .await;

    // A body that is not JSON, and a type a beacon never has.
    let r = send("{not json".into(), "application/json").await.unwrap();
    assert_eq!(r.status(), 400);
    let r = send("<vitals/>".into(), "application/xml").await.unwrap();
    assert_eq!(r.status(), 415);

    let text = metrics_text(&app).await;
    assert!(text.contains(r#"veza_rum_web_vitals_bucket{device="mobile",name="LCP",route="library-tracks-edit",le="2.5"} 1"#), "{text}");
    assert!(
        text.contains(
            r#"veza_rum_web_vitals_bucket{device="unknown",name="CLS",route="root",le="0.25"} 0"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"veza_rum_web_vitals_count{device="unknown",name="TTFB",route="other"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"veza_rum_web_vitals_count{device="unknown",name="FCP",route="root"} 1"#),
        "{text}"
    );
    assert!(text.contains("veza_rum_beacons_received_total 6"), "{text}");
    for reason in ["invalid_json", "bad_content_type"] {
        assert!(
            text.contains(&format!(
                "veza_rum_beacons_rejected_total{{reason=\"{reason}\"}} 1"
            )),
            "{reason}: {text}"
        );
    }
    assert!(
        text.contains(r#"veza_rum_beacons_rejected_total{reason="unknown_metric"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"veza_rum_beacons_rejected_total{reason="out_of_range"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"veza_rum_beacons_rejected_total{reason="too_large"} 1"#),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn beacons_over_the_rate_limit_get_429_with_retry_after() {
    let app = spawn_app_with(|c| c.rum.rate_limit_per_min = 3).await;
    let send = || {
        app.client
            .post(app.url(BEACON))
            .header("content-type", "application/json")
            .body(r#"{"name":"LCP","value":1000,"route":"/"}"#)
            .send()
    };
    for _ in 0..3 {
        assert_eq!(send().await.unwrap().status(), 204);
    }
    let limited = send().await.unwrap();
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_envelope(limited, 429, "rate_limited").await;
    let text = metrics_text(&app).await;
    assert!(
        text.contains(r#"veza_rum_beacons_rejected_total{reason="rate_limited"} 1"#),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn beacon_cors_allows_only_configured_origins() {
    let app = spawn_app_with(|c| c.rum.cors_origins = vec!["https://app.example".into()]).await;
    let pre = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url(BEACON))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let ok = pre("https://app.example").await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let refused = pre("https://evil.example").await.unwrap();
    assert_envelope(refused, 403, "forbidden").await;
    app.stop().await;
}
