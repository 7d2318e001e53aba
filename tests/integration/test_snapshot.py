"""
A snapshot of hundreds of pages on real twistd processes: catalog A holds
200,000 books and a compacted log, catalog B starts empty and must install
A's snapshot.  B is killed (C{kill -9}) in the middle of its install; its
database then says the install is unfinished, and B, restarted while
writes go on at A, does not catch up from its partial rows but installs a
fresh snapshot, then joins and agrees with A (rows, position, digest).
The streamed C{GET /admin/dump} of 200,007 rows reads as one document.

A's database is made before the cluster starts, as a primary's stands after
many writes and a compaction: the rows, their digest, and a log position
with no entry left in the log (so B's empty log cannot be caught up from
it).
"""

import signal
import sqlite3
import time

import pytest
import pytest_twisted
from twisted.internet.defer import ensureDeferred

from pygmy.catalog.books import BOOKS, seed
from pygmy.replication import digest
from pygmy.replication.writelog import set_meta
from pygmy.testing import Cluster, converged, get_json, settled
from tests.bulk_writes import write_many
from tests.fakes import SyncReactor, result, sync_store
from tests.integration.load import AUTH

pytestmark = pytest.mark.integration
BOOKS_ADDED = 200_000
#: The log position of A's database: that many writes, all compacted away.
WRITTEN = 200


def fill(path, count: int) -> None:
    """Make the catalog database at C{path} with C{count} books more than the seed."""
    store = sync_store(path, (BOOKS,), seed, SyncReactor())

    def add(txn):
        for start in range(100, 100 + count, 5000):
            BOOKS.put(
                txn,
                (
                    {"id": n, "title": f"Bulk book {n}", "topic": f"bulk {n % 13}", "cost": "3.50", "stock": n % 9}
                    for n in range(start, min(start + 5000, 100 + count))
                ),
            )
        digest.rebuild(txn, (BOOKS,))
        set_meta(txn, "applied_seq", WRITTEN)

    try:
        result(store.read(add))
        assert result(store.verify())["match"]
    finally:
        store.pool.close()


def install_state(path) -> tuple[int, bool]:
    """How many books the database at C{path} holds, and whether it says an install is unfinished."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        books = connection.execute("SELECT count(*) FROM books").fetchone()[0]
        marked = connection.execute("SELECT value FROM meta WHERE key = 'installing'").fetchone()
        return books, marked is not None and marked[0] == 1
    finally:
        connection.close()


def kill_mid_install(cluster, path, within: float = 60.0) -> tuple[int, bool]:
    """Wait until B's install has written some pages (not all), then C{kill -9} it."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            books, marked = install_state(path)
        except sqlite3.OperationalError:  # not made yet, or busy
            books, marked = 0, False
        if marked and books > 7:
            cluster.stop("catalog:B", signal.SIGKILL)
            return install_state(path)
        time.sleep(0.02)
    raise AssertionError(f"B did not start installing within {within}s:\n{cluster.log_tail('catalog:B', 40)}")


@pytest_twisted.ensureDeferred
async def test_a_replica_killed_mid_install_installs_afresh_and_agrees(tmp_path, http):
    cluster = Cluster(tmp_path, log_keep=100, compact_interval=0.2)
    data = cluster.config.cluster.data_dir
    data.mkdir(parents=True, exist_ok=True)
    fill(data / "catalog-A.sqlite", BOOKS_ADDED)
    try:
        cluster.start_all()
        books, marked = kill_mid_install(cluster, data / "catalog-B.sqlite")
        # What a crash left: pages committed, the mark still set.
        assert marked and 7 < books < 7 + BOOKS_ADDED, (books, marked)
        cluster.start("catalog", "B")
        primary_url = cluster.replica_url("catalog", "A")
        writes = ensureDeferred(write_many(http, primary_url, 2000, clients=8))
        await writes
        statuses = await converged(cluster, "catalog", within=90)
        assert statuses[0]["applied_seq"] == WRITTEN + 2000
        await settled(cluster, within=30)
        log = cluster.log_tail("catalog:B", 400)
        assert "install did not finish; installing a fresh one" in log, log
        assert log.count("installed a snapshot") == 1, log
        for name in ("A", "B"):
            status, verified = get_json(cluster.replica_url("catalog", name) + "/admin/verify", AUTH)
            assert status == 200 and verified["match"], verified
        dumps = [get_json(cluster.replica_url("catalog", name) + "/admin/dump", AUTH) for name in ("A", "B")]
        assert dumps[0] == dumps[1] and dumps[0][0] == 200
        ids = [row["id"] for row in dumps[0][1]["rows"]]
        assert ids == list(range(1, 8)) + list(range(100, 100 + BOOKS_ADDED))
    finally:
        cluster.stop_all()
