-- The library: tracks with their metadata and original blob, free-form tags, and an FTS5
-- index over title/artist/album kept in sync by triggers.

CREATE TABLE tracks (
    id            TEXT PRIMARY KEY NOT NULL,                -- UUIDv7, never a guessable integer
    title         TEXT NOT NULL,
    artist        TEXT NOT NULL DEFAULT '',
    album         TEXT NOT NULL DEFAULT '',
    track_number  INTEGER,
    duration_ms   INTEGER,
    codec         TEXT NOT NULL,
    bitrate_kbps  INTEGER,
    sample_rate   INTEGER,
    channels      INTEGER,
    size_bytes    INTEGER NOT NULL,
    sha256        TEXT NOT NULL UNIQUE,                     -- dedupe: one track per content
    original_key  TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    cover_key     TEXT,
    visibility    TEXT NOT NULL CHECK (visibility IN ('public', 'unlisted', 'private')),
    status        TEXT NOT NULL CHECK (status IN ('processing', 'ready', 'failed', 'taken_down')),
    status_detail TEXT,
    created_by    TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;

-- Keyset pagination: (sort value, id) for each sort order.
CREATE INDEX tracks_by_created ON tracks (created_at, id);
CREATE INDEX tracks_by_title ON tracks (title COLLATE NOCASE, id);
CREATE INDEX tracks_by_artist ON tracks (artist COLLATE NOCASE, id);
CREATE INDEX tracks_by_album ON tracks (album COLLATE NOCASE, id);
CREATE INDEX tracks_by_cover ON tracks (cover_key) WHERE cover_key IS NOT NULL;

CREATE TABLE track_tags (
    track_id TEXT NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
    tag      TEXT NOT NULL,
    PRIMARY KEY (track_id, tag)
) STRICT;
CREATE INDEX track_tags_by_tag ON track_tags (tag);

CREATE VIRTUAL TABLE tracks_fts USING fts5 (
    title, artist, album,
    content = 'tracks', content_rowid = 'rowid',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER tracks_fts_insert AFTER INSERT ON tracks BEGIN
    INSERT INTO tracks_fts (rowid, title, artist, album) VALUES (new.rowid, new.title, new.artist, new.album);
END;
CREATE TRIGGER tracks_fts_delete AFTER DELETE ON tracks BEGIN
    INSERT INTO tracks_fts (tracks_fts, rowid, title, artist, album) VALUES ('delete', old.rowid, old.title, old.artist, old.album);
END;
CREATE TRIGGER tracks_fts_update AFTER UPDATE OF title, artist, album ON tracks BEGIN
    INSERT INTO tracks_fts (tracks_fts, rowid, title, artist, album) VALUES ('delete', old.rowid, old.title, old.artist, old.album);
    INSERT INTO tracks_fts (rowid, title, artist, album) VALUES (new.rowid, new.title, new.artist, new.album);
END;
