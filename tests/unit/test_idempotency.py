"""
Request ids outlive log compaction: the C{requests} table answers a replay
whose log entry is gone, on the primary, on a backup that applied the
entry, and on a replica rebuilt from a snapshot; compaction forgets only
the ids older than the window, and never moves the checksum.  Real SQLite,
no threads.
"""

import sqlite3
from types import SimpleNamespace

import pytest
from twisted.internet.defer import succeed
from twisted.internet.task import Clock

from pygmy.catalog.books import SEED, Catalog
from pygmy.errors import Conflict
from pygmy.replication.node import Node
from pygmy.replication.tables import utc_timestamp
from tests.fakes import result
from tests.snapshots import install_snapshot, snapshot_of

#: The stock book 2 starts with.
STOCK = SEED[1][4]


def buy_then_bury(store, key="key", others=5):
    """Decrement book 2 under C{key}, write C{others} more, compact the log to one entry."""
    first = result(Catalog(store).decrement(2, key))
    for n in range(others):
        result(Catalog(store).update(1, {"stock_delta": 1}, f"other-{n}"))
    result(store.compact(1, 10_000))
    assert first.seq not in [entry["seq"] for entry in result(store.read_log(0, 100))]
    return first


def stock(store, item_id=2):
    return result(Catalog(store).lookup(item_id))["stock"]


def requests_of(store):
    connection = sqlite3.connect(store.path)
    try:
        return [row[0] for row in connection.execute("SELECT request_id FROM requests ORDER BY seq")]
    finally:
        connection.close()


def test_a_request_id_replays_after_its_log_entry_is_compacted(make_store):
    store = make_store("a")
    before_compaction = result(Catalog(store).decrement(2, "early"))
    assert result(Catalog(store).decrement(2, "early")).replayed
    first = buy_then_bury(store, "key")
    head = result(store.status())[0]
    again = result(Catalog(store).decrement(2, "key"))
    assert again.replayed and again.entry == first.entry
    assert stock(store) == STOCK - 2  # "early" and "key", each once
    assert result(store.status())[0] == head
    # The same answer whether or not the log still holds the entry.
    replayed = result(Catalog(store).decrement(2, "early"))
    assert replayed.replayed and replayed.entry == before_compaction.entry


def test_another_request_under_a_compacted_id_is_still_a_conflict(make_store):
    store = make_store("a")
    buy_then_bury(store, "key")
    head = result(store.status())
    with pytest.raises(Conflict):
        result(Catalog(store).decrement(3, "key"))
    with pytest.raises(Conflict):
        result(Catalog(store).update(2, {"stock_delta": 1}, "key"))
    assert result(store.status()) == head
    assert stock(store, 3) == SEED[2][4]


def test_an_update_replays_after_compaction(make_store):
    store = make_store("a")
    first = result(Catalog(store).update(4, {"stock_delta": 3}, "restock"))
    buy_then_bury(store, "other-key")
    again = result(Catalog(store).update(4, {"stock_delta": 3}, "restock"))
    assert again.replayed and again.entry == first.entry
    assert stock(store, 4) == SEED[3][4] + 3


def test_a_backup_that_applied_the_entry_replays_it(make_store):
    primary, backup = make_store("a"), make_store("b")
    first = result(Catalog(primary).decrement(2, "key"))
    for n in range(3):
        result(Catalog(primary).update(1, {"stock_delta": 1}, f"other-{n}"))
    result(backup.apply(result(primary.read_log(0, 100))))
    result(backup.compact(1, 10_000))
    assert result(backup.read_log(0, 100))[0]["seq"] == 4
    # The backup is promoted: the same key again is the same answer.
    again = result(Catalog(backup).decrement(2, "key"))
    assert again.replayed and again.entry == first.entry
    assert stock(backup) == STOCK - 1
    with pytest.raises(Conflict):
        result(Catalog(backup).decrement(5, "key"))


def test_a_snapshot_carries_the_remembered_requests(make_store):
    primary, rebuilt = make_store("a"), make_store("b")
    first = buy_then_bury(primary, "key")
    result(Catalog(rebuilt).decrement(6, "only-on-the-rebuilt-one"))
    snapshot = snapshot_of(primary)
    assert [entry["request_id"] for entry in snapshot["requests"]][:2] == ["key", "other-0"]
    install_snapshot(rebuilt, snapshot)
    assert requests_of(rebuilt) == requests_of(primary)
    again = result(Catalog(rebuilt).decrement(2, "key"))
    assert again.replayed and again.entry == first.entry
    assert result(rebuilt.status()) == result(primary.status())
    # What the rebuilt replica had remembered of its old history is gone with it.
    assert not result(Catalog(rebuilt).decrement(6, "only-on-the-rebuilt-one")).replayed


def test_a_snapshot_without_requests_installs_none(make_store):
    primary, rebuilt = make_store("a"), make_store("b")
    buy_then_bury(primary, "key")
    snapshot = snapshot_of(primary)
    del snapshot["requests"]
    install_snapshot(rebuilt, snapshot)
    assert requests_of(rebuilt) == []


def test_a_write_without_a_request_id_remembers_nothing(make_store):
    store = make_store("a")
    result(store.write(None, lambda txn, seq, created: []))
    assert requests_of(store) == []


def test_pruning_forgets_only_ids_older_than_the_window(make_store, reactor):
    store = make_store("a")
    result(Catalog(store).decrement(2, "old"))
    reactor.advance(100)
    result(Catalog(store).decrement(2, "new"))
    checksum = result(store.status())
    # The log still holds both entries: nothing is forgotten yet.
    result(store.compact(10, 10_000, utc_timestamp(50)))
    assert requests_of(store) == ["old", "new"]
    result(store.compact(0, 10_000, utc_timestamp(50)))
    assert requests_of(store) == ["new"]
    assert result(store.status()) == checksum
    assert result(Catalog(store).decrement(2, "new")).replayed
    # Past the window the id is new again.
    assert not result(Catalog(store).decrement(2, "old")).replayed
    assert stock(store) == STOCK - 3


def test_compaction_without_a_window_forgets_nothing(make_store):
    store = make_store("a")
    buy_then_bury(store, "key")
    assert requests_of(store)[0] == "key"


def test_the_checksum_leaves_the_requests_out(make_store):
    primary, other = make_store("a"), make_store("b")
    result(Catalog(primary).decrement(2, "key"))
    snapshot = snapshot_of(primary)
    snapshot["requests"] = []
    install_snapshot(other, snapshot)
    assert requests_of(primary) == ["key"] and requests_of(other) == []
    assert result(other.status()) == result(primary.status())


class RecordingStore:
    """Records what L{Node.compact} asks of its store."""

    def __init__(self):
        self.calls = []

    def compact(self, *args):
        self.calls.append(args)
        return succeed(0)


@pytest.mark.parametrize("window, now, cutoff", [(60.0, 1000.0, 940.0), (86400.0, 1000.0, 0.0)])
def test_the_node_compacts_with_its_window(window, now, cutoff):
    clock = Clock()
    clock.advance(now)
    replica = SimpleNamespace(service="catalog", name="A", label="catalog:A")
    store = RecordingStore()
    node = Node(replica, store, {"catalog": None}, clock, interval=0.5, log_keep=7, idempotency_keep=window)
    node.applied_seq = 12
    result(node.compact())
    assert store.calls == [(7, 12, utc_timestamp(cutoff))]
