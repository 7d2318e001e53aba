"""
The digest behind a replica's C{/status} checksum (L{pygmy.replication.digest}):
kept with every write, applied entry and snapshot, and computed when a
database is made or upgraded from version 3, it always equals a recount
from the rows; replicas with the same rows agree on it whatever
order their writes came in; and reading it costs the same however large
the tables are.  Real SQLite, no threads.
"""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

import pytest

from pygmy.catalog.books import BOOKS, SEED, Catalog, seed
from pygmy.errors import PygmyError
from pygmy.order import orders
from pygmy.order.orders import BUYS, ORDERS
from pygmy.replication import database, digest
from pygmy.replication.database import SCHEMA_VERSION, backup_path, prepare, schema_file
from pygmy.replication.tables import change
from tests.fakes import InMemoryCluster, result, sync_store
from tests.schema_checks import dump_of, schema_of, version_of
from tests.snapshots import install_snapshot, snapshot_of


def checksum(store) -> str:
    return result(store.status())[2]


def assert_kept_matches_recount(store) -> dict:
    verified = result(store.verify())
    assert verified["match"], verified
    assert verified["checksum"] == checksum(store)
    return verified


def random_catalog_writes(catalog: Catalog, chance: random.Random, count: int) -> None:
    """Decrements and updates (cost, stock, both) of random books; some are refused."""
    for n in range(count):
        item = chance.randint(1, len(SEED) + 1)  # one past the seed: NotFound
        request_id = f"w{n}" if chance.random() < 0.9 else "reused"
        try:
            if chance.random() < 0.6:
                result(catalog.decrement(item, request_id))
            else:
                update = {"stock_delta": chance.randint(-3, 5)}
                if chance.random() < 0.5:
                    update["cost"] = f"{chance.randint(1, 99)}.{chance.randint(0, 99):02d}"
                result(catalog.update(item, update, request_id))
        except PygmyError:
            pass


@pytest.mark.parametrize("seed", range(5))
def test_after_random_writes_snapshots_and_compactions_the_kept_digest_is_a_recount(make_store, seed):
    chance = random.Random(seed)
    primary, backup, rebuilt = make_store("primary"), make_store("backup"), make_store("rebuilt")
    assert_kept_matches_recount(primary)
    applied = 0
    for round in range(6):
        random_catalog_writes(Catalog(primary), chance, 20)
        assert_kept_matches_recount(primary)
        entries = result(primary.read_log(applied, 1000))
        applied = result(backup.apply(entries))[0]
        assert checksum(backup) == checksum(primary)
        assert_kept_matches_recount(backup)
        if chance.random() < 0.5:
            result(primary.compact(chance.randint(0, 10), applied))
            assert_kept_matches_recount(primary)
        if round % 2:
            install_snapshot(rebuilt, snapshot_of(primary))
            assert checksum(rebuilt) == checksum(primary)
            assert_kept_matches_recount(rebuilt)


def test_the_digest_follows_the_rows_not_the_log(make_store):
    first, second = make_store("first"), make_store("second")
    fresh = checksum(first)
    assert fresh == checksum(second)
    result(Catalog(first).decrement(1, "a"))
    assert checksum(first) != fresh
    result(Catalog(first).update(1, {"stock_delta": 1}, "b"))  # the book is as it was
    assert checksum(first) == fresh  # though the log and the requests differ
    assert result(first.status())[0] == 2 and result(second.status())[0] == 0


def test_replicas_with_the_same_rows_agree_whatever_order_the_writes_came_in(make_store):
    one, other = make_store("one"), make_store("other")
    writes = [(item, f"r{item}") for item in (1, 2, 3, 5, 7)]
    for item, request_id in writes:
        result(Catalog(one).decrement(item, request_id))
    for item, request_id in reversed(writes):
        result(Catalog(other).decrement(item, request_id))
    assert result(one.dump())["rows"] == result(other.dump())["rows"]
    assert checksum(one) == checksum(other)


