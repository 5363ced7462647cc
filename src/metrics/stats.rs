//! The dashboard's plots: a bounded in-process ring of per-minute samples (requests by status
//! class, bytes served by `/media/`, stream URLs signed and fallbacks, jobs done and failed, RUM
//! p75s), so the overview needs no Prometheus. Counters are read as totals each minute and
//! stored as deltas; the minute in progress is reported live on top.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use prometheus::core::Collector;
use serde::Serialize;
use utoipa::ToSchema;

use super::Metrics;

/// Samples kept: 24 hours of minutes (about 150 KiB).
pub const CAPACITY: usize = 24 * 60;
/// Seconds per sample.
pub const STEP_SECS: i64 = 60;

/// One minute of traffic.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Sample {
    /// Start of the minute, Unix seconds.
    pub t: i64,
    /// Seconds the sample covers (60, less for the minute in progress).
    pub secs: f64,
    /// Requests answered by status class: 1xx, 2xx, 3xx, 4xx, 5xx.
    pub requests: [u64; 5],
    /// Response bytes sent by `/media/` routes (declared lengths).
    pub media_bytes: u64,
    /// Stream URLs signed (including fallbacks).
    pub stream_urls: u64,
    /// Stream URLs signed by the fallback signer.
    pub fallbacks: u64,
    /// Job attempts that succeeded.
    pub jobs_done: u64,
    /// Job attempts that failed (will retry, or out of attempts).
    pub jobs_failed: u64,
    /// p75 Largest Contentful Paint of beacons this minute, seconds.
    pub lcp_p75: Option<f64>,
    /// p75 Interaction to Next Paint, seconds.
    pub inp_p75: Option<f64>,
    /// p75 Cumulative Layout Shift.
    pub cls_p75: Option<f64>,
}

/// Running totals, as read at one instant.
#[derive(Debug, Clone, Default)]
struct Totals {
    requests: [u64; 5],
    media_bytes: u64,
    stream_urls: u64,
    fallbacks: u64,
    jobs_done: u64,
    jobs_failed: u64,
    /// LCP, INP, CLS: (upper bound, cumulative count) summed over routes and devices.
    rum: [Vec<(f64, u64)>; 3],
}

struct Ring {
    samples: VecDeque<Sample>,
    last: Totals,
    last_t: i64,
}

/// The ring buffer and the counters only it needs.
pub struct Stats {
    started: Instant,
    requests: [AtomicU64; 5],
    media_bytes: AtomicU64,
    ring: Mutex<Ring>,
}

impl Stats {
    /// An empty ring starting at `now` (Unix seconds).
    pub fn new(now: i64) -> Stats {
        Stats {
            started: Instant::now(),
            requests: Default::default(),
            media_bytes: AtomicU64::new(0),
            ring: Mutex::new(Ring {
                samples: VecDeque::with_capacity(CAPACITY),
                last: Totals::default(),
                last_t: now,
            }),
        }
    }

    /// Seconds since this process built its state.
    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Counts one response: its status and, for `/media/` routes, its length.
    pub fn observe(&self, route: &str, status: u16, len: Option<u64>) {
        let class = usize::from((status / 100).clamp(1, 5)) - 1;
        self.requests[class].fetch_add(1, Ordering::Relaxed);
        if route.starts_with("/media/") {
            self.media_bytes
                .fetch_add(len.unwrap_or(0), Ordering::Relaxed);
        }
    }

    fn totals(&self, m: &Metrics) -> Totals {
        let mut t = Totals {
            requests: std::array::from_fn(|i| self.requests[i].load(Ordering::Relaxed)),
            media_bytes: self.media_bytes.load(Ordering::Relaxed),
            ..Totals::default()
        };
        for (labels, v) in counters(&m.signing) {
            let outcome = label(&labels, "outcome");
            if outcome == "ok" || outcome == "fallback" {
                t.stream_urls += v;
            }
            if outcome == "fallback" {
                t.fallbacks += v;
            }
        }
        for (labels, v) in counters(&m.jobs) {
            match label(&labels, "outcome").as_str() {
                "succeeded" => t.jobs_done += v,
                "failed" | "dead" => t.jobs_failed += v,
                _ => {}
            }
        }
        rum_buckets(m, |_, slot, buckets| add(&mut t.rum[slot], buckets));
        t
    }

