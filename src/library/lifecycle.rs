//! A track's life, and the only SQL that changes its status: processing → ready or failed
//! (packaging), → taken down → restored, with the audit trail and the jobs each step queues in
//! the same transaction. Callers (the track service) invalidate caches after these commit.

use rusqlite::{Connection, params};
use serde::Serialize;
use utoipa::ToSchema;

use super::{LibraryError, Status, Track, TrackId, store};
use crate::hls::Rendition;
use crate::jobs::{JobError, NewJob};

/// Who did an audited action (the username at the time is kept with the id).
#[derive(Debug, Clone)]
pub struct Actor {
    /// The user's id.
    pub id: String,
    /// The user's login name.
    pub name: String,
}

/// One audit entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    /// `takedown` or `restore`.
    pub action: String,
    /// The reason given.
    pub reason: Option<String>,
    /// Who did it (username at the time).
    pub actor: String,
    /// Unix seconds.
    pub at: i64,
}

/// Queues `job` inside the caller's transaction.
pub fn enqueue(
    tx: &Connection,
    job: &NewJob,
    max_attempts: u32,
    now: i64,
) -> Result<Option<i64>, LibraryError> {
    crate::jobs::store::enqueue(tx, job, max_attempts, now).map_err(|e| match e {
        JobError::Db(e) => LibraryError::Db(e),
        other => LibraryError::Enqueue(other),
    })
}

fn audit(
    c: &Connection,
    id: &TrackId,
    action: &str,
    reason: Option<&str>,
    who: &Actor,
    now: i64,
) -> Result<(), LibraryError> {
    c.execute(
        "INSERT INTO track_audit (track_id, action, reason, actor_id, actor_name, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id.as_str(), action, reason, who.id, who.name, now],
    )?;
    Ok(())
}

fn set_status(
    c: &Connection,
    id: &TrackId,
    status: Status,
    detail: Option<&str>,
    now: i64,
) -> Result<(), LibraryError> {
    c.execute(
        "UPDATE tracks SET status = ?2, status_detail = ?3, updated_at = ?4 WHERE id = ?1",
        params![id.as_str(), status.as_str(), detail, now],
    )?;
    Ok(())
}

/// Takes a track down: status, audit row and the purge job `purge` makes for it, together or
/// not at all. `None` when it already was taken down.
pub fn take_down(
    c: &mut Connection,
    id: &TrackId,
    reason: &str,
    who: &Actor,
    now: i64,
    purge: impl FnOnce(&Track) -> Option<(NewJob, u32)>,
) -> Result<Option<(Track, Option<i64>)>, LibraryError> {
    let tx = c.transaction()?;
    let t = store::get(&tx, id)?.ok_or(LibraryError::NotFound)?;
    if t.status == Status::TakenDown {
        return Ok(None);
    }
    let detail = format!("taken down: {reason}");
    set_status(&tx, id, Status::TakenDown, Some(&detail), now)?;
    audit(&tx, id, "takedown", Some(reason), who, now)?;
    let job = match purge(&t) {
        Some((job, max_attempts)) => enqueue(&tx, &job, max_attempts, now)?,
        None => None,
    };
    tx.commit()?;
    let t = store::get(c, id)?.ok_or(LibraryError::NotFound)?;
    Ok(Some((t, job)))
}

/// Restores a taken-down track: `ready` when it has HLS (or packaging is off, `package` is
/// `None`), else `processing` with a new packaging job. `None` when it was not taken down.
pub fn restore(
    c: &mut Connection,
    id: &TrackId,
    reason: Option<&str>,
    who: &Actor,
    now: i64,
    package: Option<u32>,
) -> Result<Option<Track>, LibraryError> {
    let tx = c.transaction()?;
    let t = store::get(&tx, id)?.ok_or(LibraryError::NotFound)?;
    if t.status != Status::TakenDown {
        return Ok(None);
    }
    let needs_hls = package.filter(|_| t.hls_key.is_none());
    let status = match needs_hls {
        Some(_) => Status::Processing,
        None => Status::Ready,
    };
    set_status(&tx, id, status, None, now)?;
    audit(&tx, id, "restore", reason, who, now)?;
    if let Some(max) = needs_hls {
        enqueue(&tx, &NewJob::package_hls(id.as_str()), max, now)?;
    }
    tx.commit()?;
    Ok(Some(store::get(c, id)?.ok_or(LibraryError::NotFound)?))
}