def test_a_row_as_stored_is_hashed_not_as_the_write_reported_it(make_store):
    # A cost given as a number is stored as text (the column's affinity): the
    # digest hashes what the table holds, on the primary and on a backup.
    primary, backup = make_store("primary"), make_store("backup")
    result(Catalog(primary).update(2, {"cost": 12.5}, "float"))
    assert result(Catalog(primary).lookup(2))["cost"] == "12.5"
    assert_kept_matches_recount(primary)
    result(backup.apply(result(primary.read_log(0, 10))))
    assert checksum(backup) == checksum(primary)
    assert_kept_matches_recount(backup)


def test_the_order_tables_are_digested_with_their_text_and_integer_keys(tmp_path, reactor):
    stores = [sync_store(tmp_path / f"{name}.sqlite", (ORDERS, BUYS), None, reactor) for name in ("p", "b")]
    primary, backup = stores
    try:
        chance = random.Random(7)
        for _ in range(40):
            request_id, item = f"buy{chance.randint(0, 15)}", chance.randint(1, 7)
            step = chance.choice(("intent", "record", "refuse"))
            if step == "intent":
                result(primary.write(None, orders._record_intent, item, request_id))
            elif step == "record" and chance.random() < 0.5:
                try:
                    result(primary.write(f"o{request_id}", orders._record, item, request_id))
                except PygmyError:
                    pass
            else:
                result(primary.write(None, orders._refuse, item, request_id, "out_of_stock", "No copy left."))
            assert_kept_matches_recount(primary)
        result(backup.apply(result(primary.read_log(0, 1000))))
        assert result(backup.dump()) == result(primary.dump())
        assert checksum(backup) == checksum(primary)
        assert_kept_matches_recount(backup)
    finally:
        for store in stores:
            store.pool.close()


def test_a_row_changed_behind_the_stores_back_shows_in_the_recount(make_store):
    store = make_store("tampered")
    result(store.read(lambda txn: txn.execute("UPDATE books SET stock = 3 WHERE id = 4")))
    verified = result(store.verify())
    assert not verified["match"]
    assert verified["checksum"] == checksum(store) != verified["recounted"]


def test_recount_and_rebuild_read_the_tables_in_pages(make_store, monkeypatch):
    monkeypatch.setattr(digest, "PAGE", 3)  # seven books: pages of 3, 3 and 1
    store = make_store("paged")
    assert_kept_matches_recount(store)
    result(Catalog(store).decrement(7, "last"))
    pages = result(store.read(lambda txn: [len(page) for page in digest._pages(txn, BOOKS)]))
    assert pages == [3, 3, 1]
    install_snapshot(store, snapshot_of(store))
    assert_kept_matches_recount(store)


def add_books(store, count: int) -> None:
    """C{count} more books, in one write through the store (so the digest follows)."""

    def mutate(txn, seq, created):
        rows = [{"id": 100 + n, "title": f"T{n}", "topic": "more", "cost": "1.00", "stock": n} for n in range(count)]
        BOOKS.put(txn, rows)
        return [change(BOOKS, row) for row in rows]

    result(store.write(None, mutate))


def steps_of_status(store) -> int:
    """How many SQLite virtual-machine steps one C{status} takes."""
    connection = result(store.read(lambda txn: txn._cursor.connection))
    steps = []
    connection.set_progress_handler(lambda: steps.append(1), 1)
    try:
        result(store.status())
    finally:
        connection.set_progress_handler(None, 1)
    return len(steps)


def test_status_costs_the_same_with_seven_rows_and_with_thousands(make_store):
    store = make_store("growing")
    small = steps_of_status(store)
    add_books(store, 3000)
    assert_kept_matches_recount(store)
    assert steps_of_status(store) == small


