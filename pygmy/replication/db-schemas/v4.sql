-- The write log and its position, version 4 (superseded by v5.sql): a new
-- replica database is made from this file and its service's own tables.
--
-- log: one entry per write, in seq order (see pygmy/replication/writelog.py).
--   fingerprint  a digest of what the write asked for, so that a request id
--                used again for a different request is refused (v2)
-- requests: one row per request id that wrote (v3), so that the same id
--   again answers the first write's result even after log compaction took
--   its entry; kept for [cluster] idempotency_keep seconds after created
--   (and at least as long as the log holds the entry).  Local to each
--   replica: not part of the /status checksum.
--   seq          the entry's position in the log
--   entry        the logged entry as JSON, what a replay returns
--   created      when the write was accepted (the entry's), ISO-8601 UTC
-- row_hashes: the hash of every row of the service's tables, by table and
--   primary key (v4); digests: per table, the sum of its row hashes modulo
--   2**256 as 64 hex digits, which the /status checksum is made of.  Kept in
--   the transaction of every write (see pygmy/replication/digest.py).
-- meta: schema_version, applied_seq (the last entry) and last_view (its view).

CREATE TABLE log (
    seq         INTEGER PRIMARY KEY,
    view        INTEGER NOT NULL,
    request_id  TEXT UNIQUE,
    changes     TEXT NOT NULL,
    created     TEXT NOT NULL,
    fingerprint TEXT
);

CREATE TABLE requests (
    request_id  TEXT PRIMARY KEY,
    fingerprint TEXT,
    seq         INTEGER NOT NULL,
    entry       TEXT NOT NULL,
    created     TEXT NOT NULL
);

CREATE INDEX requests_created ON requests (created);

CREATE TABLE row_hashes (
    tbl  TEXT NOT NULL,
    key  TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (tbl, key)
) WITHOUT ROWID;

CREATE TABLE digests (
    tbl   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);

INSERT INTO meta (key, value) VALUES ('schema_version', 4), ('applied_seq', 0), ('last_view', 0);
