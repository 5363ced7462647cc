//! Prometheus metrics: one `Registry` per app (never the global one), so two apps in one
//! process (tests) never collide. Every label is a bounded set; never a raw path or an id.

pub mod stats;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// HTTP status classes used as a label.
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Web-vitals histogram buckets: the union of Google's good / needs-improvement thresholds
/// (LCP 2.5/4 s, INP 0.2/0.5 s, CLS 0.1/0.25, FCP 1.8/3 s, TTFB 0.8/1.8 s) and a spread around
/// them, so one histogram serves seconds and unitless CLS alike.
pub const RUM_BUCKETS: [f64; 20] = [
    0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 0.8, 1.0, 1.8, 2.5, 3.0, 4.0, 6.0, 10.0,
    20.0, 30.0, 60.0,
];

/// Errors while building the registry (a programming error, surfaced at start).
#[derive(Debug, thiserror::Error)]
#[error("metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// All of the app's metrics and the registry that owns them.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Unprefixed: the standard `process_*` names stock dashboards expect.
    process: Registry,
    /// `veza_http_connections`: connections open now.
    pub http_connections: IntGauge,
    /// `veza_http_connections_refused_total`: refused over `server.max_connections`.
    pub http_connections_refused: IntCounter,
    /// `veza_http_connections_timed_out_total{reason}`: `header_read` or `idle`.
    pub http_connections_timed_out: IntCounterVec,
    /// `veza_http_requests_total{route,method,status_class}`
    pub http_requests: IntCounterVec,
    /// `veza_http_request_duration_seconds{route,method}`
    pub http_duration: HistogramVec,
    /// `veza_rum_web_vitals{name,route,device}`
    pub rum_web_vitals: HistogramVec,
    /// `veza_rum_beacons_received_total`
    pub rum_beacons_received: IntCounter,
    /// `veza_rum_beacons_rejected_total{reason}`
    pub rum_beacons_rejected: IntCounterVec,
    /// `veza_signing_total{provider,outcome}`; outcome is `ok`, `error` or `fallback`.
    pub signing: IntCounterVec,
    /// `veza_storage_operations_total{backend,operation,outcome}`; operation is one of
    /// `storage::OPERATIONS`, outcome `ok` or `error` (the backend failed).
    pub storage_operations: IntCounterVec,
    /// `veza_jobs_total{kind,outcome}`; outcome is `succeeded`, `failed` (will retry), `dead`
    /// or `requeued` (interrupted by shutdown or a missing tool; the attempt is not counted).
    pub jobs: IntCounterVec,
    /// `veza_job_duration_seconds{kind}`: one attempt, whatever its outcome.
    pub job_duration: HistogramVec,
    /// `veza_jobs_queued`: jobs waiting to run (queued, or failed and waiting to retry).
    pub jobs_queued: IntGauge,
    /// `veza_jobs_dead`: jobs out of attempts, waiting for a manual retry.
    pub jobs_dead: IntGauge,
    /// `veza_storage_operation_duration_seconds{backend,operation}`
    pub storage_duration: HistogramVec,
    /// `veza_cache_hits_total{subsystem}`; subsystem is one of [`CacheSubsystem`].
    pub cache_hits: IntCounterVec,
    /// `veza_cache_misses_total{subsystem}`
    pub cache_misses: IntCounterVec,
    /// `veza_blob_store_bytes{area}`, from the periodic store scan.
    pub blob_bytes: IntGaugeVec,
    /// `veza_blob_store_objects{area}`, from the periodic store scan.
    pub blob_objects: IntGaugeVec,
    /// `veza_blob_store_scan_timestamp_seconds`: when the last scan completed.
    pub blob_scan_timestamp: Gauge,
    /// `veza_hls_available`: 1 when HLS packaging can run.
    pub hls_available: IntGauge,
    /// `veza_tracks{status}`
    pub tracks: IntGaugeVec,
    /// `veza_db_size_bytes`: the database file and its WAL.
    pub db_size_bytes: IntGauge,
}

