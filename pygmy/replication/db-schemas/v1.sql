-- The write log and its position, version 1: every replica's database has
-- these next to its service's own tables (the Table schemas in
-- pygmy/catalog/books.py and pygmy/order/orders.py).  Historical: a new
-- database is made from the current version; this file is what older
-- databases hold, and what the tests build one from.

CREATE TABLE log (
    seq        INTEGER PRIMARY KEY,
    view       INTEGER NOT NULL,
    request_id TEXT UNIQUE,
    changes    TEXT NOT NULL,
    created    TEXT NOT NULL
);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);

INSERT INTO meta (key, value) VALUES ('schema_version', 1), ('applied_seq', 0), ('last_view', 0);
