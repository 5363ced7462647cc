-- Players' apps (OpenSubsonic): a `listener` role, per-user streaming preference, app
-- passwords, the tags albums and artists are derived from, progressive AAC renditions,
-- and per-user playlists, stars and plays.

-- SQLite cannot change a CHECK constraint in place: rebuild `users` (SQLite's documented
-- procedure; Veza runs migrations with foreign keys off and checks them after).
CREATE TABLE users_new (
    id            TEXT PRIMARY KEY NOT NULL,
    username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'editor', 'listener')),
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    INTEGER NOT NULL,
    last_login_at INTEGER,
    stream_proxy  INTEGER NOT NULL DEFAULT 0 CHECK (stream_proxy IN (0, 1)) -- bytes through Veza, not a redirect
) STRICT;
INSERT INTO users_new (id, username, password_hash, role, disabled, created_at, last_login_at)
    SELECT id, username, password_hash, role, disabled, created_at, last_login_at FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;

-- One app password per user for Subsonic clients, which send it (or an MD5 of it with a salt):
-- it must be recoverable, so it is sealed (ChaCha20-Poly1305, key in the data dir), never the
-- login password.
CREATE TABLE app_passwords (
    user_id    TEXT PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    nonce      BLOB NOT NULL,
    sealed     BLOB NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

-- Tags Subsonic browsing is built on. `lead_artist` is whom an album is filed under: the album
-- artist when tagged, else the track artist.
ALTER TABLE tracks ADD COLUMN album_artist TEXT NOT NULL DEFAULT '';
ALTER TABLE tracks ADD COLUMN genre TEXT NOT NULL DEFAULT '';
ALTER TABLE tracks ADD COLUMN year INTEGER;
ALTER TABLE tracks ADD COLUMN disc_number INTEGER;
ALTER TABLE tracks ADD COLUMN lead_artist TEXT
    GENERATED ALWAYS AS (CASE WHEN album_artist <> '' THEN album_artist ELSE artist END) VIRTUAL;
CREATE INDEX tracks_by_lead_album ON tracks (lead_artist, album, disc_number, track_number);
CREATE INDEX tracks_by_genre ON tracks (genre) WHERE genre <> '';
-- Plays over all users, kept beside the per-user rows so listings need no join.
ALTER TABLE tracks ADD COLUMN play_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tracks ADD COLUMN last_played_at INTEGER;

-- A progressive AAC file of each rung (same encode as its HLS segments), for players that
-- cannot do HLS. NULL for tracks packaged before it existed.
ALTER TABLE track_renditions ADD COLUMN progressive_key TEXT;

CREATE TABLE playlists (
    id         TEXT PRIMARY KEY NOT NULL,                 -- UUIDv7
    owner_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    comment    TEXT NOT NULL DEFAULT '',
    public     INTEGER NOT NULL DEFAULT 0 CHECK (public IN (0, 1)),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX playlists_by_owner ON playlists (owner_id);

CREATE TABLE playlist_entries (
    playlist_id TEXT NOT NULL REFERENCES playlists (id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    track_id    TEXT NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
    PRIMARY KEY (playlist_id, position)
) STRICT;
CREATE INDEX playlist_entries_by_track ON playlist_entries (track_id);

-- Starred songs, albums and artists; albums and artists by their derived ids.
CREATE TABLE stars (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL CHECK (kind IN ('song', 'album', 'artist')),
    item_id    TEXT NOT NULL,
    starred_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, kind, item_id)
) STRICT;

CREATE TABLE plays (
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    track_id       TEXT NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
    count          INTEGER NOT NULL,
    last_played_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, track_id)
) STRICT;
CREATE INDEX plays_by_track ON plays (track_id);
