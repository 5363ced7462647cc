//! `App::build` wires configuration into a running server: data dir, database, blob store,
//! metrics, listener. `App::run_until` serves until a shutdown signal, then drains.

pub mod gauges;

/// Set by `veza serve` for the dashboard's Settings page.
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::accounts::{self, AccountsError, LoginGuard, store as accounts_store};
use crate::config::Config;
use crate::db::{AppliedMigration, Db, DbError};
use crate::http::state::AppState;
use crate::metrics::{Metrics, MetricsError};
use crate::ratelimit::KeyedLimiter;
use crate::rum::RumGuard;
use crate::signing::CdnService;
use crate::storage::{BlobStore, StoreError};
use crate::{http, version};

/// How long in-flight requests get to finish after a shutdown signal.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the app could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data dir could not be created.
    #[error("data_dir {path}: {source}")]
    DataDir {
        /// The folder.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Database open or migration failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Blob store could not be prepared.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// Metrics registry could not be built.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The app-password key could not be read or created.
    #[error(transparent)]
    Accounts(#[from] AccountsError),
    /// The listen address could not be bound.
    #[error("server.listen {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

impl StartError {
    /// Process exit code: 78 (EX_CONFIG) for a `[storage]` the store cannot use, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::Store(StoreError::Config(_)) => 78,
            _ => 1,
        }
    }
}

/// A built app, bound to its port, ready to serve.
pub struct App {
    state: AppState,
    listener: TcpListener,
    addr: SocketAddr,
    migrations: Vec<AppliedMigration>,
}

