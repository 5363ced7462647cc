//! SQL for the job queue. Every state change is one statement or one transaction, and every
//! change a worker makes is conditioned on it still holding the lease, so a worker that lost
//! its lease (it stalled past expiry and another took the job) cannot overwrite the result.

use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior, params};

use super::{Job, JobError, JobKind, JobState, NewJob};

const COLS: &str = "id, kind, state, track_id, attempts, max_attempts, progress, last_error, \
    run_at, created_at, started_at, finished_at, updated_at, payload";

/// Longest `last_error` kept (an ffmpeg stderr tail fits).
pub const MAX_ERROR_CHARS: usize = 4000;

fn row(r: &Row<'_>) -> rusqlite::Result<Job> {
    let kind: String = r.get(1)?;
    let state: String = r.get(2)?;
    let payload: String = r.get(13)?;
    Ok(Job {
        id: r.get(0)?,
        kind: kind.parse().unwrap_or(JobKind::PackageHls),
        state: state.parse().unwrap_or(JobState::Dead),
        track_id: r.get(3)?,
        attempts: r.get(4)?,
        max_attempts: r.get(5)?,
        progress: r.get(6)?,
        last_error: r.get(7)?,
        run_at: r.get(8)?,
        created_at: r.get(9)?,
        started_at: r.get(10)?,
        finished_at: r.get(11)?,
        updated_at: r.get(12)?,
        payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::Null),
    })
}

/// Adds a job due now. Works inside a caller's transaction (pass the `Transaction`), so a
/// track and its packaging job are written together. `Ok(None)` when the same kind of job for
/// the same track is already pending (queued, running or waiting to retry).
pub fn enqueue(
    c: &Connection,
    job: &NewJob,
    max_attempts: u32,
    now: i64,
) -> Result<Option<i64>, JobError> {
    let n = c.execute(
        "INSERT OR IGNORE INTO jobs (kind, payload, track_id, state, attempts, max_attempts,
            run_at, created_at, updated_at)
         VALUES (?1, ?2, ?3, 'queued', 0, ?4, ?5, ?5, ?5)",
        params![
            job.kind.as_str(),
            job.payload.to_string(),
            job.track_id,
            max_attempts,
            now
        ],
    )?;
    Ok((n == 1).then(|| c.last_insert_rowid()))
}

/// What a claim found.
#[derive(Debug)]
pub enum Claim {
    /// A job to run, now `running` under this worker's lease.
    Run(Job),
    /// A job whose worker vanished on its last attempt: marked dead instead of run again.
    Buried(Job),
}

/// Claims the next due job of one of `kinds`: a queued one, a failed one whose retry time has
/// come, or a running one whose lease lapsed (its worker crashed). One immediate transaction,
/// so two workers never claim the same job.
pub fn claim(
    c: &mut Connection,
    owner: &str,
    kinds: &[JobKind],
    now: i64,
    lease_secs: u64,
) -> Result<Option<Claim>, JobError> {
    if kinds.is_empty() {
        return Ok(None);
    }
    let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let kind_list = kinds
        .iter()
        .map(|k| format!("'{}'", k.as_str()))
        .collect::<Vec<_>>()
        .join(",");
    let id: Option<i64> = tx
        .query_row(
            &format!(
                "SELECT id FROM jobs
                 WHERE kind IN ({kind_list})
                   AND ((state IN ('queued', 'failed') AND run_at <= ?1)
                        OR (state = 'running' AND lease_expires_at < ?1))
                 ORDER BY run_at, id LIMIT 1"
            ),
            [now],
            |r| r.get(0),
        )
        .optional()?;
    let Some(id) = id else {
        return Ok(None);
    };
    let (state, attempts, max): (String, u32, u32) = tx.query_row(
        "SELECT state, attempts, max_attempts FROM jobs WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    let claim = if state == "running" && attempts >= max {
        // The process died during the last allowed attempt (e.g. killed for memory): running
        // it again could kill the next process too.
        tx.execute(
            "UPDATE jobs SET state = 'dead', lease_owner = NULL, lease_expires_at = NULL,
                last_error = COALESCE(last_error || char(10), '') || 'the worker running the last attempt vanished (lease expired)',
                finished_at = ?2, updated_at = ?2
             WHERE id = ?1",
            params![id, now],
        )?;
        Claim::Buried(get_in(&tx, id)?.ok_or(JobError::NotFound)?)
    } else {
        tx.execute(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = ?2,
                lease_expires_at = ?3, progress = NULL, started_at = ?4, updated_at = ?4
             WHERE id = ?1",
            params![id, owner, now + lease_secs as i64, now],
        )?;
        Claim::Run(get_in(&tx, id)?.ok_or(JobError::NotFound)?)
    };
    tx.commit()?;
    Ok(Some(claim))
}