/// The index in [`STATUS_CLASSES`] of an HTTP status (anything odd counts as 5xx).
fn status_class(status: u16) -> usize {
    match status / 100 {
        1..=5 => usize::from(status / 100) - 1,
        _ => 4,
    }
}

/// One route's request counters (per status class) and duration histogram, per method,
/// resolved once by [`Metrics::route_series`].
pub struct RouteSeries {
    by_method: Vec<(&'static str, [IntCounter; 5], Histogram)>,
}

impl RouteSeries {
    /// Records one answered request; a method the series was not built for is not counted.
    pub fn observe(&self, method: &str, status: u16, seconds: f64) {
        if let Some((_, requests, duration)) = self.by_method.iter().find(|(m, ..)| *m == method) {
            requests[status_class(status)].inc();
            duration.observe(seconds);
        }
    }
}

/// What a cache serves: the `subsystem` label of `veza_cache_{hits,misses}_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheSubsystem {
    /// Signed stream URLs, reused while most of their lifetime is left.
    StreamUrl,
    /// Track access facts (status, visibility, keys) for `/media/` and the stream API.
    Metadata,
    /// Size and ETag of immutable (content-addressed) blobs, for HEAD and revalidations.
    BlobHead,
    /// API tokens by hash: their user, role and expiry, so a bearer call needs no query.
    ApiTokens,
    /// The bytes of immutable `/media/` objects and playlists (`media.cache_mb`).
    MediaBytes,
}

impl CacheSubsystem {
    /// Every subsystem, for pre-zeroed series.
    pub const ALL: [CacheSubsystem; 5] = [
        CacheSubsystem::StreamUrl,
        CacheSubsystem::Metadata,
        CacheSubsystem::BlobHead,
        CacheSubsystem::ApiTokens,
        CacheSubsystem::MediaBytes,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheSubsystem::StreamUrl => "stream_url",
            CacheSubsystem::Metadata => "metadata",
            CacheSubsystem::BlobHead => "blob_head",
            CacheSubsystem::ApiTokens => "api_tokens",
            CacheSubsystem::MediaBytes => "media_bytes",
        }
    }
}

/// Areas of the blob store: the `area` label of `veza_blob_store_*`.
pub const BLOB_AREAS: [&str; 4] = ["originals", "covers", "hls", "other"];

/// Track statuses: the `status` label of `veza_tracks`.
pub const TRACK_STATUSES: [&str; 4] = ["processing", "ready", "failed", "taken_down"];

/// Outcomes of `veza_jobs_total`.
pub const JOB_OUTCOMES: [&str; 4] = ["succeeded", "failed", "dead", "requeued"];

