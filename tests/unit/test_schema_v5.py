"""
Schema version 5: the catalog's derived C{topic_key} column (the topic
folded by L{fold_topic<pygmy.net.validate.fold_topic>}) and its index,
added to a version 4 file with a backup first, filled from the rows in one
transaction, and left out of everything replicated: the rows, the dump and
the digest are what they were.  Real SQLite files, no threads.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from pygmy.catalog.books import BOOKS, SEED, Catalog, seed
from pygmy.net.validate import fold_topic
from pygmy.replication import database, digest
from pygmy.replication.database import SCHEMA_VERSION, SchemaError, backup_path, prepare, schema_file
from tests.fakes import result, sync_store
from tests.schema_checks import dump_of

#: The books table as schema version 4 made it, with its ASCII-only index.
V4_BOOKS = """
CREATE TABLE IF NOT EXISTS books (
    id    INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    topic TEXT NOT NULL,
    cost  TEXT NOT NULL,
    stock INTEGER NOT NULL CHECK (stock >= 0)
);
CREATE INDEX IF NOT EXISTS books_topic ON books (topic COLLATE NOCASE);
"""

#: Books of a version 4 file beyond the seed, in topics NOCASE could not fold.
EXTRA = [
    (8, "Les Misérables", "ÉCOLE", "12.50", 3),
    (9, "Petit Nicolas", "école", "8.00", 5),
    (10, "Faust", "STRASSE", "9.10", 1),
    (11, "Mythen", "ΣΊΣΥΦΟΣ", "20.00", 2),
]


def make_v4(path: Path, rows=SEED + tuple(EXTRA)) -> str:
    """A version 4 catalog database holding C{rows}, its digest kept; the checksum."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.executescript("BEGIN;" + schema_file("v4.sql") + V4_BOOKS)
        connection.executemany("INSERT INTO books VALUES (?, ?, ?, ?, ?)", rows)
        digest.rebuild(connection, (BOOKS,))
        connection.execute("UPDATE meta SET value = 4 WHERE key = 'applied_seq'")
        connection.execute("COMMIT")
        return digest.checksum(digest.kept(connection, (BOOKS,)))
    finally:
        connection.close()


def query(path: Path, sql: str, *args) -> list[tuple]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(sql, args).fetchall()
    finally:
        connection.close()


