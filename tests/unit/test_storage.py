"""
The replica store: schema and seed, the write log, idempotent replays,
checksums and dumps; a store opening an old or a too-new database
(the files themselves: test_schema.py).  Real SQLite, no threads.
"""

import sqlite3

import pytest

from pygmy.catalog.books import BOOKS, SEED, Catalog, seed
from pygmy.errors import BadRequest, NotFound, OutOfStock
from pygmy.order.orders import ORDERS
from pygmy.replication import database
from pygmy.replication.database import SCHEMA_VERSION, SchemaError, backup_path, prepare, schema_file
from tests.fakes import result, sync_store


@pytest.fixture
def catalog(tmp_path, reactor):
    store = sync_store(tmp_path / "catalog.sqlite", (BOOKS,), seed, reactor)
    yield Catalog(store)
    store.pool.close()


def test_new_catalog_is_seeded_in_order(catalog):
    rows = result(catalog.list())
    assert [row["id"] for row in rows] == [1, 2, 3, 4, 5, 6, 7]
    assert [row["title"] for row in rows] == [entry[1] for entry in SEED]
    assert rows[1]["topic"] == "distributed systems"


def test_search_ignores_case(catalog):
    assert [b["id"] for b in result(catalog.search("GRADUATE School"))] == [3, 4]
    assert result(catalog.search("cooking")) == []


def test_write_appends_log_entry_with_resulting_row(catalog, tmp_path):
    write = result(catalog.decrement(2, "r1"))
    assert write.seq == 1 and not write.replayed
    assert write.row["stock"] == SEED[1][4] - 1
    connection = sqlite3.connect(tmp_path / "catalog.sqlite")
    ((seq, request_id, changes),) = connection.execute("SELECT seq, request_id, changes FROM log")
    assert (seq, request_id) == (1, "r1")
    assert '"stock": %d' % (SEED[1][4] - 1) in changes


def test_same_request_id_replays_without_writing_again(catalog):
    first = result(catalog.decrement(2, "same"))
    again = result(catalog.decrement(2, "same"))
    assert again.replayed and again.seq == first.seq == 1
    assert result(catalog.lookup(2))["stock"] == SEED[1][4] - 1
    applied, _, _ = result(catalog.store.status())
    assert applied == 1


def test_out_of_stock_rolls_back_and_logs_nothing(catalog):
    result(catalog.update(5, {"stock_delta": -SEED[4][4] + 1}, "drain"))
    result(catalog.decrement(5, "last"))
    with pytest.raises(OutOfStock):
        result(catalog.decrement(5, "one-too-many"))
    assert result(catalog.lookup(5))["stock"] == 0
    applied, _, _ = result(catalog.store.status())
    assert applied == 2


def test_update_refuses_negative_stock_and_unknown_books(catalog):
    with pytest.raises(BadRequest):
        result(catalog.update(1, {"stock_delta": -(SEED[0][4] + 1)}, "x"))
    with pytest.raises(NotFound):
        result(catalog.update(99, {"cost": "1.00"}, "y"))
    with pytest.raises(NotFound):
        result(catalog.decrement(99, "z"))
    assert result(catalog.store.status())[0] == 0


def test_same_data_same_checksum(tmp_path, reactor):
    a = sync_store(tmp_path / "a.sqlite", (BOOKS,), seed, reactor)
    b = sync_store(tmp_path / "b.sqlite", (BOOKS,), seed, reactor)
    assert result(a.status())[2] == result(b.status())[2]
    result(Catalog(a).decrement(1, "r"))
    assert result(a.status())[2] != result(b.status())[2]
    result(Catalog(b).decrement(1, "r"))
    assert result(a.status())[2] == result(b.status())[2]
    a.pool.close()
    b.pool.close()


def test_data_survives_reopening(tmp_path, reactor):
    path = tmp_path / "catalog.sqlite"
    store = sync_store(path, (BOOKS,), seed, reactor)
    result(Catalog(store).update(3, {"cost": "1.25"}, "r"))
    store.pool.close()
    again = sync_store(path, (BOOKS,), seed, reactor)
    assert result(Catalog(again).lookup(3))["cost"] == "1.25"
    assert result(again.status())[0] == 1
    again.pool.close()


def test_dump_lists_rows_by_id(tmp_path, reactor):
    store = sync_store(tmp_path / "order.sqlite", (ORDERS,), None, reactor)
    assert result(store.dump()) == {"applied_seq": 0, "rows": []}
    store.pool.close()


def schema_version(path):
    connection = sqlite3.connect(path)
    try:
        return connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    finally:
        connection.close()


def test_new_database_is_at_the_current_schema_version(catalog, tmp_path):
    assert result(catalog.store.status())[0] == 0
    assert schema_version(tmp_path / "catalog.sqlite") == SCHEMA_VERSION


def test_the_file_is_made_in_the_database_thread_not_at_construction(tmp_path, reactor, monkeypatch):
    calls = []
    monkeypatch.setattr(database, "prepare", lambda *args: calls.append(args) or prepare(*args))
    path = tmp_path / "catalog.sqlite"
    store = sync_store(path, (BOOKS,), seed, reactor)
    assert not path.exists() and calls == []
    result(store.status())
    result(store.dump())
    assert len(calls) == 1 and path.exists()
    store.pool.close()


def test_version_1_database_is_migrated(tmp_path, reactor):
    path = tmp_path / "old.sqlite"
    old = sqlite3.connect(path)
    old.executescript(schema_file("v1.sql") + BOOKS.schema)
    old.executemany("INSERT INTO books VALUES (?, ?, ?, ?, ?)", SEED)
    old.execute("INSERT INTO log VALUES (1, 1, 'before', '[]', '2026-01-01T00:00:00.000Z')")
    old.execute("UPDATE meta SET value = 1 WHERE key IN ('applied_seq', 'last_view')")
    old.commit()
    original = list(old.iterdump())
    old.close()
    store = sync_store(path, (BOOKS,), seed, reactor)
    assert [entry["request_id"] for entry in result(store.read_log(0, 10))] == ["before"]
    write = result(Catalog(store).decrement(1, "after-migration"))
    assert write.seq == 2 and write.entry["fingerprint"]
    assert result(Catalog(store).lookup(7))["title"] == SEED[6][1]
    store.pool.close()
    assert schema_version(path) == SCHEMA_VERSION
    backup = sqlite3.connect(backup_path(path, 1))
    assert list(backup.iterdump()) == original
    backup.close()


def test_newer_database_is_refused_by_the_store(tmp_path, reactor):
    path = tmp_path / "new.sqlite"
    prepare(path, BOOKS.schema, seed)
    connection = sqlite3.connect(path)
    connection.execute("UPDATE meta SET value = 99 WHERE key = 'schema_version'")
    connection.commit()
    connection.close()
    store = sync_store(path, (BOOKS,), seed, reactor)
    with pytest.raises(SchemaError, match="schema version 99 is newer than this Pygmy's"):
        result(store.status())
    store.pool.close()
    assert schema_version(path) == 99


def test_request_id_reused_for_another_request_is_a_conflict(catalog):
    from pygmy.errors import Conflict

    result(catalog.update(1, {"cost": "1.00"}, "key"))
    assert result(catalog.update(1, {"cost": "1.00"}, "key")).replayed
    with pytest.raises(Conflict):
        result(catalog.update(1, {"cost": "2.00"}, "key"))
    with pytest.raises(Conflict):
        result(catalog.decrement(2, "key"))
    assert result(catalog.lookup(1))["cost"] == "1.00"
