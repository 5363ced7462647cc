//! Observability against real parts: every metric of docs/METRICS.md appears in a scrape of a
//! running Veza after each subsystem worked, with only catalogued labels and values; the alert
//! rules pass `promtool check rules` and their unit tests; the Grafana dashboard queries only
//! catalogued series; the caches never serve a track after its takedown.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use veza::accounts::Role;

use crate::helpers::{
    promtool_check_metrics, require_tool, spawn_app_with, stderr, stdout, tone, user_with_token,
};

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// One row of the catalogue.
#[derive(Debug)]
struct Entry {
    kind: String,
    /// Documented as "appears after the first event" (absent from a scrape until then).
    lazy: bool,
    /// Label name → its closed set of values (`None`: open but bounded, e.g. route templates).
    labels: BTreeMap<String, Option<BTreeSet<String>>>,
}

/// Backticked tokens of a cell, in order.
fn ticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Parses the table of docs/METRICS.md: `| `name` | type | `l` ∈ `a`, `b`; `m` (note) | … |`.
fn catalogue() -> BTreeMap<String, Entry> {
    let text = std::fs::read_to_string(repo("docs/METRICS.md")).unwrap();
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("| `veza_") || l.starts_with("| `process_"))
    {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        assert!(cells.len() >= 4, "malformed row: {line}");
        let name = ticked(cells[0]).remove(0);
        let mut labels = BTreeMap::new();
        if cells[2] != "—" {
            for label in cells[2].split("; ") {
                let (head, values) = match label.split_once('∈') {
                    Some((h, v)) => (h, Some(ticked(v).into_iter().collect::<BTreeSet<_>>())),
                    None => (label, None),
                };
                let name = ticked(head)
                    .first()
                    .cloned()
                    .unwrap_or_else(|| panic!("no label name in {label:?} ({line})"));
                if let Some(v) = &values {
                    assert!(!v.is_empty(), "empty value set for {name} in {line}");
                }
                labels.insert(name, values);
            }
        }
        let kind = cells[1].split_whitespace().next().unwrap().to_owned();
        assert!(
            ["counter", "gauge", "histogram"].contains(&kind.as_str()),
            "{line}"
        );
        assert!(
            out.insert(
                name.clone(),
                Entry {
                    lazy: line.contains("appears after the first event"),
                    kind,
                    labels,
                }
            )
            .is_none(),
            "{name} twice"
        );
    }
    assert!(out.len() > 20, "the catalogue table did not parse: {out:?}");
    out
}

/// A sample line: `name{k="v",…} value`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn parse_samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (head, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match head.split_once('{') {
            Some((n, rest)) => (n, rest.strip_suffix('}').unwrap()),
            None => (head, ""),
        };
        // Label values may hold `{`, `,` or `=` (route templates); split on quotes.
        let mut map = BTreeMap::new();
        let mut rest = labels;
        while !rest.is_empty() {
            let (k, after) = rest.split_once("=\"").unwrap();
            let end = after.find('"').unwrap();
            map.insert(
                k.trim_start_matches(',').to_owned(),
                after[..end].to_owned(),
            );
            rest = &after[end + 1..];
        }
        out.push(Sample {
            name: name.to_owned(),
            labels: map,
            value: value.parse().unwrap_or(f64::NAN),
        });
    }
    out
}

/// The catalogued family a sample belongs to (histograms expose `_bucket`, `_sum`, `_count`).
fn family<'a>(cat: &'a BTreeMap<String, Entry>, name: &str) -> Option<(&'a str, &'a Entry)> {
    if let Some((k, e)) = cat.get_key_value(name) {
        return Some((k, e));
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = name.strip_suffix(suffix)?;
        cat.get_key_value(base)
            .filter(|(_, e)| e.kind == "histogram")
            .map(|(k, e)| (k.as_str(), e))
    })
}