/// Extends the lease and records progress; `false` when this worker no longer holds it.
pub fn heartbeat(
    c: &Connection,
    id: i64,
    owner: &str,
    now: i64,
    lease_secs: u64,
    progress: Option<f64>,
) -> Result<bool, JobError> {
    let n = c.execute(
        "UPDATE jobs SET lease_expires_at = ?3, progress = COALESCE(?4, progress), updated_at = ?5
         WHERE id = ?1 AND lease_owner = ?2 AND state = 'running'",
        params![id, owner, now + lease_secs as i64, progress, now],
    )?;
    Ok(n == 1)
}

/// Marks a job done; `false` when the lease was lost meanwhile.
pub fn succeed(c: &Connection, id: i64, owner: &str, now: i64) -> Result<bool, JobError> {
    let n = c.execute(
        "UPDATE jobs SET state = 'succeeded', lease_owner = NULL, lease_expires_at = NULL,
            progress = 1.0, finished_at = ?3, updated_at = ?3
         WHERE id = ?1 AND lease_owner = ?2 AND state = 'running'",
        params![id, owner, now],
    )?;
    Ok(n == 1)
}

/// Records a failed attempt: `failed` until `retry_at`, or `dead` when `retry_at` is `None`.
/// `false` when the lease was lost meanwhile.
pub fn fail(
    c: &Connection,
    id: i64,
    owner: &str,
    now: i64,
    error: &str,
    retry_at: Option<i64>,
) -> Result<bool, JobError> {
    let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
    let n = match retry_at {
        Some(at) => c.execute(
            "UPDATE jobs SET state = 'failed', lease_owner = NULL, lease_expires_at = NULL,
                last_error = ?3, run_at = ?4, updated_at = ?5
             WHERE id = ?1 AND lease_owner = ?2 AND state = 'running'",
            params![id, owner, error, at, now],
        )?,
        None => c.execute(
            "UPDATE jobs SET state = 'dead', lease_owner = NULL, lease_expires_at = NULL,
                last_error = ?3, finished_at = ?4, updated_at = ?4
             WHERE id = ?1 AND lease_owner = ?2 AND state = 'running'",
            params![id, owner, error, now],
        )?,
    };
    Ok(n == 1)
}

/// Puts a running job back in the queue without counting the attempt (shutdown interrupted
/// it, or the tool it needs went away).
pub fn release(c: &Connection, id: i64, owner: &str, now: i64) -> Result<bool, JobError> {
    let n = c.execute(
        "UPDATE jobs SET state = 'queued', attempts = MAX(attempts - 1, 0), lease_owner = NULL,
            lease_expires_at = NULL, progress = NULL, run_at = ?3, updated_at = ?3
         WHERE id = ?1 AND lease_owner = ?2 AND state = 'running'",
        params![id, owner, now],
    )?;
    Ok(n == 1)
}

/// Records an attempt an outage stopped: `failed` until `retry_at` with its error, the attempt
/// not counted (an outage says nothing about the job). `false` when the lease was lost.
pub fn postpone(
    c: &Connection,
    id: i64,
    owner: &str,
    now: i64,
    error: &str,
    retry_at: i64,
) -> Result<bool, JobError> {
    let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
    let n = c.execute(
        "UPDATE jobs SET state = 'failed', attempts = MAX(attempts - 1, 0), lease_owner = NULL,
            lease_expires_at = NULL, progress = NULL, last_error = ?3, run_at = ?4, updated_at = ?5
         WHERE id = ?1 AND lease_owner = ?2 AND state = 'running'",
        params![id, owner, error, retry_at, now],
    )?;
    Ok(n == 1)
}

