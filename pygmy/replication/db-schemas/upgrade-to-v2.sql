-- From version 1 to 2: log entries carry the fingerprint of their request
-- (entries written before the upgrade have none: NULL).  Runs in one
-- transaction with the version change below.

ALTER TABLE log ADD COLUMN fingerprint TEXT;

UPDATE meta SET value = 2 WHERE key = 'schema_version';
