"""
Group commit keeps the log and the digests exactly as writes one at a time
would.  Writes started in one turn share a transaction, in which the store
keeps the log's head and each table's digest delta in memory and writes
them once, at its end (L{Store._write_all}); a backup applying many
entries at once does the same (L{apply_entries}).  A batch that mixes new
writes, refusals (rolled back to their savepoint after an earlier write of
the batch changed the same row), replays and a reused request id must end
with the same outcomes, log, rows, head and checksum as the same writes one
at a time; its kept digest must be a recount; and a backup that applies the
whole batch in one call must agree.  Real SQLite, no threads.
"""

from __future__ import annotations

import pytest

from pygmy.catalog.books import BOOKS, Catalog, seed
from pygmy.errors import PygmyError
from pygmy.replication.writelog import find_request
from tests.fakes import SyncReactor, TurnReactor, committed, result, sync_store

NEW_BOOK = {"title": "Group Commit", "topic": "databases", "cost": "5.00", "stock": 2}

#: Each a write of the batch, in order, with what it must come to.
WRITES = (
    (lambda c: c.decrement(1, "d1"), "seq 1"),
    (lambda c: c.update(2, {"stock_delta": -1000}, "empty-2"), "seq 2"),
    (lambda c: c.decrement(2, "d2"), "OutOfStock"),  # book 2 was emptied by the write before
    (lambda c: c.decrement(99, "d99"), "NotFound"),
    (lambda c: c.decrement(1, "d1"), "replay of 1"),
    (lambda c: c.update(1, {"cost": "1.00"}, "d1"), "Conflict"),
    (lambda c: c.add(NEW_BOOK, "add-1"), "seq 3"),
    (lambda c: c.update(3, {"stock_delta": 5, "cost": "2.50"}, "u3"), "seq 4"),
    (lambda c: c.decrement(8, "d8"), "seq 5"),  # the book added in this batch
    (lambda c: c.decrement(8, "d8b"), "seq 6"),
    (lambda c: c.decrement(8, "d8c"), "OutOfStock"),
    (lambda c: c.decrement(3, "d3"), "seq 7"),
)


def described(outcome) -> str:
    if isinstance(outcome, str):
        return outcome
    return f"replay of {outcome.seq}" if outcome.replayed else f"seq {outcome.seq}"


def refusal(failure) -> str:
    failure.trap(PygmyError)
    return type(failure.value).__name__


def state(store) -> dict:
    """Everything the batch must leave as one-at-a-time writes do."""
    verified = result(store.verify())
    assert verified["match"], verified
    return {
        "status": result(store.status()),
        "log": result(store.read_log(0, 1000)),
        "rows": result(store.dump()),
    }


@pytest.fixture
def stores(tmp_path):
    made = []

    def make(name, reactor):
        made.append(sync_store(tmp_path / f"{name}.sqlite", (BOOKS,), seed, reactor))
        return made[-1]

    yield make
    for store in made:
        store.pool.close()


def test_a_mixed_batch_ends_as_the_same_writes_one_at_a_time(stores):
    alone = stores("alone", SyncReactor())
    one_by_one = []
    for write, _ in WRITES:
        try:
            one_by_one.append(described(result(write(Catalog(alone)))))
        except PygmyError as e:
            one_by_one.append(type(e).__name__)
    assert one_by_one == [expected for _, expected in WRITES]

    reactor = TurnReactor()
    together = stores("together", reactor)
    calls = [write(Catalog(together)).addErrback(refusal) for write, _ in WRITES]
    outcomes, transactions = committed(together, reactor, calls)
    assert [described(outcome) for outcome in outcomes] == one_by_one
    assert transactions == 1, f"the batch took {transactions} transactions"
    assert state(together) == state(alone)
    applied_seq, last_view, _ = result(together.status())
    assert (applied_seq, last_view) == (7, 0)


def test_a_backup_applying_the_batch_at_once_agrees(stores):
    reactor = TurnReactor()
    primary = stores("primary", reactor)
    committed(primary, reactor, [write(Catalog(primary)).addErrback(refusal) for write, _ in WRITES])
    entries = result(primary.read_log(0, 1000))
    backup = stores("backup", SyncReactor())
    assert result(backup.apply(entries)) == (7, 0)
    assert state(backup) == state(primary)
    # Applied again, the entries are checked, not applied twice; past a gap, nothing is.
    assert result(backup.apply(entries)) == (7, 0)
    later = stores("later", SyncReactor())
    assert result(later.apply(entries[:2] + entries[3:])) == (2, 0)
    assert result(later.verify())["match"]


def test_the_request_a_write_remembers_is_its_entry(stores):
    reactor = TurnReactor()
    store = stores("store", reactor)
    (write,), _ = committed(store, reactor, [Catalog(store).add(NEW_BOOK, "add-1")])
    assert result(store.read(find_request, "add-1")) == write.entry
