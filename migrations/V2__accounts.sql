-- Accounts: users with roles, dashboard sessions, API tokens, the one-time setup link.
-- Secrets (session ids, API tokens, setup tokens) are stored only as SHA-256 hashes:
-- they are 256-bit random values, so a fast hash is enough and lookups stay indexed.

CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,                 -- UUIDv7
    username      TEXT NOT NULL UNIQUE COLLATE NOCASE,       -- ASCII only, so NOCASE is exact
    password_hash TEXT NOT NULL,                             -- argon2id PHC string
    role          TEXT NOT NULL CHECK (role IN ('admin', 'editor')),
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at    INTEGER NOT NULL,
    last_login_at INTEGER
) STRICT;

CREATE TABLE sessions (
    id_hash      BLOB PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL                            -- absolute limit
) STRICT;
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY NOT NULL,                  -- UUIDv7
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    token_hash   BLOB NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    last_used_at INTEGER,
    revoked_at   INTEGER
) STRICT;
CREATE INDEX api_tokens_by_user ON api_tokens (user_id);

CREATE TABLE setup_tokens (
    token_hash BLOB PRIMARY KEY NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
) STRICT;