/// Makes the failed jobs of `ids` that wait for a later retry due at `now` (their attempts
/// untouched); returns how many.
pub fn due_now(c: &Connection, ids: &[i64], now: i64) -> Result<usize, JobError> {
    let mut st = c.prepare(
        "UPDATE jobs SET run_at = ?2, updated_at = ?2 WHERE id = ?1 AND state = 'failed' AND run_at > ?2",
    )?;
    let mut n = 0;
    for id in ids {
        n += st.execute(params![id, now])?;
    }
    Ok(n)
}

/// Makes a queued, failed or dead job due now with a fresh set of attempts.
pub fn retry(c: &Connection, id: i64, now: i64) -> Result<Job, JobError> {
    let job = get(c, id)?.ok_or(JobError::NotFound)?;
    if !matches!(
        job.state,
        JobState::Queued | JobState::Failed | JobState::Dead
    ) {
        return Err(JobError::NotRetryable {
            id,
            state: job.state,
        });
    }
    let res = c.execute(
        "UPDATE jobs SET state = 'queued', attempts = 0, run_at = ?2, finished_at = NULL,
            updated_at = ?2
         WHERE id = ?1 AND state IN ('queued', 'failed', 'dead')",
        params![id, now],
    );
    match res {
        Ok(_) => {}
        // A dead job whose track got a new pending job of the same kind meanwhile.
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == ErrorCode::ConstraintViolation => {
            return Err(JobError::AlreadyPending { kind: job.kind });
        }
        Err(e) => return Err(e.into()),
    }
    get(c, id)?.ok_or(JobError::NotFound)
}

/// One job.
pub fn get(c: &Connection, id: i64) -> Result<Option<Job>, JobError> {
    get_in(c, id)
}

fn get_in(c: &Connection, id: i64) -> Result<Option<Job>, JobError> {
    Ok(
        c.query_row(&format!("SELECT {COLS} FROM jobs WHERE id = ?1"), [id], row)
            .optional()?,
    )
}

/// Filters for [`list`].
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this state.
    pub state: Option<JobState>,
    /// Only this kind.
    pub kind: Option<JobKind>,
    /// Only jobs of this track.
    pub track_id: Option<String>,
    /// Only jobs with a smaller id (the cursor: the last id of the previous page).
    pub before: Option<i64>,
    /// Page size.
    pub limit: u32,
}