fn value(samples: &[Sample], name: &str, label: (&str, &str)) -> f64 {
    samples
        .iter()
        .find(|s| s.name == name && s.labels.get(label.0).map(String::as_str) == Some(label.1))
        .unwrap_or_else(|| panic!("{name}{{{}={}}} missing", label.0, label.1))
        .value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_catalogued_metric_appears_with_only_catalogued_labels() {
    let cat = catalogue();
    let app = spawn_app_with(|_| {}).await;
    let (_, admin) = user_with_token(&app, "admin", Role::Admin).await;

    // Library, storage, jobs, HLS: a real upload packaged by the real ffmpeg.
    let dir = tempfile::tempdir().unwrap();
    let file = tone(dir.path(), "tone.mp3", 8, 128);
    let t = app.upload(&admin, &file).await;
    let id = t["id"].as_str().unwrap().to_owned();
    app.wait_status(&admin, &id, "ready", 120).await;

    // Signing and the stream-URL cache: the second anonymous request reuses the first URL.
    let stream = |app: &crate::helpers::TestApp| {
        let url = app.url(&format!("/api/v1/tracks/{id}/stream"));
        let client = app.client.clone();
        async move {
            let r = client.get(url).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let first = stream(&app).await;
    let second = stream(&app).await;
    assert_eq!(first["url"], second["url"], "a young URL is reused");

    // The origin and its caches: segments' bytes stay in memory, so an edge revalidating one
    // is answered from them; an original's size and ETag come from the blob-head cache.
    let fetched =
        crate::helpers::play(&app.client, &app.reach(first["url"].as_str().unwrap()), &id).await;
    let segment = fetched.last().unwrap();
    let original = app
        .client
        .get(app.url(&format!("/api/v1/tracks/{id}/stream?format=original")));
    let original: Value = original.send().await.unwrap().json().await.unwrap();
    let original = app.reach(original["url"].as_str().unwrap());
    for _ in 0..2 {
        for url in [segment, &original] {
            let r = app.client.head(url).send().await.unwrap();
            assert_eq!(r.status(), 200);
        }
    }

    // RUM: one accepted and one rejected beacon.
    let beacon = |body: &'static str| {
        app.client
            .post(app.url("/api/v1/observability/web-vitals"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let ok = beacon(r#"{"name":"LCP","value":1200,"route":"/library","device":"desktop"}"#);
    assert_eq!(ok.await.unwrap().status(), 204);
    assert_eq!(beacon("{not json").await.unwrap().status(), 400);

    // The background gauges, run now rather than waiting for their timers.
    let gauges = veza::app::gauges::Deps::of(&app.state);
    veza::app::gauges::refresh_library(&gauges).await;
    veza::app::gauges::scan_store(&gauges).await;
    let s = &app.state;
    veza::jobs::worker::refresh_gauges(&s.db, &s.jobs, &s.metrics).await;

    let text = app.get("/metrics", None).await.text().await.unwrap();
    let samples = parse_samples(&text);

    let mut seen = BTreeSet::new();
    for s in &samples {
        let (fam, entry) = family(&cat, &s.name)
            .unwrap_or_else(|| panic!("{} is exposed but not in docs/METRICS.md", s.name));
        seen.insert(fam.to_owned());
        for (k, v) in &s.labels {
            if k == "le" && s.name.ends_with("_bucket") {
                continue;
            }
            let allowed = entry
                .labels
                .get(k)
                .unwrap_or_else(|| panic!("{}: label {k} is not catalogued", s.name));
            if let Some(set) = allowed {
                assert!(set.contains(v), "{}: {k}={v:?} is outside {set:?}", s.name);
            }
        }
        for k in entry.labels.keys() {
            assert!(s.labels.contains_key(k), "{}: label {k} missing", s.name);
        }
    }
    // Labelled counters and histograms exist only once an event created a series: the
    // catalogue must say so, and only those may be missing from this scrape.
    for (name, e) in &cat {
        if e.kind != "gauge" && !e.labels.is_empty() {
            assert!(
                e.lazy,
                "{name}: say \"appears after the first event\" in docs/METRICS.md"
            );
        }
    }
    let missing: Vec<_> = cat
        .iter()
        .filter(|(k, e)| !seen.contains(*k) && !e.lazy)
        .map(|(k, _)| k)
        .collect();
    assert!(
        missing.is_empty(),
        "catalogued but not exposed: {missing:?}"
    );

    // What the subsystems did shows in the figures.
    for sub in ["stream_url", "metadata", "blob_head", "media_bytes"] {
        assert!(
            value(&samples, "veza_cache_hits_total", ("subsystem", sub)) >= 1.0,
            "no {sub} cache hit"
        );
        assert!(value(&samples, "veza_cache_misses_total", ("subsystem", sub)) >= 1.0);
    }
    assert_eq!(value(&samples, "veza_tracks", ("status", "ready")), 1.0);
    assert_eq!(
        value(&samples, "veza_tracks", ("status", "processing")),
        0.0
    );
    assert!(value(&samples, "veza_blob_store_objects", ("area", "hls")) >= 3.0);
    assert_eq!(
        value(&samples, "veza_blob_store_objects", ("area", "originals")),
        1.0
    );
    assert_eq!(
        value(&samples, "veza_blob_store_bytes", ("area", "originals")),
        std::fs::metadata(&file).unwrap().len() as f64
    );
    let one = |name: &str| samples.iter().find(|s| s.name == name).unwrap().value;
    assert!(one("veza_db_size_bytes") > 0.0);
    assert!(one("veza_blob_store_scan_timestamp_seconds") > 1.7e9);
    assert_eq!(one("veza_hls_available"), 1.0);
    assert_eq!(
        value(&samples, "veza_jobs_total", ("outcome", "succeeded")),
        1.0
    );

    // And the whole exposition is valid for Prometheus.
    promtool_check_metrics(&text);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_caches_never_outlive_a_takedown_or_a_visibility_change() {
    // A long TTL: only invalidation can make these pass.
    let app = spawn_app_with(|c| {
        c.hls.enabled = false;
        c.cache.metadata_ttl_secs = 3600;
    })
    .await;
    let (_, admin) = user_with_token(&app, "admin", Role::Admin).await;
    let dir = tempfile::tempdir().unwrap();
    let t = app.upload(&admin, &tone(dir.path(), "t.mp3", 3, 96)).await;
    let id = t["id"].as_str().unwrap().to_owned();
    app.wait_status(&admin, &id, "ready", 30).await;
    let stream = app.url(&format!("/api/v1/tracks/{id}/stream"));

    let url = {
        let first: Value = app
            .client
            .get(&stream)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let again: Value = app
            .client
            .get(&stream)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(first["url"], again["url"], "served from the cache");
        app.reach(first["url"].as_str().unwrap())
    };
    for _ in 0..2 {
        assert_eq!(app.client.head(&url).send().await.unwrap().status(), 200);
    }

    // Private: anonymous callers lose the stream URL and the origin at once.
    let r = app
        .patch_json(
            &format!("/api/v1/tracks/{id}"),
            Some(&admin),
            &serde_json::json!({"visibility": "private"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.client.get(&stream).send().await.unwrap().status(), 404);
    let misses = || {
        app.state
            .metrics
            .cache_misses
            .with_label_values(&["stream_url"])
            .get()
    };
    let misses_before = misses();
    let private_url: Value = app
        .client
        .get(&stream)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        misses(),
        misses_before + 1,
        "the URL cached before the change was not served"
    );

    // Taken down: 451 at once for the API and for the URL handed out before.
    let r = app
        .post_json(
            &format!("/api/v1/tracks/{id}/takedown"),
            Some(&admin),
            &serde_json::json!({"reason": "test"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .client
        .get(&stream)
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 451);
    let owner_url = app.reach(private_url["url"].as_str().unwrap());
    assert_eq!(
        app.client.head(&owner_url).send().await.unwrap().status(),
        451
    );
    app.stop().await;
}

#[test]
fn alert_rules_pass_promtool_and_every_alert_is_tested_and_has_a_runbook() {
    let promtool = require_tool("promtool");
    let dir = repo("packaging/prometheus");
    for args in [
        ["check", "rules", "veza-rules.yml"],
        ["test", "rules", "veza-rules.test.yml"],
    ] {
        let out = Command::new(&promtool)
            .current_dir(&dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            stdout(&out),
            stderr(&out)
        );
    }

    let rules = std::fs::read_to_string(dir.join("veza-rules.yml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("veza-rules.test.yml")).unwrap();
    let ops = std::fs::read_to_string(repo("docs/OPERATIONS.md")).unwrap();
    let anchors: BTreeSet<String> = ops
        .lines()
        .filter_map(|l| l.strip_prefix("### "))
        .map(github_slug)
        .collect();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert!(alerts.len() >= 10, "{alerts:?}");
    let runbooks: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("runbook_url: "))
        .collect();
    assert_eq!(runbooks.len(), alerts.len(), "one runbook per alert");
    for url in runbooks {
        let anchor = url
            .trim_matches('"')
            .rsplit_once("OPERATIONS.md#")
            .unwrap()
            .1;
        assert!(anchors.contains(anchor), "no runbook heading for #{anchor}");
    }
    for alert in &alerts {
        // A firing case names the alert with exp_labels; a quiet one with `exp_alerts: []`.
        let cases: Vec<&str> = tests
            .split("alertname: ")
            .skip(1)
            .filter(|c| c.starts_with(&format!("{alert}\n")))
            .collect();
        assert!(
            cases.iter().any(|c| c.contains("exp_alerts: []")),
            "{alert} has no not-firing test"
        );
        assert!(
            cases
                .iter()
                .any(|c| c.lines().nth(1).is_some_and(|l| l.trim() == "exp_alerts:")),
            "{alert} has no firing test"
        );
    }
    for p75 in ["lcp", "inp", "cls"] {
        assert!(rules.contains(&format!("record: veza:rum_{p75}")), "{p75}");
    }
}

/// GitHub's heading anchor: lower case, spaces to `-`, punctuation other than `-`/`_` dropped.
fn github_slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn the_grafana_dashboard_queries_only_catalogued_series() {
    let cat = catalogue();
    let rules = std::fs::read_to_string(repo("packaging/prometheus/veza-rules.yml")).unwrap();
    let recorded: BTreeSet<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- record: "))
        .collect();
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(repo("packaging/grafana/veza.json")).unwrap(),
    )
    .unwrap();
    let mut exprs = Vec::new();
    collect_exprs(&dash, &mut exprs);
    assert!(exprs.len() >= 20, "{exprs:?}");
    let mut panels_by_row = 0;
    for p in dash["panels"].as_array().unwrap() {
        if p["type"] == "row" {
            panels_by_row += 1;
        }
    }
    assert!(
        panels_by_row >= 6,
        "rows for traffic, streaming, jobs, storage, signing, RUM"
    );
    for e in &exprs {
        for name in series_names(e) {
            assert!(
                family(&cat, &name).is_some() || recorded.contains(name.as_str()),
                "{name} in {e:?} is neither catalogued nor recorded"
            );
        }
    }
}

fn collect_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr" | "query", Value::String(s)) if s.contains("veza") => {
                        out.push(s.clone());
                    }
                    _ => collect_exprs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

/// Every `veza_…` or `veza:…` identifier in a PromQL expression.
fn series_names(expr: &str) -> Vec<String> {
    let bytes = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(pos) = expr[i..].find("veza") {
        let start = i + pos;
        let boundary = start == 0 || {
            let b = bytes[start - 1];
            !(b.is_ascii_alphanumeric() || b == b'_' || b == b':' || b == b'$')
        };
        let mut end = start;
        while end < bytes.len()
            && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_' || bytes[end] == b':')
        {
            end += 1;
        }
        let name = &expr[start..end];
        if boundary && (name.starts_with("veza_") || name.starts_with("veza:")) {
            out.push(name.to_owned());
        }
        i = end.max(start + 4);
    }
    out
}
