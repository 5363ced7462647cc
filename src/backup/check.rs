//! `veza check`: SQLite's integrity check, every referenced blob present with its recorded
//! size and SHA-256, and no orphans (objects under Veza's prefixes that nothing references).
//! `--repair` deletes orphans older than an hour and nothing else: a younger one may be an
//! upload whose row is not committed yet.

use std::collections::BTreeSet;
use std::time::SystemTime;

use serde::Serialize;

use super::BackupError;
use super::inventory::{self, OWN_PREFIXES};
use crate::db::Db;
use crate::storage::{BlobKey, BlobStore, STALE_TEMP_AGE, StoreError};

/// What `veza check` found (the `--json` output).
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    /// `PRAGMA integrity_check` lines; `["ok"]` when sound.
    pub integrity: Vec<String>,
    /// Objects under Veza's prefixes in the store.
    pub objects: u64,
    /// Objects the database references.
    pub referenced: u64,
    /// Referenced objects the store does not have.
    pub missing: Vec<String>,
    /// Referenced objects whose size or SHA-256 is not the recorded one (key, problem).
    pub corrupt: Vec<Problem>,
    /// Playlists that are missing or do not parse (their segments could not be checked).
    pub unreadable: Vec<Problem>,
    /// Unreferenced objects (left in place).
    pub orphans: Vec<String>,
    /// Unreferenced objects younger than an hour, never removed (maybe an upload in flight).
    pub recent_orphans: Vec<String>,
    /// Orphans `--repair` deleted.
    pub removed: Vec<String>,
    /// True when nothing above needs attention.
    pub ok: bool,
}

/// One problem with one object.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// The object.
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

/// Checks the install; with `repair`, deletes old orphans.
pub async fn check(db: &Db, store: &BlobStore, repair: bool) -> Result<CheckReport, BackupError> {
    let (integrity, rows) = db
        .call(|c| -> Result<_, BackupError> {
            let mut s = c.prepare("PRAGMA integrity_check")?;
            let lines = s
                .query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok((lines, inventory::load(c)?))
        })
        .await?;
    let inv = inventory::build(&rows, store).await?;
    let mut listed = Vec::new();
    for p in OWN_PREFIXES {
        listed.extend(store.list(p).await?);
    }
    let mut r = CheckReport {
        integrity,
        objects: listed.len() as u64,
        referenced: inv.expected.len() as u64,
        unreadable: inv
            .unreadable
            .iter()
            .map(|(key, problem)| Problem {
                key: key.clone(),
                problem: problem.clone(),
            })
            .collect(),
        ..CheckReport::default()
    };
    let present: BTreeSet<&str> = listed.iter().map(|m| m.key.as_str()).collect();
    for (key, want) in &inv.expected {
        if !present.contains(key.as_str()) {
            r.missing.push(key.clone());
            continue;
        }
        let parsed = BlobKey::parse(key).map_err(StoreError::from)?;
        let (size, sha) = match inventory::hash_object(store, &parsed).await {
            Ok(v) => v,
            // Deleted between the listing and the read.
            Err(StoreError::NotFound(_)) => {
                r.missing.push(key.clone());
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let problem = if want.size.is_some_and(|s| s != size) {
            Some(format!(
                "{size} bytes where {} are recorded",
                want.size.unwrap_or(0)
            ))
        } else if want.sha256.as_ref().is_some_and(|s| *s != sha) {
            Some("content does not match its SHA-256".to_owned())
        } else {
            None
        };
        if let Some(problem) = problem {
            r.corrupt.push(Problem {
                key: key.clone(),
                problem,
            });
        }
    }
    let busy: Vec<String> = rows.busy.iter().map(|id| format!("tracks/{id}/")).collect();
    let now = SystemTime::now();
    for m in &listed {
        let key = m.key.as_str();
        if inv.expected.contains_key(key) || busy.iter().any(|b| key.starts_with(b)) {
            continue;
        }
        let young = m
            .modified
            .is_none_or(|t| now.duration_since(t).unwrap_or_default() < STALE_TEMP_AGE);
        if young {
            r.recent_orphans.push(key.to_owned());
        } else if repair {
            store.delete(&m.key).await?;
            r.removed.push(key.to_owned());
        } else {
            r.orphans.push(key.to_owned());
        }
    }
    r.ok = r.integrity == ["ok"]
        && r.missing.is_empty()
        && r.corrupt.is_empty()
        && r.unreadable.is_empty()
        && r.orphans.is_empty();
    Ok(r)
}

impl CheckReport {
    /// The human summary, one finding a line.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let integrity = self.integrity.join("; ");
        out.push(format!("database integrity: {integrity}"));
        out.push(format!(
            "objects: {} in the store, {} referenced",
            self.objects, self.referenced
        ));
        for k in &self.missing {
            out.push(format!("missing: {k}"));
        }
        for p in self.corrupt.iter().chain(&self.unreadable) {
            out.push(format!("damaged: {}: {}", p.key, p.problem));
        }
        for k in &self.orphans {
            out.push(format!("orphan: {k} (veza check --repair removes it)"));
        }
        for k in &self.recent_orphans {
            out.push(format!("orphan younger than an hour, left alone: {k}"));
        }
        for k in &self.removed {
            out.push(format!("removed orphan: {k}"));
        }
        out.push(if self.ok {
            "ok".into()
        } else {
            "problems found".into()
        });
        out
    }
}