/// Jobs newest first.
pub fn list(c: &Connection, f: &Filter) -> Result<Vec<Job>, JobError> {
    let mut st = c.prepare_cached(&format!(
        "SELECT {COLS} FROM jobs
         WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR kind = ?2)
           AND (?3 IS NULL OR track_id = ?3) AND (?4 IS NULL OR id < ?4)
         ORDER BY id DESC LIMIT ?5"
    ))?;
    let rows = st.query_map(
        params![
            f.state.map(JobState::as_str),
            f.kind.map(JobKind::as_str),
            f.track_id,
            f.before,
            f.limit
        ],
        row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Jobs waiting to run (queued, or failed and waiting for their retry) and dead jobs.
pub fn backlog(c: &Connection) -> Result<(i64, i64), JobError> {
    Ok(c.query_row(
        "SELECT
            (SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'failed')),
            (SELECT COUNT(*) FROM jobs WHERE state = 'dead')",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

/// Tracks with a job of `kind` still to run (queued, running or failed-and-retrying).
pub fn pending_track_ids(
    c: &Connection,
    kind: JobKind,
) -> Result<std::collections::BTreeSet<String>, JobError> {
    let mut s = c.prepare(
        "SELECT DISTINCT track_id FROM jobs WHERE kind = ?1 AND track_id IS NOT NULL
           AND state IN ('queued', 'running', 'failed')",
    )?;
    let ids = s
        .query_map([kind.as_str()], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;

    fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = Db::open_and_migrate(dir.path()).unwrap();
        (dir, db)
    }

    fn package(track: &str) -> NewJob {
        NewJob {
            kind: JobKind::PackageHls,
            track_id: Some(track.into()),
            payload: serde_json::json!({}),
        }
    }

    const KINDS: [JobKind; 1] = [JobKind::PackageHls];

    #[test]
    fn one_pending_job_per_kind_and_track() {
        let (_d, db) = db();
        db.with(|c| {
            let a = enqueue(c, &package("t1"), 3, 100).unwrap();
            assert!(a.is_some());
            assert_eq!(enqueue(c, &package("t1"), 3, 100).unwrap(), None);
            assert!(enqueue(c, &package("t2"), 3, 100).unwrap().is_some());
            // Once done, the track can get a new one.
            let Claim::Run(j) = claim(c, "w", &KINDS, 100, 60).unwrap().unwrap() else {
                panic!()
            };
            assert!(succeed(c, j.id, "w", 101).unwrap());
            assert!(enqueue(c, &package("t1"), 3, 102).unwrap().is_some());
        });
    }

    #[test]
    fn a_claimed_job_is_not_claimed_twice_until_its_lease_lapses() {
        let (_d, db) = db();
        db.with(|c| {
            enqueue(c, &package("t1"), 3, 100).unwrap();
            let Claim::Run(j) = claim(c, "a", &KINDS, 100, 60).unwrap().unwrap() else {
                panic!()
            };
            assert_eq!((j.state, j.attempts), (JobState::Running, 1));
            assert!(claim(c, "b", &KINDS, 159, 60).unwrap().is_none());
            // Worker `a` crashed: at expiry `b` takes the job over as a second attempt.
            let Claim::Run(j2) = claim(c, "b", &KINDS, 161, 60).unwrap().unwrap() else {
                panic!()
            };
            assert_eq!((j2.id, j2.attempts), (j.id, 2));
            // `a` wakes up: its result is ignored.
            assert!(!succeed(c, j.id, "a", 162).unwrap());
            assert!(!heartbeat(c, j.id, "a", 162, 60, Some(0.5)).unwrap());
            assert!(heartbeat(c, j.id, "b", 162, 60, Some(0.5)).unwrap());
            assert!(succeed(c, j.id, "b", 163).unwrap());
            assert_eq!(get(c, j.id).unwrap().unwrap().state, JobState::Succeeded);
        });
    }

    #[test]
    fn failures_wait_for_their_retry_time_then_die() {
        let (_d, db) = db();
        db.with(|c| {
            let id = enqueue(c, &package("t1"), 2, 100).unwrap().unwrap();
            claim(c, "w", &KINDS, 100, 60).unwrap().unwrap();
            assert!(fail(c, id, "w", 101, "boom", Some(130)).unwrap());
            let j = get(c, id).unwrap().unwrap();
            assert_eq!((j.state, j.run_at), (JobState::Failed, 130));
            assert_eq!(j.last_error.as_deref(), Some("boom"));
            assert!(claim(c, "w", &KINDS, 129, 60).unwrap().is_none());
            let Claim::Run(j) = claim(c, "w", &KINDS, 130, 60).unwrap().unwrap() else {
                panic!()
            };
            assert_eq!(j.attempts, 2);
            assert!(fail(c, id, "w", 131, "boom again", None).unwrap());
            let j = get(c, id).unwrap().unwrap();
            assert_eq!((j.state, j.finished_at), (JobState::Dead, Some(131)));
            assert!(claim(c, "w", &KINDS, 10_000, 60).unwrap().is_none());
            assert_eq!(backlog(c).unwrap(), (0, 1));
            // A manual retry starts over.
            let j = retry(c, id, 200).unwrap();
            assert_eq!((j.state, j.attempts, j.run_at), (JobState::Queued, 0, 200));
            assert_eq!(backlog(c).unwrap(), (1, 0));
        });
    }

    #[test]
    fn a_lost_last_attempt_is_buried_not_rerun() {
        let (_d, db) = db();
        db.with(|c| {
            let id = enqueue(c, &package("t1"), 1, 100).unwrap().unwrap();
            claim(c, "a", &KINDS, 100, 10).unwrap().unwrap();
            let Some(Claim::Buried(j)) = claim(c, "b", &KINDS, 200, 10).unwrap() else {
                panic!()
            };
            assert_eq!((j.id, j.state), (id, JobState::Dead));
            assert!(j.last_error.unwrap().contains("vanished"));
        });
    }

    #[test]
    fn an_outage_postpones_without_spending_the_attempt_until_due_now() {
        let (_d, db) = db();
        db.with(|c| {
            let id = enqueue(c, &package("t1"), 1, 100).unwrap().unwrap();
            claim(c, "w", &KINDS, 100, 60).unwrap().unwrap();
            assert!(postpone(c, id, "w", 101, "storage unavailable: s3 get", 400).unwrap());
            let j = get(c, id).unwrap().unwrap();
            assert_eq!((j.state, j.attempts, j.run_at), (JobState::Failed, 0, 400));
            assert_eq!(j.last_error.as_deref(), Some("storage unavailable: s3 get"));
            assert!(claim(c, "w", &KINDS, 200, 60).unwrap().is_none());
            assert_eq!(due_now(c, &[id, id + 1], 200).unwrap(), 1);
            // Its only attempt is still there: claimed, it runs rather than being buried.
            match claim(c, "w", &KINDS, 200, 60).unwrap().unwrap() {
                Claim::Run(j) => assert_eq!((j.id, j.attempts), (id, 1)),
                other => panic!("{other:?}"),
            }
            assert_eq!(due_now(c, &[id], 201).unwrap(), 0, "running: left alone");
        });
    }

    #[test]
    fn release_returns_the_attempt() {
        let (_d, db) = db();
        db.with(|c| {
            let id = enqueue(c, &package("t1"), 3, 100).unwrap().unwrap();
            claim(c, "w", &KINDS, 100, 60).unwrap().unwrap();
            assert!(release(c, id, "w", 101).unwrap());
            let j = get(c, id).unwrap().unwrap();
            assert_eq!((j.state, j.attempts), (JobState::Queued, 0));
            assert!(matches!(
                retry(c, id, 102),
                Ok(Job {
                    state: JobState::Queued,
                    ..
                })
            ));
            claim(c, "w", &KINDS, 102, 60).unwrap().unwrap();
            assert!(matches!(
                retry(c, id, 103),
                Err(JobError::NotRetryable {
                    state: JobState::Running,
                    ..
                })
            ));
        });
    }

    #[test]
    fn retrying_a_dead_job_while_another_is_pending_is_refused() {
        let (_d, db) = db();
        db.with(|c| {
            let id = enqueue(c, &package("t1"), 1, 100).unwrap().unwrap();
            claim(c, "w", &KINDS, 100, 60).unwrap().unwrap();
            fail(c, id, "w", 101, "x", None).unwrap();
            enqueue(c, &package("t1"), 1, 102).unwrap().unwrap();
            assert!(matches!(
                retry(c, id, 103),
                Err(JobError::AlreadyPending { .. })
            ));
        });
    }

    #[test]
    fn kinds_filter_claims_and_listing_pages_newest_first() {
        let (_d, db) = db();
        db.with(|c| {
            enqueue(c, &package("t1"), 3, 100).unwrap();
            let purge = NewJob {
                kind: JobKind::PurgeCdn,
                track_id: Some("t1".into()),
                payload: serde_json::json!({"x": 1}),
            };
            let pid = enqueue(c, &purge, 3, 100).unwrap().unwrap();
            let Claim::Run(j) = claim(c, "w", &[JobKind::PurgeCdn], 100, 60)
                .unwrap()
                .unwrap()
            else {
                panic!()
            };
            assert_eq!((j.id, j.payload["x"].as_i64()), (pid, Some(1)));
            let all = list(
                c,
                &Filter {
                    limit: 10,
                    ..Filter::default()
                },
            )
            .unwrap();
            assert_eq!(all.len(), 2);
            assert!(all[0].id > all[1].id);
            let page2 = list(
                c,
                &Filter {
                    limit: 10,
                    before: Some(all[0].id),
                    ..Filter::default()
                },
            )
            .unwrap();
            assert_eq!(page2.len(), 1);
            let running = list(
                c,
                &Filter {
                    limit: 10,
                    state: Some(JobState::Running),
                    ..Filter::default()
                },
            )
            .unwrap();
            assert_eq!(running.len(), 1);
            assert_eq!(running[0].kind, JobKind::PurgeCdn);
        });
    }
}
