//! The `purge_cdn` job: asks Bunny to drop a taken-down track's cached objects, one purge
//! request per URL (`POST {api_url}/purge?url=…&async=false` with the account `AccessKey`).
//! A 429 or 5xx fails the attempt, so the queue retries it with backoff; purging twice is
//! harmless, so the job is idempotent.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use super::Inner as Service;
use crate::config::{CdnProvider, Config};
use crate::jobs::{Job, JobCtx, JobFailure, JobKind, NewJob};
use crate::library::Track;

/// How long one purge request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What a purge job purges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgePayload {
    /// CDN URLs; one ending in `*` purges everything under it.
    pub urls: Vec<String>,
}

/// The purge job for a track, or `None` when no CDN caches Veza's objects (no CDN enabled, or
/// a provider without a purge API here).
pub fn new_job(cfg: &Config, track: &Track) -> Option<NewJob> {
    if !cfg.cdn.enabled || cfg.cdn.provider != CdnProvider::Bunny {
        return None;
    }
    let base = cfg.cdn.base_url.as_ref()?;
    let join = |path: &str| -> Option<String> {
        let mut u = base.clone();
        let p = format!("{}/{}", u.path().trim_end_matches('/'), path);
        u.set_path(&p);
        Some(u.to_string())
    };
    let mut urls = vec![join(&format!("tracks/{}/*", track.id))?];
    urls.push(join(track.original_key.as_str())?);
    if let Some(cover) = &track.cover_key {
        urls.push(join(cover.as_str())?);
    }
    Some(NewJob {
        kind: JobKind::PurgeCdn,
        track_id: Some(track.id.to_string()),
        payload: serde_json::to_value(PurgePayload { urls }).expect("plain data serialises"),
    })
}

/// Runs one attempt: purges every URL; the first failure fails the attempt.
pub async fn run(s: &Service, job: &Job, ctx: &JobCtx) -> Result<(), JobFailure> {
    let payload: PurgePayload = serde_json::from_value(job.payload.clone())
        .map_err(|e| JobFailure::Failed(format!("bad purge payload: {e}")))?;
    let bunny = &s.config.cdn.bunny;
    if bunny.api_key.is_empty() {
        return Err(JobFailure::Failed(
            "cdn.bunny.api_key is empty: Veza cannot ask Bunny to purge; set it and retry this job"
                .into(),
        ));
    }
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("veza/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| JobFailure::Failed(format!("HTTP client: {e}")))?;
    let total = payload.urls.len().max(1) as f64;
    for (i, target) in payload.urls.iter().enumerate() {
        if ctx.cancel.is_cancelled() {
            return Err(JobFailure::Interrupted);
        }
        let endpoint = purge_endpoint(&bunny.api_url, target);
        let res = client
            .post(endpoint)
            .header("AccessKey", bunny.api_key.expose())
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| JobFailure::Failed(format!("purge {target}: {}", without_url(&e))))?;
        let status = res.status();
        if !status.is_success() {
            let retry_hint = res
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(|v| format!(" (retry-after {v})"))
                .unwrap_or_default();
            let body: String = res
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect();
            return Err(JobFailure::Failed(format!(
                "purge {target}: Bunny answered {status}{retry_hint}: {body}"
            )));
        }
        ctx.report((i + 1) as f64 / total);
        tracing::info!(url = %target, "CDN purge accepted");
    }
    Ok(())
}

/// `{api_url}/purge?url={target}&async=false`, the target encoded exactly once.
fn purge_endpoint(api: &Url, target: &str) -> Url {
    let mut u = api.clone();
    let p = format!("{}/purge", u.path().trim_end_matches('/'));
    u.set_path(&p);
    u.query_pairs_mut()
        .clear()
        .append_pair("url", target)
        .append_pair("async", "false");
    u
}

/// reqwest errors print the URL; ours carries no secret, but keep messages short and stable.
fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "<bunny api>");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_url_is_encoded_once() {
        let api = Url::parse("https://api.bunny.net").unwrap();
        let u = purge_endpoint(&api, "https://cdn.example.com/tracks/7f/*");
        assert_eq!(
            u.as_str(),
            "https://api.bunny.net/purge?url=https%3A%2F%2Fcdn.example.com%2Ftracks%2F7f%2F*&async=false"
        );
        let pairs: Vec<_> = u.query_pairs().collect();
        assert_eq!(pairs[0].1, "https://cdn.example.com/tracks/7f/*");
    }
}
