"""
The write log and replication without sockets: real SQLite stores whose
interactions complete at once (L{tests.fakes.sync_store}), and two catalog
replicas A and B whose nodes call each other's L{ReplicaApp} in memory
through C{StubTreq} (L{tests.replication_pair.Pair}).  The catalog's cache
push after each write is in test_replication_push.py.
"""

from __future__ import annotations

import pytest
from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import capturedLogs

from pygmy.catalog.books import Catalog
from pygmy.errors import Diverged, NotPrimary, StaleView
from tests.fakes import SyncReactor, result, stub_remote
from tests.replication_pair import Pair
from tests.snapshots import install_snapshot, snapshot_of


def written(store, count, view=1, start=0):
    """Write C{count} decrements of book 1 straight to C{store}; their entries."""
    store.view = view
    return [result(Catalog(store).decrement(1, f"w{start + i}")).entry for i in range(count)]


def stock(store, item=1):
    return result(Catalog(store).lookup(item))["stock"]


# The log of one store


def test_apply_in_seq_order_ignores_duplicates_and_stops_at_a_gap(make_store):
    source, target = make_store("source"), make_store("target")
    e1, e2, e3, e4 = written(source, 4)
    assert result(target.apply([e2, e1])) == (0, 0)
    assert result(target.apply([e1, e3])) == (1, 1)
    assert result(target.apply([e1, e2, e2, e3])) == (3, 1)
    assert stock(target) == 997
    assert result(target.read_log(0, 10)) == [e1, e2, e3]
    assert result(target.apply([e4]))[0] == 4
    assert result(target.status()) == result(source.status())


def test_apply_refuses_an_entry_from_another_view(make_store):
    source, other, target = make_store("source"), make_store("other"), make_store("target")
    result(target.apply(written(source, 2, view=1)))
    (clash,) = written(other, 1, view=2)
    with pytest.raises(Diverged):
        result(target.apply([clash]))
    assert result(target.status())[:2] == (2, 1)
    assert stock(target) == 998


def test_entries_after(make_store):
    store = make_store("log")
    entries = written(store, 3, view=1) + written(store, 2, view=2, start=3)
    assert result(store.entries_after(2, 1, 10)) == (entries[2:], 5)
    assert result(store.entries_after(2, 1, 1)) == (entries[2:3], 5)
    assert result(store.entries_after(0, 0, 2)) == (entries[:2], 5)
    assert result(store.entries_after(5, 2, 10)) == ([], 5)
    # Diverged: our entry 2 is from view 1, ours at the head from view 2.
    assert result(store.entries_after(2, 2, 10)) == (None, 5)
    assert result(store.entries_after(5, 1, 10)) == (None, 5)
    # Ahead of us: it holds entries we never had.
    assert result(store.entries_after(6, 2, 10)) == (None, 5)


def test_entries_after_a_compacted_position_needs_a_snapshot(make_store):
    store = make_store("log")
    entries = written(store, 5)
    assert result(store.compact(2, 5)) == 3
    assert result(store.entries_after(0, 0, 10)) == (None, 5)
    assert result(store.entries_after(2, 1, 10)) == (None, 5)
    assert result(store.entries_after(4, 1, 10)) == (entries[4:], 5)


@pytest.mark.parametrize(
    "keep, below, left",
    [(3, 10, [8, 9, 10]), (3, 5, [6, 7, 8, 9, 10]), (0, 10, []), (20, 10, list(range(1, 11)))],
)
def test_compact_keeps_the_last_entries_and_what_backups_need(make_store, keep, below, left):
    store = make_store("log")
    written(store, 10)
    assert result(store.compact(keep, below)) == 10 - len(left)
    assert [e["seq"] for e in result(store.read_log(0, 100))] == left
    assert result(store.status())[0] == 10


def test_snapshot_installs_the_same_state_and_the_log_goes_on(make_store):
    source, target = make_store("source"), make_store("target")
    written(source, 3, view=2)
    written(target, 5, view=1, start=100)
    assert install_snapshot(target, snapshot_of(source)) == (3, 2)
    assert result(target.status()) == result(source.status())
    assert result(target.read_log(0, 10)) == []
    (next_entry,) = written(source, 1, view=2, start=3)
    assert result(target.apply([next_entry])) == (4, 2)
    assert result(target.status()) == result(source.status())


# Two replicas of the catalog


@pytest.fixture
def pair(make_store, reactor):
    return Pair(make_store, reactor)


