-- The write log and its position, version 2 (the current one): a new
-- replica database is made from this file and its service's own tables.
--
-- log: one entry per write, in seq order (see pygmy/replication/writelog.py).
--   fingerprint  a digest of what the write asked for, so that a request id
--                used again for a different request is refused (v2)
-- meta: schema_version, applied_seq (the last entry) and last_view (its view).

CREATE TABLE log (
    seq         INTEGER PRIMARY KEY,
    view        INTEGER NOT NULL,
    request_id  TEXT UNIQUE,
    changes     TEXT NOT NULL,
    created     TEXT NOT NULL,
    fingerprint TEXT
);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);

INSERT INTO meta (key, value) VALUES ('schema_version', 2), ('applied_seq', 0), ('last_view', 0);
