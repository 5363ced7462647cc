//! The worker pool. Each worker claims a due job with a lease, renews the lease while the job
//! runs (recording its progress), and records the outcome: success, a retry after an
//! exponential backoff with jitter, or `dead`. Shutdown cancels running jobs, which hand their
//! job back to the queue without spending an attempt. An outage (the blob store down, a full
//! disk) spends none either: the job waits a backoff that grows with the outage, capped at
//! [`OUTAGE_MAX_BACKOFF`], so a long outage never kills jobs; housekeeping asks the runner
//! whether the outage is over and then makes the waiting jobs due at once.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::store::{self, Claim};
use super::{Job, JobError, JobKind};
use crate::clock;
use crate::config::{Config, HlsConfig, JobsConfig};
use crate::db::Db;
use crate::metrics::Metrics;

/// How often an idle worker looks for due jobs (other processes, such as `veza import`, add
/// jobs without a way to wake this one).
const POLL: Duration = Duration::from_secs(1);
/// How often the queue gauges are refreshed.
const GAUGE_EVERY: Duration = Duration::from_secs(5);
/// How often a missing ffmpeg is looked for again.
const REDETECT_EVERY: Duration = Duration::from_secs(60);
/// The longest a job waits between tries while the store is down or the disk full: once it is
/// back, the backlog drains within this.
pub const OUTAGE_MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How often the store is probed while jobs wait out an outage.
const OUTAGE_PROBE_EVERY: Duration = Duration::from_secs(2);
/// How long shutdown waits for workers to hand their jobs back.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// Whether HLS packaging can run, and why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct HlsAvailability {
    /// `hls.enabled`.
    pub enabled: bool,
    /// Enabled and ffmpeg answers.
    pub available: bool,
    /// ffmpeg's version line when found.
    pub ffmpeg: Option<String>,
    /// Why packaging is off, in words for the dashboard.
    pub reason: Option<String>,
}

impl HlsAvailability {
    fn unknown(enabled: bool) -> HlsAvailability {
        HlsAvailability {
            enabled,
            available: false,
            ffmpeg: None,
            reason: Some(if enabled {
                "ffmpeg has not been looked for yet".into()
            } else {
                "hls.enabled is false".into()
            }),
        }
    }
}

/// Handle to the queue: wakes workers and knows whether HLS can run. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    inner: Arc<Inner>,
}

struct Inner {
    notify: Notify,
    hls: RwLock<HlsAvailability>,
    owner: String,
    cfg: JobsConfig,
    /// Outage failures since the last success, whatever the job: the outage's age in tries.
    outage_streak: AtomicU32,
    /// Jobs postponed by the outage, made due at once when the store works again.
    outage_waiting: Mutex<Vec<i64>>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("owner", &self.inner.owner)
            .finish_non_exhaustive()
    }
}

