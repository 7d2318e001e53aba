-- From version 2 to 3: request ids get a table of their own, so that a
-- replay is answered after log compaction took the entry.  It starts with
-- every request id of the log entries still present (their entries as the
-- log holds them; those written before version 2 have no fingerprint).
-- Runs in one transaction with the version change below.

CREATE TABLE requests (
    request_id  TEXT PRIMARY KEY,
    fingerprint TEXT,
    seq         INTEGER NOT NULL,
    entry       TEXT NOT NULL,
    created     TEXT NOT NULL
);

CREATE INDEX requests_created ON requests (created);

INSERT INTO requests (request_id, fingerprint, seq, entry, created)
SELECT request_id, fingerprint, seq,
       json_object('seq', seq, 'view', view, 'request_id', request_id, 'changes', json(changes),
                   'created', created, 'fingerprint', fingerprint),
       created
FROM log
WHERE request_id IS NOT NULL;

UPDATE meta SET value = 3 WHERE key = 'schema_version';
