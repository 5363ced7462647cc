-- Audio analysis at ingest (issue 21): EBU R128 loudness, ReplayGain 2.0 values, gapless data
-- and the waveform peaks object of each packaged track. One row per analysed track; none
-- before its first packaging with analysis (`veza analyze` queues the backfill).
CREATE TABLE track_analysis (
    track_id        TEXT PRIMARY KEY NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
    integrated_lufs REAL NOT NULL,
    range_lu        REAL NOT NULL,
    true_peak_dbtp  REAL NOT NULL,
    -- JSON [[bin, count], …]: 400 ms block loudness histogram above the absolute gate, so an
    -- album's gated loudness can be computed from its tracks without decoding them again.
    blocks          TEXT NOT NULL,
    -- Same album and artist, gated together; recomputed whenever the album's tracks change.
    album_gain_db   REAL,
    album_peak      REAL,
    encoder_delay   INTEGER NOT NULL,
    padding         INTEGER NOT NULL,
    peaks_key       TEXT NOT NULL,
    analyzed_at     INTEGER NOT NULL
) STRICT;