def test_status_runs_only_lookups_by_key(make_store):
    store = make_store("planned")
    add_books(store, 50)
    connection = result(store.read(lambda txn: txn._cursor.connection))
    statements = []
    connection.set_trace_callback(statements.append)
    try:
        result(store.status())
    finally:
        connection.set_trace_callback(None)
    assert statements
    for statement in statements:
        plan = [row[-1] for row in connection.execute("EXPLAIN QUERY PLAN " + statement)]
        assert plan and all(step.startswith("SEARCH") for step in plan), (statement, plan)


@pytest.fixture
def cluster(tmp_path):
    cluster = InMemoryCluster(tmp_path)
    yield cluster
    cluster.close()


@pytest.mark.parametrize("service", ["catalog", "order"])
def test_admin_verify_reports_the_kept_checksum_and_a_match(cluster, service):
    stub = getattr(cluster, service)
    headers = {"authorization": f"Bearer {cluster.secret}"}
    response = result(stub.get("http://replica/admin/verify", headers=headers))
    assert response.code == 200
    body = json.loads(result(response.content()))
    status = json.loads(result(result(stub.get("http://replica/status")).content()))
    assert body == {"checksum": status["checksum"], "recounted": status["checksum"], "match": True}
    assert len(body["checksum"]) == 64 and int(body["checksum"], 16) >= 0
    assert result(stub.get("http://replica/admin/verify")).code == 401


# The upgrade to schema version 4, which computes the digest of the rows there


def make_v3(path: Path) -> None:
    """A version 3 catalog database whose books are the seed, one of them sold down to 5."""
    connection = sqlite3.connect(path)
    connection.executescript(schema_file("v3.sql") + BOOKS.schema)
    connection.executemany("INSERT INTO books VALUES (?, ?, ?, ?, ?)", SEED)
    connection.execute("UPDATE books SET stock = 5 WHERE id = 3")
    connection.commit()
    connection.close()


def test_the_upgrade_to_4_computes_the_digest_of_the_rows_there(tmp_path):
    path = tmp_path / "catalog.sqlite"
    make_v3(path)
    original = dump_of(path)
    prepare(path, BOOKS.schema, seed, (BOOKS,))
    assert version_of(path) == SCHEMA_VERSION
    assert dump_of(backup_path(path, 3)) == original
    fresh = tmp_path / "fresh.sqlite"
    prepare(fresh, BOOKS.schema, seed, (BOOKS,))
    assert schema_of(path) == schema_of(fresh)
    upgraded, made = sqlite3.connect(path), sqlite3.connect(fresh)
    try:
        assert digest.kept(upgraded, (BOOKS,)) == digest.recount(upgraded, (BOOKS,))
        assert digest.kept(made, (BOOKS,)) == digest.recount(made, (BOOKS,))
        # Book 3 differs, then no longer.
        assert digest.checksum(digest.kept(upgraded, (BOOKS,))) != digest.checksum(digest.kept(made, (BOOKS,)))
        made.execute("UPDATE books SET stock = 5 WHERE id = 3")
        assert digest.checksum(digest.recount(made, (BOOKS,))) == digest.checksum(digest.kept(upgraded, (BOOKS,)))
        assert upgraded.execute("SELECT count(*) FROM row_hashes").fetchone() == (len(SEED),)
    finally:
        upgraded.close()
        made.close()


def test_a_store_opening_a_version_3_file_reports_the_digest_of_its_rows(tmp_path, reactor):
    path = tmp_path / "catalog.sqlite"
    make_v3(path)
    store = sync_store(path, (BOOKS,), seed, reactor)
    try:
        verified = result(store.verify())
        assert verified["match"] and verified["checksum"] == result(store.status())[2]
    finally:
        store.pool.close()


def test_a_failing_python_step_leaves_the_database_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "catalog.sqlite"
    make_v3(path)
    original = dump_of(path)

    def broken(connection, tables):
        raise RuntimeError("no digest today")

    monkeypatch.setitem(database.UPGRADE_STEPS, 4, broken)
    with pytest.raises(RuntimeError, match="no digest today"):
        prepare(path, BOOKS.schema, seed, (BOOKS,))
    assert dump_of(path) == original
    assert version_of(path) == 3