impl App {
    /// Prepares everything the server needs and binds the listener.
    pub async fn build(config: Config) -> Result<App, StartError> {
        let tightened =
            crate::datadir::prepare(&config.data_dir).map_err(|source| StartError::DataDir {
                path: config.data_dir.display().to_string(),
                source,
            })?;
        if !tightened.is_empty() {
            let names: Vec<_> = tightened.iter().map(|p| p.display().to_string()).collect();
            tracing::warn!(
                paths = %names.join(", "),
                "tightened file modes in the data dir (folder 0750, database 0600, spool and work 0700)"
            );
        }
        let data_dir = config.data_dir.clone();
        let (db, migrations) = tokio::task::spawn_blocking(move || Db::open_and_migrate(&data_dir))
            .await
            .map_err(|e| DbError::Join(e.to_string()))??;
        let metrics = Metrics::new(version::VERSION, version::COMMIT)?;
        let store = BlobStore::open(&config.storage)
            .await?
            .with_metrics(&metrics);
        // What a crash left half-written; younger temp objects may be another process's
        // upload in progress (`veza import` beside `serve`) and stay.
        let swept = store.sweep_temp().await?;
        if swept > 0 {
            tracing::info!(
                swept,
                backend = store.backend(),
                "removed stale temp objects"
            );
        }
        // Uploads spool here before they are probed; only this process writes it, so
        // whatever is left at start was cut off by a crash.
        let spool = crate::datadir::spool_dir(&config.data_dir);
        match crate::library::ingest::sweep_spool(&spool) {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "removed partial uploads left by a crash"),
            Err(e) => tracing::warn!(error = %e, "could not sweep the upload spool"),
        }
        crate::datadir::sweep_work(&config.data_dir).map_err(|source| StartError::DataDir {
            path: crate::datadir::work_dir(&config.data_dir)
                .display()
                .to_string(),
            source,
        })?;
        let jobs = crate::jobs::Queue::new(&config);
        // `ffmpeg -version` takes about 60 ms, more than the rest of start-up: it is looked for
        // beside serving, not before the bind. Workers leave packaging jobs queued until the
        // answer comes (it wakes them), and readiness never depended on it.
        let detect = (jobs.clone(), config.hls.clone());
        tokio::spawn(async move {
            let hls = detect.0.refresh_hls(&detect.1).await;
            if hls.enabled && !hls.available {
                tracing::warn!(
                    reason = hls.reason.as_deref().unwrap_or(""),
                    "HLS packaging is unavailable; originals stream, tracks wait in processing until ffmpeg is found"
                );
            }
        });
        let listener = bind(config.server.listen).map_err(|source| StartError::Bind {
            addr: config.server.listen,
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.server.listen,
            source,
        })?;
        let rum = Arc::new(RumGuard::new(
            config.rum.max_routes,
            config.rum.rate_limit_per_min,
        ));
        let login = Arc::new(LoginGuard::new(config.auth.login_attempts_per_min));
        let cdn = Arc::new(CdnService::new(&config, &metrics));
        // Built now so a broken provider is in the log before the first player asks; signing
        // still falls back along the chain.
        let primary = cdn.chain().first().copied();
        for (provider, e) in cdn.warm() {
            if Some(provider) == primary {
                tracing::warn!(provider = provider.as_str(), error = %e, "signing provider cannot sign; URLs come from the fallbacks");
            } else {
                // The default chain lists s3 even where no bucket is configured.
                tracing::debug!(provider = provider.as_str(), error = %e, "fallback signing provider unavailable");
            }
        }
        let stream_limit = Arc::new(KeyedLimiter::per_minute(config.stream.rate_limit_per_min));
        let caches = Arc::new(crate::cache::Caches::new(
            &config.cache,
            config.media.cache_bytes,
            &metrics,
        ));
        let hashes = Arc::new(accounts::HashPool::new(
            config.auth.hash_concurrency,
            config.auth.hash_queue,
        ));
        let sealer = accounts::app_password::Sealer::load_or_create(&config.data_dir)?;
        let config = Arc::new(config);
        let tracks = crate::tracks::TrackService::new(
            config.clone(),
            db.clone(),
            store.clone(),
            caches.clone(),
            cdn.clone(),
            jobs.clone(),
        );
        let state = AppState {
            config,
            tracks,
            db,
            store,
            metrics,
            rum,
            login,
            hashes,
            sealer,
            jobs,
            cdn,
            stream_limit,
            caches,
            ready: Arc::default(),
            settings: Arc::default(),
            stats: Arc::new(crate::metrics::stats::Stats::new(crate::clock::now())),
        };
        Ok(App {
            state,
            listener,
            addr,
            migrations,
        })
    }

    /// The bound address (the real port when the config asked for port 0).
    /// The masked TOML the dashboard's Settings page shows; the caller has the figment layers
    /// the configuration came from, `App` only the result.
    pub fn set_effective_config(&self, masked: String) {
        let _ = self.state.settings.set(masked);
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Migrations known to the database at start, with the ones applied by this start.
    pub fn migrations(&self) -> &[AppliedMigration] {
        &self.migrations
    }

    /// Shared state (tests reach the database and metrics through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// When no admin exists yet, a one-time setup link (`{public_url}/setup?token=…`, valid for
    /// an hour, stored hashed) that lets the first visitor create one; else `None`.
    pub async fn issue_setup_link(&self) -> Result<Option<String>, AccountsError> {
        setup_link(&self.state).await
    }

    /// Issues the setup link beside serving, so its database write never holds up the first
    /// request, and logs it (or the failure).
    pub fn announce_setup_link(&self) {
        let state = self.state.clone();
        tokio::spawn(async move {
            match setup_link(&state).await {
                Ok(Some(link)) => tracing::warn!(
                    "no admin yet: open {link} within an hour to create one (single use), or run `veza admin create`"
                ),
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "could not issue the setup link"),
            }
        });
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish (bounded by
    /// [`DRAIN_TIMEOUT`]).
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let (drain_tx, drain_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            tracing::info!("shutdown requested; finishing in-flight requests");
            let _ = drain_tx.send(());
        };
        let sweep_state = self.state.clone();
        let sweeper = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                sweep_state.rum.sweep();
                sweep_state.login.sweep();
                sweep_state.stream_limit.sweep();
                let idle = sweep_state.config.auth.session_idle_secs;
                let now = crate::clock::now();
                if let Err(e) = sweep_state
                    .db
                    .call(move |c| accounts_store::purge_sessions(c, now, idle))
                    .await
                {
                    tracing::warn!(error = %e, "could not purge expired sessions");
                }
            }
        });
        let gauges = gauges::start(gauges::Deps::of(&self.state));
        let workers = crate::jobs::worker::start(crate::jobs::WorkerDeps {
            config: self.state.config.clone(),
            db: self.state.db.clone(),
            jobs: self.state.jobs.clone(),
            metrics: self.state.metrics.clone(),
            runner: self.state.tracks.runner(),
        });
        let limits = http::server::Limits::from_config(&self.state.config.server);
        let metrics = self.state.metrics.clone();
        let trusted = Arc::new(self.state.config.server.trusted_proxies.clone());
        let server = http::server::serve(
            self.listener,
            http::app(self.state.clone(), crate::subsonic::routes(&self.state)),
            Some(http::media::FastMedia::new(self.state.clone())),
            limits,
            trusted,
            metrics,
            signal,
        );
        let deadline = async move {
            if drain_rx.await.is_ok() {
                tokio::time::sleep(DRAIN_TIMEOUT).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            () = server => tracing::info!("stopped"),
            () = deadline => tracing::warn!("drain timeout reached; closing remaining connections"),
        }
        sweeper.abort();
        gauges.abort();
        // After the server: an upload finishing during the drain may still enqueue a job.
        workers.stop().await;
    }
}

/// The listening socket, with `TCP_NODELAY` set: Linux hands it down to every accepted
/// connection. Without it a small response written as head then body waits for the client's
/// delayed ACK (~40 ms) under Nagle's algorithm: segment pulls ran at 2 % of nginx's rate.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// A single-use setup link while no admin exists (`None` once one does).
async fn setup_link(state: &AppState) -> Result<Option<String>, AccountsError> {
    let token = accounts::random_secret();
    let hash = accounts::secret_hash(&token);
    let now = crate::clock::now();
    let issued = state
        .db
        .call(move |c| {
            if accounts_store::has_admin(c)? {
                return Ok(false);
            }
            accounts_store::create_setup_token(c, &hash, now, now + accounts::SETUP_TOKEN_SECS)?;
            Ok::<_, AccountsError>(true)
        })
        .await?;
    if !issued {
        return Ok(None);
    }
    let mut url = state
        .config
        .server
        .public_url
        .join("setup")
        .expect("a static path joins");
    url.query_pairs_mut().append_pair("token", &token);
    Ok(Some(url.to_string()))
}