def test_write_is_on_the_backup_before_it_returns(pair):
    pair.view(1, "A", ["B"])
    assert (pair.nodes["A"].role, pair.nodes["B"].role) == ("primary", "backup")
    write = result(pair.buy("r1"))
    assert write.seq == 1 and write.row["stock"] == 999
    assert pair.status("B") == pair.status("A")
    assert pair.status("B")[:2] == (1, 1)
    assert pair.nodes["B"].applied_seq == 1
    assert stock(pair.stores["B"]) == 999
    assert pair.nodes["A"].replicator.links["B"].acked == 1


def test_backup_refuses_an_older_view_and_the_write_waits(pair):
    pair.view(1, "A", ["B"])
    pair.view(2, "A", ["B"], to="B")
    with pytest.raises(StaleView):
        result(pair.nodes["B"].apply(1, []))
    with pytest.raises(StaleView):
        result(pair.routes["A"].remotes["B"].post("/replication/apply", {"view": 1, "entries": []}))
    pending = pair.buy("r1")
    pair.reactor.advance(1.0)
    assert not pending.called
    assert pair.status("B")[0] == 0
    pair.view(2, "A", ["B"], to="A")
    pair.reactor.advance(0.25)
    assert result(pending).seq == 1
    assert pair.status("B") == pair.status("A")


def test_missed_writes_are_caught_up_from_the_log_then_joined(pair):
    pair.view(1, "A", [], to="A")
    for i in range(3):
        result(pair.buy(f"r{i}"))
    assert pair.status("B")[0] == 0
    pair.view(1, "A", [], to="B")
    node_b, replicator = pair.nodes["B"], pair.nodes["A"].replicator
    assert node_b.role == "recovering"
    assert node_b.applied_seq == 3
    assert pair.status("B") == pair.status("A")
    assert replicator.links["B"].joining
    assert pair.heartbeat.synced() == [b"SYNCED catalog B 3"]
    # A write while B waits to enter the view still reaches it.
    assert result(pair.buy("r3")).seq == 4
    assert pair.status("B") == pair.status("A")
    pair.view(2, "A", ["B"])
    assert node_b.role == "backup" and not replicator.links["B"].joining
    pair.reactor.advance(2.0)
    assert not node_b.catchup.running
    assert pair.reactor.getDelayedCalls() == []
    result(pair.buy("r4"))
    assert pair.status("B") == pair.status("A")
    assert pair.status("B")[0] == 5 and stock(pair.stores["B"]) == 995


def test_compacted_log_is_caught_up_with_a_snapshot(pair):
    pair.view(1, "A", [], to="A")
    for i in range(5):
        result(pair.buy(f"r{i}"))
    assert result(pair.stores["A"].compact(1, 5)) == 4
    pair.view(1, "A", [], to="B")
    assert pair.nodes["B"].applied_seq == 5
    assert pair.status("B") == pair.status("A")
    assert result(pair.stores["B"].read_log(0, 10)) == []
    assert pair.heartbeat.synced() == [b"SYNCED catalog B 5"]


def test_diverged_log_is_replaced_with_a_snapshot(pair):
    # B wrote two entries in view 1 that were never acknowledged; A went on
    # in view 2 without them.
    written(pair.stores["B"], 2, view=1, start=100)
    pair.nodes["B"].advanced(2, 1)
    pair.view(2, "A", [], to="A")
    for i in range(3):
        result(pair.buy(f"r{i}"))
    pair.view(2, "A", [], to="B")
    assert pair.nodes["B"].applied_seq == 3 and pair.nodes["B"].last_view == 2
    assert pair.status("B") == pair.status("A")
    assert pair.heartbeat.synced() == [b"SYNCED catalog B 3"]


def test_backup_holding_an_unacknowledged_entry_does_not_ack_another(pair):
    # With three replicas: C, primary of view 1, wrote seq 3 and reached only
    # B before dying; the front end (on beats a little stale) made A primary
    # of view 2 with B as a backup.  A's seq 3 is not B's seq 3.
    for i in range(2):
        result(pair.stores["A"].apply(written(pair.stores["B"], 1, view=1, start=i)))
    lost = result(Catalog(pair.stores["B"]).decrement(3, "lost")).entry
    pair.nodes["A"].advanced(2, 1)
    pair.nodes["B"].advanced(3, 1)
    pair.view(2, "A", ["B"])
    write = pair.buy("r1")
    assert write.called, "the backup neither took the write nor left the view"
    mine = result(pair.stores["A"].read_log(2, 1))
    assert mine[0]["seq"] == 3 and mine[0] != lost
    # Acknowledged means every backup holds this very entry.
    assert result(pair.stores["B"].read_log(2, 1)) == mine
    assert pair.status("B") == pair.status("A")