    /// Closes the minute: stores the deltas since the last tick. Called once a minute.
    pub fn tick(&self, m: &Metrics, now: i64) {
        let totals = self.totals(m);
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let sample = delta(&ring.last, &totals, ring.last_t, now);
        if ring.samples.len() == CAPACITY {
            ring.samples.pop_front();
        }
        ring.samples.push_back(sample);
        ring.last = totals;
        ring.last_t = now;
    }

    /// The samples of the last `window_secs`, oldest first, then the minute in progress.
    pub fn window(&self, m: &Metrics, now: i64, window_secs: i64) -> Vec<Sample> {
        let totals = self.totals(m);
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let from = now - window_secs;
        let mut out: Vec<Sample> = ring
            .samples
            .iter()
            .filter(|s| s.t >= from)
            .cloned()
            .collect();
        out.push(delta(&ring.last, &totals, ring.last_t, now));
        out
    }
}

/// One route's web vitals since start.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RouteVitals {
    /// The normalised `route` label.
    pub route: String,
    /// LCP reports received.
    pub samples: u64,
    /// p75 Largest Contentful Paint, seconds.
    pub lcp_p75: Option<f64>,
    /// p75 Interaction to Next Paint, seconds.
    pub inp_p75: Option<f64>,
    /// p75 Cumulative Layout Shift.
    pub cls_p75: Option<f64>,
}

/// p75 of LCP, INP and CLS per route (all devices) since start, busiest route first.
pub fn per_route(m: &Metrics) -> Vec<RouteVitals> {
    let mut routes: std::collections::BTreeMap<String, [Vec<(f64, u64)>; 3]> = Default::default();
    rum_buckets(m, |route, slot, buckets| {
        add(
            &mut routes.entry(route.to_owned()).or_default()[slot],
            buckets,
        );
    });
    let mut out: Vec<RouteVitals> = routes
        .into_iter()
        .map(|(route, [lcp, inp, cls])| RouteVitals {
            route,
            samples: lcp.last().map_or(0, |b| b.1),
            lcp_p75: p75(&[], &lcp),
            inp_p75: p75(&[], &inp),
            cls_p75: p75(&[], &cls),
        })
        .collect();
    out.sort_by_key(|r| std::cmp::Reverse(r.samples));
    out
}

/// Calls `f(route, slot, buckets)` for each LCP (0), INP (1) and CLS (2) histogram.
fn rum_buckets(m: &Metrics, mut f: impl FnMut(&str, usize, &[prometheus::proto::Bucket])) {
    for mf in m.rum_web_vitals.collect() {
        for metric in mf.get_metric() {
            let label = |n: &str| {
                metric
                    .get_label()
                    .iter()
                    .find(|l| l.name() == n)
                    .map(|l| l.value().to_owned())
                    .unwrap_or_default()
            };
            let slot = match label("name").as_str() {
                "LCP" => 0,
                "INP" => 1,
                "CLS" => 2,
                _ => continue,
            };
            f(&label("route"), slot, metric.get_histogram().get_bucket());
        }
    }
}

/// Adds cumulative bucket counts into `acc` (bounds taken from the first histogram).
fn add(acc: &mut Vec<(f64, u64)>, buckets: &[prometheus::proto::Bucket]) {
    if acc.is_empty() {
        acc.extend(buckets.iter().map(|b| (b.upper_bound(), 0)));
    }
    for (a, b) in acc.iter_mut().zip(buckets) {
        a.1 += b.cumulative_count();
    }
}

fn counters(v: &prometheus::IntCounterVec) -> Vec<(Vec<(String, String)>, u64)> {
    v.collect()
        .iter()
        .flat_map(|mf| mf.get_metric())
        .map(|m| {
            let labels = m
                .get_label()
                .iter()
                .map(|l| (l.name().to_owned(), l.value().to_owned()))
                .collect();
            (labels, m.get_counter().get_value() as u64)
        })
        .collect()
}

