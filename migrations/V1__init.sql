-- Instance facts (creation time, schema notes). Later migrations add the library, jobs,
-- accounts. This file is append-only once landed: never edit it, add V2__… instead.
CREATE TABLE instance (
    key        TEXT PRIMARY KEY NOT NULL,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL DEFAULT (unixepoch())
) STRICT;

INSERT INTO instance (key, value) VALUES ('created_at', CAST(unixepoch() AS TEXT));
