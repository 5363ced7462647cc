-- The durable job queue, the HLS renditions of each track, and the audit trail of takedowns.

-- One row per job. A worker claims a due job by setting `state = 'running'` with a lease in
-- one transaction; a lease that lapses (the worker crashed) makes the job claimable again.
-- `failed` is a job whose last attempt failed and that waits for `run_at` to try again;
-- `dead` has used all its attempts. Times are unix seconds.
CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, so history stays true
    kind             TEXT NOT NULL,
    payload          TEXT NOT NULL,                      -- JSON, shaped by the kind
    track_id         TEXT,                               -- no FK: history outlives the track
    state            TEXT NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    run_at           INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_expires_at INTEGER,
    progress         REAL,                               -- 0..1 while running
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    updated_at       INTEGER NOT NULL
) STRICT;

CREATE INDEX jobs_due ON jobs (state, run_at, id);
CREATE INDEX jobs_by_track ON jobs (track_id, id) WHERE track_id IS NOT NULL;
-- At most one pending job of a kind per track: enqueueing twice is a no-op.
CREATE UNIQUE INDEX jobs_one_pending ON jobs (kind, track_id)
    WHERE track_id IS NOT NULL AND state IN ('queued', 'running', 'failed');

-- The master playlist once a track is packaged (NULL: no HLS yet).
ALTER TABLE tracks ADD COLUMN hls_key TEXT;

CREATE TABLE track_renditions (
    track_id          TEXT NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
    bitrate_kbps      INTEGER NOT NULL,
    playlist_key      TEXT NOT NULL,
    bandwidth         INTEGER NOT NULL,   -- peak segment bit rate, bits/s
    average_bandwidth INTEGER NOT NULL,
    codecs            TEXT NOT NULL,
    segments          INTEGER NOT NULL,
    duration_ms       INTEGER NOT NULL,
    PRIMARY KEY (track_id, bitrate_kbps)
) STRICT;

-- Who took a track down or restored it, when and why. No FK: the record outlives the track.
CREATE TABLE track_audit (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    track_id   TEXT NOT NULL,
    action     TEXT NOT NULL CHECK (action IN ('takedown', 'restore', 'delete')),
    reason     TEXT,
    actor_id   TEXT,
    actor_name TEXT NOT NULL,
    at         INTEGER NOT NULL
) STRICT;
CREATE INDEX track_audit_by_track ON track_audit (track_id, id);