impl Metrics {
    /// Builds a fresh registry with every metric registered.
    pub fn new(version: &str, commit: &str) -> Result<Metrics, MetricsError> {
        let registry = Registry::new_custom(Some("veza".into()), None)?;

        let build = IntGaugeVec::new(
            Opts::new(
                "build_info",
                "Build of this veza: version and git commit; always 1",
            ),
            &["version", "commit"],
        )?;
        build.with_label_values(&[version, commit]).set(1);
        registry.register(Box::new(build))?;

        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests answered, by route template, method and status class",
            ),
            &["route", "method", "status_class"],
        )?;
        registry.register(Box::new(http_requests.clone()))?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time to produce the response head, by route template and method",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["route", "method"],
        )?;
        registry.register(Box::new(http_duration.clone()))?;

        let rum_web_vitals = HistogramVec::new(
            HistogramOpts::new(
                "rum_web_vitals",
                "Real-user web vitals: seconds for LCP/INP/FCP/TTFB, unitless for CLS",
            )
            .buckets(RUM_BUCKETS.to_vec()),
            &["name", "route", "device"],
        )?;
        registry.register(Box::new(rum_web_vitals.clone()))?;
        let rum_beacons_received = IntCounter::new(
            "rum_beacons_received_total",
            "Web-vitals beacon requests received (before validation)",
        )?;
        registry.register(Box::new(rum_beacons_received.clone()))?;
        let rum_beacons_rejected = IntCounterVec::new(
            Opts::new(
                "rum_beacons_rejected_total",
                "Web-vitals beacons or items rejected, by reason",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(rum_beacons_rejected.clone()))?;

        let signing = IntCounterVec::new(
            Opts::new(
                "signing_total",
                "URL signing attempts by provider and outcome (ok, error, fallback = signed after an earlier provider failed)",
            ),
            &["provider", "outcome"],
        )?;
        registry.register(Box::new(signing.clone()))?;

        let storage_operations = IntCounterVec::new(
            Opts::new(
                "storage_operations_total",
                "Blob store operations by backend (local, s3), operation (put, get, head, delete, list, copy) and outcome (ok; error = the backend failed, not a missing key or a refused upload)",
            ),
            &["backend", "operation", "outcome"],
        )?;
        registry.register(Box::new(storage_operations.clone()))?;

        let jobs = IntCounterVec::new(
            Opts::new(
                "jobs_total",
                "Job attempts finished, by kind and outcome (succeeded; failed = will retry; dead = out of attempts; requeued = interrupted, attempt not counted)",
            ),
            &["kind", "outcome"],
        )?;
        registry.register(Box::new(jobs.clone()))?;
        let job_duration = HistogramVec::new(
            HistogramOpts::new(
                "job_duration_seconds",
                "Wall time of one job attempt, by kind",
            )
            .buckets(vec![
                0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
            ]),
            &["kind"],
        )?;
        registry.register(Box::new(job_duration.clone()))?;
        let jobs_queued = IntGauge::new(
            "jobs_queued",
            "Jobs waiting to run: queued, or failed and waiting for their retry",
        )?;
        registry.register(Box::new(jobs_queued.clone()))?;
        let jobs_dead = IntGauge::new(
            "jobs_dead",
            "Jobs out of attempts, waiting for a manual retry",
        )?;
        registry.register(Box::new(jobs_dead.clone()))?;

        let storage_duration = HistogramVec::new(
            HistogramOpts::new(
                "storage_operation_duration_seconds",
                "Time a blob store call took (for get: until the body starts), by backend and operation",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ]),
            &["backend", "operation"],
        )?;
        registry.register(Box::new(storage_duration.clone()))?;

        let cache_hits = IntCounterVec::new(
            Opts::new(
                "cache_hits_total",
                "Lookups answered from an in-process cache, by subsystem (stream_url, metadata, blob_head)",
            ),
            &["subsystem"],
        )?;
        registry.register(Box::new(cache_hits.clone()))?;
        let cache_misses = IntCounterVec::new(
            Opts::new(
                "cache_misses_total",
                "Lookups an in-process cache could not answer, by subsystem",
            ),
            &["subsystem"],
        )?;
        registry.register(Box::new(cache_misses.clone()))?;
        for sub in CacheSubsystem::ALL {
            cache_hits.with_label_values(&[sub.as_str()]);
            cache_misses.with_label_values(&[sub.as_str()]);
        }

        let blob_bytes = IntGaugeVec::new(
            Opts::new(
                "blob_store_bytes",
                "Bytes in the blob store by area (originals, covers, hls, other), from the last periodic scan",
            ),
            &["area"],
        )?;
        registry.register(Box::new(blob_bytes.clone()))?;
        let blob_objects = IntGaugeVec::new(
            Opts::new(
                "blob_store_objects",
                "Objects in the blob store by area, from the last periodic scan",
            ),
            &["area"],
        )?;
        registry.register(Box::new(blob_objects.clone()))?;
        let blob_scan_timestamp = Gauge::new(
            "blob_store_scan_timestamp_seconds",
            "Unix time the last blob store scan completed (0 before the first)",
        )?;
        registry.register(Box::new(blob_scan_timestamp.clone()))?;
        let hls_available = IntGauge::new(
            "hls_available",
            "1 when HLS packaging can run (enabled and ffmpeg found), else 0",
        )?;
        registry.register(Box::new(hls_available.clone()))?;
        let tracks = IntGaugeVec::new(
            Opts::new(
                "tracks",
                "Tracks by status (processing, ready, failed, taken_down)",
            ),
            &["status"],
        )?;
        registry.register(Box::new(tracks.clone()))?;
        for status in TRACK_STATUSES {
            tracks.with_label_values(&[status]);
        }
        let db_size_bytes = IntGauge::new(
            "db_size_bytes",
            "Size of the SQLite database file plus its write-ahead log",
        )?;
        registry.register(Box::new(db_size_bytes.clone()))?;

        let http_connections = IntGauge::new(
            "http_connections",
            "HTTP connections open now (at most server.max_connections)",
        )?;
        registry.register(Box::new(http_connections.clone()))?;
        let http_connections_refused = IntCounter::new(
            "http_connections_refused_total",
            "Connections answered 503 and closed because server.max_connections were open",
        )?;
        registry.register(Box::new(http_connections_refused.clone()))?;
        let http_connections_timed_out = IntCounterVec::new(
            Opts::new(
                "http_connections_timed_out_total",
                "Connections closed by a server timeout, by reason (header_read, idle)",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(http_connections_timed_out.clone()))?;

        let process = Registry::new();
        #[cfg(target_os = "linux")]
        process.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;

        Ok(Metrics {
            registry,
            process,
            http_connections,
            http_connections_refused,
            http_connections_timed_out,
            http_requests,
            http_duration,
            rum_web_vitals,
            rum_beacons_received,
            rum_beacons_rejected,
            signing,
            storage_operations,
            jobs,
            job_duration,
            jobs_queued,
            jobs_dead,
            storage_duration,
            cache_hits,
            cache_misses,
            blob_bytes,
            blob_objects,
            blob_scan_timestamp,
            hls_available,
            tracks,
            db_size_bytes,
        })
    }

    /// The series of one route for `methods`, looked up once, for a hot path that must not
    /// look labels up per request.
    pub fn route_series(&self, route: &str, methods: &[&'static str]) -> RouteSeries {
        RouteSeries {
            by_method: methods
                .iter()
                .map(|&m| {
                    let requests = STATUS_CLASSES
                        .map(|class| self.http_requests.with_label_values(&[route, m, class]));
                    (
                        m,
                        requests,
                        self.http_duration.with_label_values(&[route, m]),
                    )
                })
                .collect(),
        }
    }

    /// Records one answered request.
    pub fn observe_http(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let class = STATUS_CLASSES[status_class(status)];
        self.http_requests
            .with_label_values(&[route, method, class])
            .inc();
        self.http_duration
            .with_label_values(&[route, method])
            .observe(seconds);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Result<String, MetricsError> {
        let mut out = Vec::with_capacity(8 * 1024);
        let mut families = self.registry.gather();
        families.extend(self.process.gather());
        TextEncoder::new().encode(&families, &mut out)?;
        Ok(String::from_utf8(out).expect("the text encoder writes UTF-8"))
    }

    /// A connection was accepted.
    pub fn connection_opened(&self) {
        self.http_connections.inc();
    }

    /// A connection ended.
    pub fn connection_closed(&self) {
        self.http_connections.dec();
    }

    /// A connection was refused over the cap.
    pub fn connection_refused(&self) {
        self.http_connections_refused.inc();
    }

    /// A connection was closed by a timeout (`header_read` or `idle`).
    pub fn connection_timed_out(&self, reason: &'static str) {
        self.http_connections_timed_out
            .with_label_values(&[reason])
            .inc();
    }

    /// The registry, for collectors added by subsystems.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_registries_in_one_process_do_not_collide() {
        let a = Metrics::new("1", "x").unwrap();
        let b = Metrics::new("1", "x").unwrap();
        a.observe_http("/healthz", "GET", 200, 0.001);
        b.observe_http("/healthz", "GET", 200, 0.001);
        assert!(a.render().unwrap().contains("veza_build_info"));
    }

    #[test]
    fn status_classes_are_bounded() {
        let m = Metrics::new("1", "x").unwrap();
        m.observe_http("unmatched", "GET", 999, 0.0);
        m.observe_http("unmatched", "GET", 0, 0.0);
        let text = m.render().unwrap();
        assert!(!text.contains("9xx") && !text.contains("0xx"));
    }
}