def test_the_largest_replication_batch_fits_a_replica_body():
    """
    BATCH entries as large as they can be (request ids of MAX_REQUEST_ID
    characters that JSON must escape) fit in one request to a backup.
    """
    from pygmy.net.validate import MAX_REQUEST_ID
    from pygmy.net.web import json_bytes
    from pygmy.replication.primary import BATCH
    from pygmy.replication.replica import MAX_REPLICA_BODY

    request_id = '"' * MAX_REQUEST_ID
    order = {"id": 2**62, "item_id": 2**62, "created": "2026-11-21T19:35:00.123Z", "request_id": request_id}
    book = {"id": 2**62, "title": "x" * 60, "topic": "y" * 30, "cost": "999999999.99", "stock": 10**12}
    entries = [
        {
            "seq": 2**62,
            "view": 2**40,
            "request_id": request_id,
            "created": order["created"],
            "fingerprint": "f" * 32,
            "changes": [{"table": "orders", "row": order}, {"table": "books", "row": book}],
        }
    ] * BATCH
    body = json_bytes({"view": 2**40, "primary": "a-replica-name", "entries": entries})
    assert len(body) <= MAX_REPLICA_BODY, len(body)


def test_a_catch_up_that_fails_unexpectedly_is_tried_again(pair):
    """A bug or an unforeseen error must not leave a replica recovering for good."""
    pair.view(1, "A", [], to="A")
    result(pair.buy("r0"))
    primary = pair.nodes["B"].peers.remotes["A"]
    real_get, calls = primary.get, []

    async def flaky_get(path, params=None):
        calls.append(path)
        if len(calls) == 1:
            raise RuntimeError("unforeseen")
        return await real_get(path, params)

    primary.get = flaky_get
    with capturedLogs() as events:
        pair.view(1, "A", [], to="B")
    assert pair.nodes["B"].role == "recovering" and pair.nodes["B"].applied_seq == 0
    assert [e for e in events if e.get("log_failure") is not None]
    pair.reactor.advance(pair.nodes["B"].interval)
    assert pair.nodes["B"].applied_seq == 1
    assert pair.status("B") == pair.status("A")


def test_a_timeout_while_connecting_is_replica_down():
    """treq's timeout during the TCP connect fails with ConnectingCancelledError."""
    from types import SimpleNamespace

    from twisted.internet.defer import fail
    from twisted.internet.error import ConnectingCancelledError

    from pygmy.net.remote import ReplicaDown

    remote = stub_remote(None, "catalog", "A", SyncReactor())
    remote._http.client = SimpleNamespace(request=lambda *a, **k: fail(ConnectingCancelledError(None)))
    with pytest.raises(ReplicaDown, match="did not answer"):
        result(remote.get("/status"))


def test_a_write_its_caller_cancels_still_reaches_every_backup(pair):
    """Cancelled while waiting for the backup: the write runs on, and the backup converges."""
    pair.view(1, "A", ["B"])
    pair.view(2, "A", ["B"], to="B")
    pending = pair.buy("r1")
    pair.reactor.advance(1.0)
    assert not pending.called
    pending.cancel()
    with pytest.raises(CancelledError):
        result(pending)
    pair.view(2, "A", ["B"], to="A")
    pair.reactor.advance(0.25)
    assert pair.status("B") == pair.status("A")
    assert pair.status("A")[0] == 1 and stock(pair.stores["B"]) == 999
    assert pair.nodes["A"].replicator.links["B"].acked == 1
    again = result(pair.buy("r1"))
    assert again.seq == 1


def test_a_write_committed_after_the_primary_lost_its_view_is_not_acknowledged(pair):
    """Queued while primary, committed after a view made B primary: NotPrimary, not an ack."""
    pair.view(1, "A", ["B"])
    store = pair.stores["A"]
    real, held = store.write, []

    def hold(*args, **kwargs):
        d = Deferred()
        held.append((args, kwargs, d))
        return d

    store.write = hold
    pending = pair.buy("r1")
    pair.view(2, "B", ["A"])
    store.write = real
    args, kwargs, d = held.pop()
    real(*args, **kwargs).chainDeferred(d)
    with pytest.raises(NotPrimary):
        result(pending)