/// Who took the track down or restored it, when and why; oldest first.
pub fn audit_trail(c: &Connection, id: &TrackId) -> Result<Vec<AuditEntry>, LibraryError> {
    let mut st = c.prepare_cached(
        "SELECT action, reason, actor_name, at FROM track_audit WHERE track_id = ?1 ORDER BY id",
    )?;
    let rows = st.query_map([id.as_str()], |r| {
        Ok(AuditEntry {
            action: r.get(0)?,
            reason: r.get(1)?,
            actor: r.get(2)?,
            at: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Records a packaged tree: the master playlist and its renditions; `processing` and `failed`
/// become `ready`, a taken-down track stays down. False when the track is gone (deleted while
/// it was packaged): the caller removes what it uploaded.
pub fn mark_packaged(
    c: &mut Connection,
    id: &TrackId,
    master_key: &str,
    renditions: &[Rendition],
    now: i64,
) -> Result<bool, LibraryError> {
    let tx = c.transaction()?;
    let n = tx.execute(
        "UPDATE tracks SET hls_key = ?2,
            status = CASE WHEN status IN (?4, ?5) THEN ?6 ELSE status END,
            status_detail = CASE WHEN status = ?7 THEN status_detail ELSE NULL END,
            updated_at = ?3
         WHERE id = ?1",
        params![
            id.as_str(),
            master_key,
            now,
            Status::Processing.as_str(),
            Status::Failed.as_str(),
            Status::Ready.as_str(),
            Status::TakenDown.as_str(),
        ],
    )?;
    tx.execute(
        "DELETE FROM track_renditions WHERE track_id = ?1",
        [id.as_str()],
    )?;
    if n == 1 {
        // A header can claim days for seconds of audio (a lying Xing frame count or WAV data
        // size); what ffmpeg decoded is the truth once packaging ran. Small encoder differences
        // (priming, padding) leave the probed value alone.
        if let Some(measured) = renditions.iter().map(|r| r.duration_ms as i64).max() {
            tx.execute(
                "UPDATE tracks SET duration_ms = ?2 WHERE id = ?1
                   AND (duration_ms IS NULL OR ABS(duration_ms - ?2) > MAX(1000, ?2 / 10))",
                params![id.as_str(), measured],
            )?;
        }
        for r in renditions {
            tx.execute(
                "INSERT INTO track_renditions (track_id, bitrate_kbps, playlist_key,
                    bandwidth, average_bandwidth, codecs, segments, duration_ms, progressive_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    id.as_str(),
                    r.bitrate_kbps,
                    format!("tracks/{id}/hls/{}", r.playlist),
                    r.bandwidth as i64,
                    r.average_bandwidth as i64,
                    r.codecs,
                    r.segments,
                    r.duration_ms as i64,
                    format!("tracks/{id}/hls/{}", r.progressive),
                ],
            )?;
        }
    }
    tx.commit()?;
    Ok(n == 1)
}

/// A packaging attempt failed: `processing` while it will be retried, `failed` after the last
/// attempt, with `detail` for whoever can see the track. Other states are left alone.
pub fn record_packaging_failure(
    c: &Connection,
    id: &str,
    last_attempt: bool,
    detail: &str,
    now: i64,
) -> Result<(), LibraryError> {
    let status = if last_attempt {
        Status::Failed
    } else {
        Status::Processing
    };
    c.execute(
        "UPDATE tracks SET status = ?2, status_detail = ?3, updated_at = ?4
         WHERE id = ?1 AND status IN (?5, ?6)",
        params![
            id,
            status.as_str(),
            detail,
            now,
            Status::Processing.as_str(),
            Status::Failed.as_str()
        ],
    )?;
    Ok(())
}

/// How many tracks are in each status (every status listed, zeros included).
pub fn status_counts(c: &Connection) -> Result<Vec<(Status, i64)>, LibraryError> {
    let mut st = c.prepare_cached("SELECT status, COUNT(*) FROM tracks GROUP BY status")?;
    let rows = st
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Status::ALL
        .into_iter()
        .map(|s| {
            let n = rows
                .iter()
                .find(|(st, _)| st == s.as_str())
                .map_or(0, |(_, n)| *n);
            (s, n)
        })
        .collect())
}