def schema_of(path: Path) -> set[tuple]:
    """The tables and indexes of a file, with their SQL (its white space as single spaces)."""
    found = query(path, "SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
    return {(kind, name, " ".join((sql or "").split())) for kind, name, sql in found}


def version_of(path: Path) -> int:
    return query(path, "SELECT value FROM meta WHERE key = 'schema_version'")[0][0]


def test_the_current_version_is_5_and_its_files_ship():
    assert SCHEMA_VERSION == 5
    assert "UPDATE meta SET value = 5" in schema_file("upgrade-to-v5.sql")
    # The log's tables did not change from version 4.
    strip = lambda text: [line for line in text.splitlines() if not line.startswith("--")]  # noqa: E731
    assert strip(schema_file("v5.sql")) == [
        line.replace("'schema_version', 4", "'schema_version', 5") for line in strip(schema_file("v4.sql"))
    ]


def test_a_version_4_file_is_upgraded_with_a_backup_and_its_topics_folded(tmp_path):
    path = tmp_path / "catalog.sqlite"
    checksum = make_v4(path)
    original = dump_of(path)
    rows = query(path, "SELECT id, title, topic, cost, stock FROM books ORDER BY id")
    prepare(path, BOOKS.schema, seed, (BOOKS,))
    assert version_of(path) == 5
    assert dump_of(backup_path(path, 4)) == original
    assert query(path, "SELECT id, title, topic, cost, stock FROM books ORDER BY id") == rows
    keys = dict(query(path, "SELECT id, topic_key FROM books"))
    assert keys == {row[0]: fold_topic(row[2]) for row in rows}
    assert keys[8] == keys[9] == "école" and keys[10] == "strasse"
    names = {name for _, name, _ in schema_of(path)}
    assert "books_topic_key" in names and "books_topic" not in names
    connection = sqlite3.connect(path)
    try:
        assert digest.checksum(digest.kept(connection, (BOOKS,))) == checksum
        assert digest.kept(connection, (BOOKS,)) == digest.recount(connection, (BOOKS,))
    finally:
        connection.close()


def test_an_upgraded_file_has_the_schema_of_a_new_one(tmp_path):
    upgraded, fresh = tmp_path / "upgraded.sqlite", tmp_path / "fresh.sqlite"
    make_v4(upgraded)
    prepare(upgraded, BOOKS.schema, seed, (BOOKS,))
    prepare(fresh, BOOKS.schema, seed, (BOOKS,))
    assert schema_of(upgraded) == schema_of(fresh)
    assert dict(query(fresh, "SELECT id, topic_key FROM books")) == {row[0]: fold_topic(row[2]) for row in SEED}


def test_a_store_on_an_upgraded_file_searches_any_case_through_the_index(tmp_path, reactor):
    path = tmp_path / "catalog.sqlite"
    checksum = make_v4(path)
    store = sync_store(path, (BOOKS,), seed, reactor)
    try:
        catalog = Catalog(store)
        assert [item["id"] for item in result(catalog.search("École"))] == [8, 9]
        assert [item["id"] for item in result(catalog.search("straße"))] == [10]
        assert [item["id"] for item in result(catalog.search("σίσυφοσ"))] == [11]
        assert result(store.status())[2] == checksum
        write = result(catalog.add({"title": "Émile", "topic": "écoLE", "cost": "1.00", "stock": 1}, "r"))
        assert write.row["id"] == 12
        assert [item["id"] for item in result(catalog.search("ÉCOLE"))] == [8, 9, 12]
        plan = result(
            store.read(
                lambda txn: txn.execute(
                    "EXPLAIN QUERY PLAN SELECT id FROM books WHERE topic_key = ?", ("x",)
                ).fetchall()
            )
        )
        assert "books_topic_key" in str(list(plan))
    finally:
        store.pool.close()


def test_the_upgrade_folds_a_large_table_in_pages(tmp_path, monkeypatch):
    monkeypatch.setattr(database, "PAGE", 7)
    path = tmp_path / "catalog.sqlite"
    rows = [(n, f"Book {n}", f"Topic {n % 13} É", "1.00", 1) for n in range(1, 101)]
    make_v4(path, rows)
    statements = []
    real = database._fill

    def counting(txn, table, column):
        txn.set_trace_callback(statements.append)
        real(txn, table, column)
        txn.set_trace_callback(None)

    monkeypatch.setattr(database, "_fill", counting)
    prepare(path, BOOKS.schema, seed, (BOOKS,))
    keys = dict(query(path, "SELECT id, topic_key FROM books"))
    assert keys == {n: f"topic {n % 13} é" for n in range(1, 101)}
    selects = [sql for sql in statements if sql.startswith("SELECT") and "LIMIT 7" in sql]
    assert len(selects) == 100 // 7 + 2


def test_a_failing_upgrade_leaves_the_version_4_file_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "catalog.sqlite"
    make_v4(path)
    original = dump_of(path)

    def broken(txn, table, column):
        raise RuntimeError("no folding today")

    monkeypatch.setattr(database, "_fill", broken)
    with pytest.raises(RuntimeError, match="no folding today"):
        prepare(path, BOOKS.schema, seed, (BOOKS,))
    assert dump_of(path) == original
    assert version_of(path) == 4


def test_a_version_5_file_is_opened_as_it_is(tmp_path):
    path = tmp_path / "catalog.sqlite"
    make_v4(path)
    prepare(path, BOOKS.schema, seed, (BOOKS,))
    before = dump_of(path)
    prepare(path, BOOKS.schema, seed, (BOOKS,))
    assert dump_of(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog.sqlite", "catalog.sqlite.v4.backup"]


def test_a_pygmy_of_version_4_refuses_a_version_5_file(tmp_path, monkeypatch):
    path = tmp_path / "catalog.sqlite"
    prepare(path, BOOKS.schema, seed, (BOOKS,))
    monkeypatch.setattr(database, "SCHEMA_VERSION", 4)
    with pytest.raises(SchemaError, match="schema version 5 is newer than this Pygmy's \\(4\\)"):
        prepare(path, BOOKS.schema, seed, (BOOKS,))


def test_the_order_service_upgrades_without_a_derived_column(tmp_path):
    from pygmy.order.orders import BUYS, ORDERS

    path = tmp_path / "order.sqlite"
    connection = sqlite3.connect(path)
    connection.executescript(schema_file("v4.sql") + ORDERS.schema + BUYS.schema)
    connection.close()
    prepare(path, ORDERS.schema + BUYS.schema, None, (ORDERS, BUYS))
    assert version_of(path) == 5
    assert backup_path(path, 4).exists()