fn label(labels: &[(String, String)], name: &str) -> String {
    labels
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn delta(a: &Totals, b: &Totals, from: i64, to: i64) -> Sample {
    let d = |x: u64, y: u64| y.saturating_sub(x);
    Sample {
        t: from,
        secs: (to - from).max(0) as f64,
        requests: std::array::from_fn(|i| d(a.requests[i], b.requests[i])),
        media_bytes: d(a.media_bytes, b.media_bytes),
        stream_urls: d(a.stream_urls, b.stream_urls),
        fallbacks: d(a.fallbacks, b.fallbacks),
        jobs_done: d(a.jobs_done, b.jobs_done),
        jobs_failed: d(a.jobs_failed, b.jobs_failed),
        lcp_p75: p75(&a.rum[0], &b.rum[0]),
        inp_p75: p75(&a.rum[1], &b.rum[1]),
        cls_p75: p75(&a.rum[2], &b.rum[2]),
    }
}

/// The 75th percentile of the observations between two cumulative bucket readings,
/// interpolated inside its bucket as Prometheus' `histogram_quantile` does.
fn p75(before: &[(f64, u64)], after: &[(f64, u64)]) -> Option<f64> {
    let count = |i: usize| {
        let prev = before.get(i).map_or(0, |b| b.1);
        after[i].1.saturating_sub(prev)
    };
    let total = count(after.len().checked_sub(1)?);
    if total == 0 {
        return None;
    }
    let rank = 0.75 * total as f64;
    let (mut lower, mut below) = (0.0, 0);
    for (i, &(upper, _)) in after.iter().enumerate() {
        let c = count(i);
        if c as f64 >= rank {
            if upper.is_infinite() {
                return Some(lower);
            }
            let inside = (c - below) as f64;
            return Some(lower + (upper - lower) * (rank - below as f64) / inside.max(1.0));
        }
        (lower, below) = (upper, c);
    }
    Some(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p75_interpolates_inside_the_bucket() {
        // 4 observations: 3 in (0, 1], 1 in (1, 2]; p75 rank 3 is the top of the first bucket.
        let after = [(1.0, 3), (2.0, 4), (f64::INFINITY, 4)];
        assert_eq!(p75(&[], &after), Some(1.0));
        // Only the delta counts: the same reading twice has no observations.
        assert_eq!(p75(&after, &after), None);
        let later = [(1.0, 3), (2.0, 8), (f64::INFINITY, 8)];
        // 4 new observations, all in (1, 2]: rank 3 of 4 lies 3/4 of the way up.
        assert_eq!(p75(&after, &later), Some(1.75));
    }

    #[test]
    fn the_ring_is_bounded_and_reports_deltas() {
        let m = Metrics::new("1", "x").unwrap();
        let s = Stats::new(0);
        for i in 0..(CAPACITY as i64 + 10) {
            s.observe("/media/{path}", 206, Some(100));
            s.observe("/api/v1/tracks", 404, None);
            s.tick(&m, (i + 1) * STEP_SECS);
        }
        let now = (CAPACITY as i64 + 10) * STEP_SECS;
        let all = s.window(&m, now, 10 * 24 * 3600);
        assert_eq!(
            all.len(),
            CAPACITY + 1,
            "bounded, plus the minute in progress"
        );
        assert!(
            all[..CAPACITY]
                .iter()
                .all(|x| x.media_bytes == 100 && x.requests[1] == 1 && x.requests[3] == 1)
        );
        assert_eq!(all[CAPACITY].requests, [0; 5]);
        assert_eq!(s.window(&m, now, 3600).len(), 61);
    }

    #[test]
    fn vitals_are_summarised_per_route() {
        let m = Metrics::new("1", "x").unwrap();
        for v in [0.5, 0.5, 0.5, 3.0] {
            m.rum_web_vitals
                .with_label_values(&["LCP", "library", "desktop"])
                .observe(v);
        }
        m.rum_web_vitals
            .with_label_values(&["CLS", "embed", "mobile"])
            .observe(0.01);
        let r = per_route(&m);
        assert_eq!(r[0].route, "library");
        assert_eq!(r[0].samples, 4);
        assert!(r[0].lcp_p75.unwrap() <= 1.0, "{:?}", r[0]);
        assert_eq!(r[0].cls_p75, None);
        assert_eq!(r[1].route, "embed");
        assert!(r[1].cls_p75.is_some() && r[1].lcp_p75.is_none());
    }
}
