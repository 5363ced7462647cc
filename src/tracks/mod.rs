//! The track service: the one owner of a track's life, shared by HTTP, the CLI and the job
//! workers. Upload, edit, delete, take down and restore, stream URLs and the packaging and purge
//! jobs all go through here; every change invalidates the caches itself, so no caller can
//! forget. SQL stays in `library`; who may see a track is [`access::may_view`].

use std::net::IpAddr;
use std::sync::Arc;

use crate::cache::Caches;
use crate::config::Config;
use crate::db::Db;
use crate::jobs::{Job, JobCtx, JobFailure, JobKind, Queue, Runner};
use crate::library::ingest::Ingest;
use crate::library::lifecycle::{self, Actor, AuditEntry};
use crate::library::store::{self, Page, Query, TrackChange};
use crate::library::{LibraryError, OwnerKey, Track, TrackAccess, TrackId};
use crate::metrics::Metrics;
use crate::signing::{CdnService, SignedUrl, SigningError};
use crate::storage::BlobStore;

pub mod access;
mod edit;
pub mod package;
pub mod purge;
mod stream;

pub use access::{Purpose, Verdict, Viewer, lists_everything, may_view};
pub use stream::StreamFormat;

/// Why a track operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    /// The library (database, store, input) failed.
    #[error(transparent)]
    Library(#[from] LibraryError),
    /// The viewer may not see the track (how to say so is the surface's choice).
    #[error("not visible: {0:?}")]
    Hidden(Verdict),
    /// Taken down: nobody plays it.
    #[error("the track is taken down")]
    TakenDown,
    /// The state does not allow the change (already taken down, not taken down).
    #[error("{message}")]
    Conflict {
        /// Machine-readable code.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// `format=hls` before the track is packaged.
    #[error("this track has no HLS renditions yet")]
    HlsNotReady,
    /// No signing provider could sign.
    #[error(transparent)]
    Signing(#[from] SigningError),
}

impl From<crate::db::DbError> for TrackError {
    fn from(e: crate::db::DbError) -> Self {
        TrackError::Library(LibraryError::Task(e))
    }
}

/// The shared service handle (cheap to clone).
#[derive(Clone)]
pub struct TrackService {
    inner: Arc<Inner>,
}

/// What the service and its jobs use.
pub struct Inner {
    config: Arc<Config>,
    db: Db,
    store: BlobStore,
    caches: Arc<Caches>,
    cdn: Arc<CdnService>,
    jobs: Queue,
}

impl Inner {
    /// After every committed track write: nothing cached before it may serve or sign after it.
    fn tracks_changed(&self) {
        self.caches.tracks_changed();
    }
}

impl TrackService {
    /// Built once at start.
    pub fn new(
        config: Arc<Config>,
        db: Db,
        store: BlobStore,
        caches: Arc<Caches>,
        cdn: Arc<CdnService>,
        jobs: Queue,
    ) -> TrackService {
        TrackService {
            inner: Arc::new(Inner {
                config,
                db,
                store,
                caches,
                cdn,
                jobs,
            }),
        }
    }

    /// For a one-shot command beside (or without) a server: nothing cached (the server's
    /// caches notice CLI changes within `cache.metadata_ttl_secs`), no local workers to wake.
    pub fn for_command(config: Arc<Config>, db: Db, store: BlobStore) -> TrackService {
        let metrics = Metrics::new(crate::version::VERSION, crate::version::COMMIT)
            .expect("a fresh registry takes every metric once");
        let no_cache = crate::config::CacheConfig {
            metadata_ttl_secs: 0,
            max_entries: 0,
        };
        let caches = Arc::new(Caches::new(&no_cache, 0, &metrics));
        let cdn = Arc::new(CdnService::new(&config, &metrics));
        let jobs = Queue::new(&config);
        TrackService::new(config, db, store, caches, cdn, jobs)
    }

    /// The job runner for the worker pool.
    pub fn runner(&self) -> Arc<dyn Runner> {
        Arc::new(self.clone())
    }

    /// The ingestion pipeline (hash, probe, store, insert, queue packaging).
    pub fn ingest(&self) -> Ingest {
        let s = &self.inner;
        Ingest {
            db: s.db.clone(),
            store: s.store.clone(),
            ffprobe: s.config.hls.ffprobe.clone(),
            spool_dir: crate::datadir::spool_dir(&s.config.data_dir),
            package_attempts: s.config.hls.enabled.then_some(s.config.jobs.max_attempts),
            queue: Some(s.jobs.clone()),
        }
    }

    /// The tracks owning an object, through the metadata cache. "No owner" is never cached:
    /// a track imported by another process must not stay invisible.
    pub async fn owners(&self, owner: OwnerKey) -> Result<Arc<[TrackAccess]>, TrackError> {
        let caches = &self.inner.caches;
        if let Some(found) = caches.metadata.get(&owner) {
            return Ok(found);
        }
        let generation = caches.metadata.generation();
        let key = owner.clone();
        let found: Arc<[TrackAccess]> = self
            .inner
            .db
            .call(move |c| store::owners(c, &key))
            .await?
            .into();
        if !found.is_empty() {
            caches.metadata.insert(owner, found.clone(), generation);
        }
        Ok(found)
    }

    /// A track `viewer` may read, by id.
    pub async fn get(&self, viewer: Viewer, id: TrackId) -> Result<Track, TrackError> {
        let t = self
            .inner
            .db
            .call(move |c| store::get(c, &id))
            .await?
            .ok_or(LibraryError::NotFound)?;
        match may_view(viewer, t.visibility, t.status, Purpose::Read) {
            Verdict::Allowed => Ok(t),
            other => Err(TrackError::Hidden(other)),
        }
    }

    /// A page of the tracks `viewer` may list.
    pub async fn list(&self, viewer: Viewer, mut q: Query) -> Result<Page, TrackError> {
        // The rule for anonymous listings, pushed into SQL so pages stay full.
        q.public_only = !access::lists_everything(viewer);
        let mut page = self.inner.db.call(move |c| store::list(c, &q)).await?;
        page.tracks.retain(|t| {
            may_view(viewer, t.visibility, t.status, Purpose::List) == Verdict::Allowed
        });
        Ok(page)
    }

    /// Edits a track's metadata after checking the edit.
    pub async fn edit(&self, id: TrackId, change: TrackChange) -> Result<Track, TrackError> {
        let change = edit::check(change)?;
        let now = crate::clock::now();
        let t = self
            .inner
            .db
            .call(move |c| store::update(c, &id, &change, now))
            .await;
        self.inner.tracks_changed();
        Ok(t?)
    }

    /// Deletes a track: its row first, then the blobs no other track uses and its HLS tree
    /// (a crash in between leaves orphans, never a row pointing at a missing blob).
    pub async fn delete(&self, id: &TrackId) -> Result<(), TrackError> {
        let tid = id.clone();
        let keys = self.inner.db.call(move |c| store::delete(c, &tid)).await;
        self.inner.tracks_changed();
        for key in keys? {
            if let Err(e) = self.inner.store.delete(&key).await {
                tracing::warn!(error = %e, key = %key, "could not delete blob of a deleted track");
            }
        }
        package::remove_tree(&self.inner, &package::hls_prefix(id)).await;
        Ok(())
    }

    /// Hides a track everywhere at once and queues a CDN purge; returns the purge job's id.
    pub async fn take_down(
        &self,
        id: &TrackId,
        reason: &str,
        who: Actor,
    ) -> Result<(Track, Option<i64>), TrackError> {
        let reason = reason.trim().to_owned();
        if !(1..=1000).contains(&reason.chars().count()) {
            return Err(LibraryError::Invalid {
                field: "reason",
                message: "must be 1-1000 characters".into(),
            }
            .into());
        }
        let now = crate::clock::now();
        let cfg = self.inner.config.clone();
        let tid = id.clone();
        let outcome = self
            .inner
            .db
            .call(move |c| {
                lifecycle::take_down(c, &tid, &reason, &who, now, |t| {
                    purge::new_job(&cfg, t).map(|j| (j, cfg.jobs.max_attempts))
                })
            })
            .await;
        // At once: no cached fact may serve or sign the track after this point.
        self.inner.tracks_changed();
        let (track, job) = outcome?.ok_or_else(|| TrackError::Conflict {
            code: "already_taken_down",
            message: "the track is already taken down".into(),
        })?;
        if job.is_some() {
            self.inner.jobs.notify();
        }
        Ok((track, job))
    }

    /// Brings a taken-down track back (with a packaging job when it has no HLS yet).
    pub async fn restore(
        &self,
        id: &TrackId,
        reason: Option<String>,
        who: Actor,
    ) -> Result<Track, TrackError> {
        let reason = reason
            .map(|r| r.trim().chars().take(1000).collect::<String>())
            .filter(|r| !r.is_empty());
        let now = crate::clock::now();
        let cfg = &self.inner.config;
        let package = cfg.hls.enabled.then_some(cfg.jobs.max_attempts);
        let tid = id.clone();
        let outcome = self
            .inner
            .db
            .call(move |c| lifecycle::restore(c, &tid, reason.as_deref(), &who, now, package))
            .await;
        self.inner.tracks_changed();
        let track = outcome?.ok_or_else(|| TrackError::Conflict {
            code: "not_taken_down",
            message: "the track is not taken down".into(),
        })?;
        self.inner.jobs.notify();
        Ok(track)
    }

    /// The takedown and restore history of a track, oldest first.
    pub async fn audit_trail(&self, id: TrackId) -> Result<Vec<AuditEntry>, TrackError> {
        Ok(self
            .inner
            .db
            .call(move |c| lifecycle::audit_trail(c, &id))
            .await?)
    }

    /// The object a proxied stream sends (same rule and choice as [`Self::stream_url`]).
    pub async fn stream_object(
        &self,
        viewer: Viewer,
        id: &TrackId,
        format: StreamFormat,
    ) -> Result<crate::storage::BlobKey, TrackError> {
        stream::stream_object(self, viewer, id, format).await
    }

    /// A signed URL to play a track, reused from the cache while it is young.
    pub async fn stream_url(
        &self,
        viewer: Viewer,
        id: &TrackId,
        format: Option<StreamFormat>,
        ip: IpAddr,
    ) -> Result<SignedUrl, TrackError> {
        stream::stream_url(self, viewer, id, format, ip).await
    }

    /// A signed URL of the track's waveform peaks (`None` before analysis).
    pub async fn peaks_url(
        &self,
        viewer: Viewer,
        id: &TrackId,
        ip: IpAddr,
    ) -> Result<Option<String>, TrackError> {
        stream::peaks_url(self, viewer, id, ip).await
    }
}

impl Runner for TrackService {
    fn run<'a>(
        &'a self,
        job: &'a Job,
        ctx: &'a JobCtx,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), JobFailure>> + Send + 'a>> {
        Box::pin(async move {
            match job.kind {
                JobKind::PackageHls => package::run(&self.inner, job, ctx).await,
                JobKind::PurgeCdn => purge::run(&self.inner, job, ctx).await,
            }
        })
    }

    fn outage_over(&self) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send + '_>> {
        Box::pin(async move { self.inner.store.probe_writable().await.is_ok() })
    }

    fn failed<'a>(
        &'a self,
        job: &'a Job,
        error: &'a str,
        dead: bool,
    ) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            match (job.kind, dead) {
                (JobKind::PackageHls, false) => {
                    package::failed_attempt(&self.inner, job, error).await;
                }
                (JobKind::PackageHls, true) => package::gave_up(&self.inner, job, error).await,
                (JobKind::PurgeCdn, _) => {}
            }
        })
    }
}
