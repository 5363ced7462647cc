//! The durable job queue: background work (HLS packaging, CDN purges) recorded in SQLite so
//! that no job is lost to a crash. Types here; SQL in `store.rs`; the worker pool (claim with a
//! lease, heartbeat, retry with backoff, graceful shutdown) in `worker.rs`; what each kind of
//! job does is the track service's (`tracks::package`, `tracks::purge`), behind [`Runner`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub mod store;
pub mod worker;

pub use worker::{HlsAvailability, JobCtx, JobFailure, Queue, Runner, WorkerDeps};

/// Why a job-queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// SQLite failed.
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    /// The database task failed.
    #[error(transparent)]
    Task(#[from] crate::db::DbError),
    /// No such job.
    #[error("job not found")]
    NotFound,
    /// The job is in a state that cannot be retried.
    #[error("job {id} is {state} and cannot be retried (only queued, failed or dead jobs can)")]
    NotRetryable {
        /// The job.
        id: i64,
        /// Its state.
        state: JobState,
    },
    /// Another job of the same kind for the same track is already pending.
    #[error("another {kind} job for this track is already pending")]
    AlreadyPending {
        /// The kind.
        kind: JobKind,
    },
}

/// What a job does. A closed set: it is a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Package a track's original as HLS.
    PackageHls,
    /// Ask the CDN to drop a track's cached objects (takedown).
    PurgeCdn,
}

impl JobKind {
    /// Every kind, for metric label sets.
    pub const ALL: [JobKind; 2] = [JobKind::PackageHls, JobKind::PurgeCdn];

    /// Stored spelling (also the metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::PackageHls => "package_hls",
            JobKind::PurgeCdn => "purge_cdn",
        }
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobKind {
    type Err = String;
    fn from_str(s: &str) -> Result<JobKind, String> {
        JobKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("job kind {s:?} is not package_hls or purge_cdn"))
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// Claimed by a worker holding a lease.
    Running,
    /// Done.
    Succeeded,
    /// The last attempt failed; runs again at `run_at`.
    Failed,
    /// Out of attempts; only a manual retry runs it again.
    Dead,
}

impl JobState {
    /// Every state.
    pub const ALL: [JobState; 5] = [
        JobState::Queued,
        JobState::Running,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Dead,
    ];

    /// Stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Dead => "dead",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<JobState, String> {
        JobState::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                format!("job state {s:?} is not queued, running, succeeded, failed or dead")
            })
    }
}

/// A job as the API and CLI show it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Job {
    /// Sequential id (never reused).
    pub id: i64,
    /// What it does.
    pub kind: JobKind,
    /// Where it is.
    pub state: JobState,
    /// The track it works on, if any.
    pub track_id: Option<String>,
    /// Attempts started so far.
    pub attempts: u32,
    /// Attempts allowed before `dead`.
    pub max_attempts: u32,
    /// 0..1 while running, when the job reports it.
    pub progress: Option<f64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Unix seconds: when it may run next.
    pub run_at: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds: start of the latest attempt.
    pub started_at: Option<i64>,
    /// Unix seconds: when it succeeded or died.
    pub finished_at: Option<i64>,
    /// Unix seconds.
    pub updated_at: i64,
    /// Kind-specific parameters.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

/// A job to add.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// What it does.
    pub kind: JobKind,
    /// The track it works on.
    pub track_id: Option<String>,
    /// Kind-specific parameters.
    pub payload: serde_json::Value,
}

impl NewJob {
    /// Package a track as HLS.
    pub fn package_hls(track_id: &str) -> NewJob {
        NewJob {
            kind: JobKind::PackageHls,
            track_id: Some(track_id.to_owned()),
            payload: serde_json::json!({}),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_states_round_trip() {
        for k in JobKind::ALL {
            assert_eq!(k.as_str().parse::<JobKind>().unwrap(), k);
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                serde_json::json!(k.as_str())
            );
        }
        for s in JobState::ALL {
            assert_eq!(s.as_str().parse::<JobState>().unwrap(), s);
        }
        assert!("sleep".parse::<JobKind>().is_err());
        assert!("done".parse::<JobState>().is_err());
    }
}