impl Queue {
    /// A queue handle for this process (its lease owner name is unique per start).
    pub fn new(cfg: &Config) -> Queue {
        let mut nonce = [0u8; 4];
        getrandom::fill(&mut nonce).expect("the OS random number generator is available");
        let owner = format!(
            "pid{}-{:08x}",
            std::process::id(),
            u32::from_be_bytes(nonce)
        );
        Queue {
            inner: Arc::new(Inner {
                notify: Notify::new(),
                hls: RwLock::new(HlsAvailability::unknown(cfg.hls.enabled)),
                owner,
                cfg: cfg.jobs.clone(),
                outage_streak: AtomicU32::new(0),
                outage_waiting: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Wakes an idle worker (after enqueueing).
    pub fn notify(&self) {
        self.inner.notify.notify_waiters();
    }

    /// This process's lease owner name.
    pub fn owner(&self) -> &str {
        &self.inner.owner
    }

    /// Whether HLS packaging can run now.
    pub fn hls(&self) -> HlsAvailability {
        self.inner
            .hls
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Looks for ffmpeg again and records the answer; wakes workers when it appeared.
    pub async fn refresh_hls(&self, cfg: &HlsConfig) -> HlsAvailability {
        let now = if !cfg.enabled {
            HlsAvailability::unknown(false)
        } else {
            match crate::hls::detect_ffmpeg(&cfg.ffmpeg).await {
                Ok(version) => HlsAvailability {
                    enabled: true,
                    available: true,
                    ffmpeg: Some(version),
                    reason: None,
                },
                Err(e) => HlsAvailability {
                    enabled: true,
                    available: false,
                    ffmpeg: None,
                    reason: Some(e.to_string()),
                },
            }
        };
        let was = std::mem::replace(
            &mut *self.inner.hls.write().unwrap_or_else(|p| p.into_inner()),
            now.clone(),
        );
        if now.available && !was.available {
            self.notify();
        }
        now
    }

    fn set_hls_unavailable(&self, reason: String) {
        let mut g = self.inner.hls.write().unwrap_or_else(|p| p.into_inner());
        g.available = false;
        g.reason = Some(reason);
    }

    /// Kinds this process can run now.
    fn runnable(&self) -> Vec<JobKind> {
        let mut kinds = vec![JobKind::PurgeCdn];
        if self.hls().available {
            kinds.push(JobKind::PackageHls);
        }
        kinds
    }

    /// The delay before retry number `attempt` (1-based: after the first failure): the base
    /// doubled per attempt, capped, then "equal jitter" (half fixed, half random) so jobs that
    /// failed together do not retry together.
    pub fn backoff(&self, attempt: u32) -> Duration {
        backoff(&self.inner.cfg, attempt, random_unit())
    }
}

/// The wait after an outage failure: the usual backoff by the outage's age rather than the
/// job's attempts, capped lower, so jobs keep probing a long outage and drain soon after it.
fn outage_backoff(cfg: &JobsConfig, streak: u32, unit: f64) -> Duration {
    let cfg = JobsConfig {
        retry_max_secs: cfg.retry_max_secs.min(OUTAGE_MAX_BACKOFF.as_secs()),
        ..cfg.clone()
    };
    backoff(&cfg, streak, unit)
}

fn backoff(cfg: &JobsConfig, attempt: u32, unit: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let full = cfg
        .retry_base_secs
        .saturating_mul(1u64 << exp)
        .min(cfg.retry_max_secs) as f64;
    Duration::from_secs_f64(full / 2.0 + full / 2.0 * unit)
}

fn random_unit() -> f64 {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).expect("the OS random number generator is available");
    f64::from(u32::from_be_bytes(b)) / f64::from(u32::MAX)
}

/// How a job attempt ended, when it did not succeed.
#[derive(Debug)]
pub enum JobFailure {
    /// It failed; retried with backoff until `max_attempts`.
    Failed(String),
    /// Shutdown interrupted it: back to the queue, attempt not counted.
    Interrupted,
    /// A tool it needs is missing (ffmpeg): back to the queue until the tool appears.
    Unavailable(String),
    /// The blob store is down or a disk is full: retried after a backoff capped at
    /// [`OUTAGE_MAX_BACKOFF`], the attempt not counted, for as long as the outage lasts.
    Outage(String),
}

/// What a running job can see: its cancellation and a place to report progress.
#[derive(Debug, Clone)]
pub struct JobCtx {
    /// Cancelled on shutdown or when the lease is lost.
    pub cancel: CancellationToken,
    progress: Arc<Mutex<Option<f64>>>,
}

impl JobCtx {
    /// Records progress (0..1); written to the job row with the next lease renewal.
    pub fn report(&self, fraction: f64) {
        *self.progress.lock().unwrap_or_else(|p| p.into_inner()) = Some(fraction.clamp(0.0, 1.0));
    }

    fn take(&self) -> Option<f64> {
        *self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The running worker pool.
/// What each kind of job does. The worker pool claims, leases and records; the track service
/// implements the work, so this module never imports the domain that runs on it.
pub trait Runner: Send + Sync + 'static {
    /// Runs one attempt of `job`.
    fn run<'a>(&'a self, job: &'a Job, ctx: &'a JobCtx) -> BoxFuture<'a, Result<(), JobFailure>>;
    /// Whether what an outage waits for (the blob store taking writes) works again.
    fn outage_over(&self) -> BoxFuture<'_, bool>;
    /// An attempt failed: `dead` when the job is out of attempts (or its worker vanished on
    /// the last one), else it will be retried.
    fn failed<'a>(&'a self, job: &'a Job, error: &'a str, dead: bool) -> BoxFuture<'a, ()>;
}

/// What the worker pool needs: no HTTP state, no limiters.
#[derive(Clone)]
pub struct WorkerDeps {
    /// Validated configuration (`jobs`, `hls`).
    pub config: Arc<Config>,
    /// SQLite.
    pub db: Db,
    /// The queue handle (wake-ups, lease owner, HLS availability).
    pub jobs: Queue,
    /// Job counters and gauges.
    pub metrics: Metrics,
    /// The work itself.
    pub runner: Arc<dyn Runner>,
}

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

pub struct Workers {
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Cancels running jobs (they return to the queue) and waits for the workers, bounded.
    pub async fn stop(self) {
        self.cancel.cancel();
        let all = futures_util::future::join_all(self.tasks);
        if tokio::time::timeout(STOP_WAIT, all).await.is_err() {
            tracing::warn!("job workers did not stop in time; their leases will lapse");
        }
    }
}

/// Starts `jobs.workers` workers and the housekeeping task (gauges, ffmpeg re-detection).
pub fn start(state: WorkerDeps) -> Workers {
    for kind in JobKind::ALL {
        for outcome in crate::metrics::JOB_OUTCOMES {
            state
                .metrics
                .jobs
                .with_label_values(&[kind.as_str(), outcome]);
        }
    }
    let cancel = CancellationToken::new();
    let mut tasks = Vec::new();
    for n in 0..state.config.jobs.workers {
        tasks.push(tokio::spawn(worker(state.clone(), n, cancel.clone())));
    }
    tasks.push(tokio::spawn(housekeeping(state, cancel.clone())));
    Workers { cancel, tasks }
}

async fn housekeeping(s: WorkerDeps, cancel: CancellationToken) {
    let mut last_detect = Instant::now();
    loop {
        refresh_gauges(&s.db, &s.jobs, &s.metrics).await;
        end_outage(&s).await;
        // Sooner while jobs wait out an outage: its end is noticed within this.
        let tick = if lock(&s.jobs.inner.outage_waiting).is_empty() {
            GAUGE_EVERY
        } else {
            OUTAGE_PROBE_EVERY
        };
        let hls = s.jobs.hls();
        if hls.enabled && !hls.available && last_detect.elapsed() >= REDETECT_EVERY {
            last_detect = Instant::now();
            let now = s.jobs.refresh_hls(&s.config.hls).await;
            if now.available {
                tracing::info!(ffmpeg = ?now.ffmpeg, "ffmpeg found; packaging the HLS backlog");
            }
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(tick) => {}
        }
    }
}

/// While jobs wait out an outage: once the store works again, they are due now rather than at
/// the end of their backoff, so the backlog drains within a housekeeping tick of the return.
async fn end_outage(s: &WorkerDeps) {
    let waiting = !lock(&s.jobs.inner.outage_waiting).is_empty();
    if !waiting || !s.runner.outage_over().await {
        return;
    }
    let ids = std::mem::take(&mut *lock(&s.jobs.inner.outage_waiting));
    s.jobs.inner.outage_streak.store(0, Ordering::Relaxed);
    let n = ids.len();
    match s
        .db
        .call(move |c| store::due_now(c, &ids, clock::now()))
        .await
    {
        Ok(due) => {
            tracing::info!(
                due,
                "the store works again; jobs that waited for it are due now"
            );
            s.jobs.notify();
        }
        Err(e) => {
            tracing::warn!(error = %e, jobs = n, "could not make waiting jobs due; they run at their retry time");
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Updates `veza_jobs_queued`, `veza_jobs_dead` and `veza_hls_available`.
pub async fn refresh_gauges(db: &Db, jobs: &Queue, metrics: &Metrics) {
    metrics.hls_available.set(i64::from(jobs.hls().available));
    match db.call(|c| store::backlog(c)).await {
        Ok((queued, dead)) => {
            metrics.jobs_queued.set(queued);
            metrics.jobs_dead.set(dead);
        }
        Err(e) => tracing::warn!(error = %e, "could not count jobs"),
    }
}

async fn worker(s: WorkerDeps, n: usize, cancel: CancellationToken) {
    tracing::debug!(worker = n, "job worker started");
    loop {
        if cancel.is_cancelled() {
            return;
        }
        let kinds = s.jobs.runnable();
        let owner = s.jobs.owner().to_owned();
        let lease = s.config.jobs.lease_secs;
        let claimed =
            s.db.call(move |c| store::claim(c, &owner, &kinds, clock::now(), lease))
                .await;
        match claimed {
            Ok(Some(Claim::Run(job))) => run(&s, job, &cancel).await,
            Ok(Some(Claim::Buried(job))) => {
                tracing::warn!(job = job.id, kind = %job.kind, "job's worker vanished on its last attempt; job is dead");
                s.metrics
                    .jobs
                    .with_label_values(&[job.kind.as_str(), "dead"])
                    .inc();
                gave_up(&s, &job, job.last_error.as_deref().unwrap_or("")).await;
            }
            Ok(None) => {
                let woken = s.jobs.inner.notify.notified();
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = woken => {}
                    () = tokio::time::sleep(POLL) => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not claim a job");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(POLL) => {}
                }
            }
        }
    }
}

async fn run(s: &WorkerDeps, job: Job, shutdown: &CancellationToken) {
    let span = tracing::info_span!("job", id = job.id, kind = %job.kind, attempt = job.attempts);
    let ctx = JobCtx {
        cancel: shutdown.child_token(),
        progress: Arc::new(Mutex::new(None)),
    };
    tracing::info!(parent: &span, track = ?job.track_id, "job started");
    let beat = tokio::spawn(heartbeat(s.clone(), job.id, ctx.clone()));
    let started = Instant::now();
    let result = tracing::Instrument::instrument(dispatch(s, &job, &ctx), span.clone()).await;
    beat.abort();
    let secs = started.elapsed().as_secs_f64();
    let kind = job.kind.as_str();
    let owner = s.jobs.owner().to_owned();
    let now = clock::now();
    let id = job.id;
    let outcome = match result {
        Ok(()) => {
            s.jobs.inner.outage_streak.store(0, Ordering::Relaxed);
            let o = owner.clone();
            record(s, move |c| store::succeed(c, id, &o, now)).await;
            tracing::info!(parent: &span, seconds = secs, "job succeeded");
            "succeeded"
        }
        Err(JobFailure::Interrupted | JobFailure::Unavailable(_) | JobFailure::Outage(_))
            if ctx.cancel.is_cancelled() && !shutdown.is_cancelled() =>
        {
            // Lease lost to another worker: that worker owns the outcome now.
            tracing::warn!(parent: &span, "job lost its lease; leaving it to its new worker");
            return;
        }
        Err(JobFailure::Interrupted) => {
            let o = owner.clone();
            record(s, move |c| store::release(c, id, &o, now)).await;
            tracing::info!(parent: &span, "job interrupted by shutdown; back in the queue");
            "requeued"
        }
        Err(JobFailure::Unavailable(reason)) => {
            let o = owner.clone();
            record(s, move |c| store::release(c, id, &o, now)).await;
            tracing::warn!(parent: &span, %reason, "job needs a tool that is missing; back in the queue");
            if job.kind == JobKind::PackageHls {
                s.jobs.set_hls_unavailable(reason);
            }
            "requeued"
        }
        Err(JobFailure::Outage(error)) => {
            let streak = s.jobs.inner.outage_streak.fetch_add(1, Ordering::Relaxed) + 1;
            let wait = outage_backoff(&s.config.jobs, streak, random_unit());
            let retry_at = now + wait.as_secs().max(1) as i64;
            let (o, e) = (owner.clone(), error.clone());
            record(s, move |c| store::postpone(c, id, &o, now, &e, retry_at)).await;
            lock(&s.jobs.inner.outage_waiting).push(id);
            tracing::warn!(parent: &span, error = %error, retry_in = retry_at - now, "job hit an outage (store down or disk full); will retry without spending an attempt");
            failed_attempt(s, &job, &error).await;
            "failed"
        }
        Err(JobFailure::Failed(error)) => {
            let retry_at = (job.attempts < job.max_attempts)
                .then(|| now + s.jobs.backoff(job.attempts).as_secs().max(1) as i64);
            let (o, e) = (owner.clone(), error.clone());
            record(s, move |c| store::fail(c, id, &o, now, &e, retry_at)).await;
            match retry_at {
                Some(at) => {
                    tracing::warn!(parent: &span, error = %error, retry_in = at - now, "job failed; will retry");
                    failed_attempt(s, &job, &error).await;
                    "failed"
                }
                None => {
                    tracing::error!(parent: &span, error = %error, "job failed on its last attempt; dead");
                    gave_up(s, &job, &error).await;
                    "dead"
                }
            }
        }
    };
    s.metrics.jobs.with_label_values(&[kind, outcome]).inc();
    s.metrics
        .job_duration
        .with_label_values(&[kind])
        .observe(secs);
    refresh_gauges(&s.db, &s.jobs, &s.metrics).await;
}

async fn record(
    s: &WorkerDeps,
    f: impl FnOnce(&mut rusqlite::Connection) -> Result<bool, JobError> + Send + 'static,
) {
    match s.db.call(f).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!("job lease was lost before its outcome was recorded"),
        Err(e) => {
            tracing::error!(error = %e, "could not record a job outcome; it runs again when its lease lapses")
        }
    }
}

async fn heartbeat(s: WorkerDeps, id: i64, ctx: JobCtx) {
    let every = Duration::from_secs((s.config.jobs.lease_secs / 3).max(1));
    loop {
        tokio::time::sleep(every).await;
        let owner = s.jobs.owner().to_owned();
        let lease = s.config.jobs.lease_secs;
        let progress = ctx.take();
        match s
            .db
            .call(move |c| store::heartbeat(c, id, &owner, clock::now(), lease, progress))
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                ctx.cancel.cancel();
                return;
            }
            Err(e) => tracing::warn!(error = %e, "could not renew a job lease"),
        }
    }
}

async fn dispatch(s: &WorkerDeps, job: &Job, ctx: &JobCtx) -> Result<(), JobFailure> {
    s.runner.run(job, ctx).await
}

async fn failed_attempt(s: &WorkerDeps, job: &Job, error: &str) {
    s.runner.failed(job, error, false).await;
}

async fn gave_up(s: &WorkerDeps, job: &Job, error: &str) {
    s.runner.failed(job, error, true).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outage_backoff_grows_with_the_outage_and_is_capped_lower() {
        let cfg = JobsConfig {
            workers: 1,
            max_attempts: 5,
            lease_secs: 60,
            retry_base_secs: 30,
            retry_max_secs: 3600,
        };
        assert_eq!(outage_backoff(&cfg, 1, 1.0), Duration::from_secs(30));
        assert_eq!(outage_backoff(&cfg, 3, 1.0), Duration::from_secs(120));
        assert_eq!(outage_backoff(&cfg, 50, 1.0), OUTAGE_MAX_BACKOFF);
        let short = JobsConfig {
            retry_max_secs: 60,
            ..cfg
        };
        assert_eq!(outage_backoff(&short, 50, 1.0), Duration::from_secs(60));
    }

    #[test]
    fn backoff_doubles_with_equal_jitter_and_a_cap() {
        let cfg = JobsConfig {
            workers: 1,
            max_attempts: 5,
            lease_secs: 60,
            retry_base_secs: 30,
            retry_max_secs: 100,
        };
        assert_eq!(backoff(&cfg, 1, 0.0), Duration::from_secs(15));
        assert_eq!(backoff(&cfg, 1, 1.0), Duration::from_secs(30));
        assert_eq!(backoff(&cfg, 2, 1.0), Duration::from_secs(60));
        assert_eq!(backoff(&cfg, 3, 1.0), Duration::from_secs(100));
        assert_eq!(backoff(&cfg, 3, 0.0), Duration::from_secs(50));
        assert_eq!(backoff(&cfg, 64, 1.0), Duration::from_secs(100));
        let u = random_unit();
        assert!((0.0..=1.0).contains(&u));
    }
}
