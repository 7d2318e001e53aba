"""
A primary sends a batch's entries to its backups while its own commit runs
(L{pygmy.replication.store.Store.write}'s C{logged},
L{pygmy.replication.primary.Replicator.write}), acknowledges a write only
once both are done, and steps down if its commit fails after the entries
went out, so that no write the backup holds but the primary lost is ever
acknowledged.

The pools run their interactions synchronously, but the reactor queues
what the pool's thread hands it (C{callFromThread}) until L{settle}, as a
real reactor would until its next turn: so a test can see what happens
between the entry being sent and the commit being reported.
"""

from __future__ import annotations

import sqlite3

import pytest
from twisted.enterprise.adbapi import Connection

from pygmy.errors import NotPrimary
from tests.fakes import SyncReactor, result
from tests.replication_pair import Pair


class QueuedReactor(SyncReactor):
    """A L{SyncReactor} whose C{callFromThread} waits for L{settle}."""

    def __init__(self):
        super().__init__()
        self.from_threads = []
        #: The C{StubTreq}s of the in-memory remotes, flushed by L{settle}.
        self.stubs = []

    def callFromThread(self, f, *args, **kwargs):
        self.from_threads.append((f, args, kwargs))

    def run_one(self):
        """Run the oldest call handed over from a thread."""
        f, args, kwargs = self.from_threads.pop(0)
        f(*args, **kwargs)

    def settle(self):
        """
        Run every call handed over, and those they hand over, in order;
        deliver the in-memory HTTP answers they make (L{StubTreq.flush}).
        """
        while True:
            while self.from_threads:
                self.run_one()
            for stub in self.stubs:
                stub.flush()
            if not self.from_threads:
                return


@pytest.fixture
def reactor():
    return QueuedReactor()


@pytest.fixture
def pair(make_store, reactor):
    pair = Pair(make_store, reactor)
    reactor.stubs = [pair.routes[a].remotes[b]._http.client for a, b in ("AB", "BA")]
    pair.view(1, "A", ["B"])
    reactor.settle()
    return pair


def applied_on_disk(store) -> int:
    """The log position in C{store}'s file, read past the store."""
    with sqlite3.connect(store.path) as connection:
        return int(connection.execute("SELECT value FROM meta WHERE key = 'applied_seq'").fetchone()[0])


def stock(pair, name, item=1) -> int:
    """Book C{item}'s stock in replica C{name}'s file."""
    with sqlite3.connect(pair.stores[name].path) as connection:
        return connection.execute("SELECT stock FROM books WHERE id = ?", (item,)).fetchone()[0]


def status(pair, name):
    d = pair.stores[name].status()
    pair.reactor.settle()
    return result(d)


def test_the_entry_goes_to_the_backup_before_the_commit_is_reported(pair, reactor):
    pending = pair.buy("r1")
    # The primary's transaction ran; what it hands the reactor is queued:
    # first the entry to send, then the commit's outcome.
    assert len(reactor.from_threads) == 2 and not pending.called
    reactor.run_one()
    for stub in reactor.stubs:
        stub.flush()
    assert applied_on_disk(pair.stores["B"]) == 1, "the backup applied the entry before the primary's commit returned"
    assert pair.nodes["A"].applied_seq == 0 and not pending.called
    reactor.settle()
    assert result(pending).seq == 1
    assert status(pair, "A") == status(pair, "B")
    assert pair.nodes["A"].replicator.links["B"].acked == 1


def test_a_write_is_acknowledged_only_once_the_backup_applied_it_too(pair, reactor):
    pair.view(2, "A", ["B"], to="B")  # B refuses view 1: the entry sent is not applied
    pending = pair.buy("r1")
    reactor.settle()
    assert pair.nodes["A"].applied_seq == 1, "committed here"
    assert not pending.called, "but not acknowledged: the backup does not hold it"
    pair.view(2, "A", ["B"], to="A")
    reactor.advance(0.25)
    reactor.settle()
    assert result(pending).seq == 1
    assert status(pair, "A") == status(pair, "B")


class FailingCommit(Connection):
    """An adbapi connection whose commits fail (a full or broken disk)."""

    def commit(self):
        raise sqlite3.OperationalError("disk I/O error")


def test_a_commit_that_fails_after_sending_steps_the_primary_down(pair, reactor):
    halted = []
    node = pair.nodes["A"]
    node.halt = lambda: halted.append(True)
    pair.stores["A"].pool.connectionFactory = FailingCommit
    pending = pair.buy("r1")
    reactor.settle()
    # The backup holds the write; the primary does not; nobody was told it happened.
    assert applied_on_disk(pair.stores["B"]) == 1 and stock(pair, "B") == 999
    with pytest.raises(NotPrimary, match="stepped down"):
        result(pending)
    assert halted == [True], "the primary stops its process"
    assert node.role != "primary" and node.replicator is None
    with pytest.raises(NotPrimary):
        result(pair.buy("r2"))
    pair.stores["A"].pool.connectionFactory = Connection
    assert status(pair, "A")[0] == 0 and stock(pair, "A") == 1000
    # The next view makes B primary: its extra entry is that view's history,
    # and A, back, gets it from B.
    pair.view(2, "B", [])
    reactor.settle()
    for _ in range(20):
        reactor.advance(0.5)
        reactor.settle()
    assert status(pair, "A")[0] == 1 and status(pair, "A") == status(pair, "B")
    assert stock(pair, "A") == 999
