-- From version 3 to 4: the digest of the service's tables is kept, per row
-- and per table, so that /status reads it instead of hashing every row.
-- SQL cannot hash: the Python step of this upgrade (database.UPGRADE_STEPS)
-- fills both tables from the existing rows, in the same transaction.

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

UPDATE meta SET value = 4 WHERE key = 'schema_version';
