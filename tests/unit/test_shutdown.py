"""
SIGTERM of a replica (its services stopped) answers every write: the one
being committed finishes, the queued ones fail with L{Unavailable}, the
ones waiting for a backup fail with L{NotPrimary}; no Deferred stays
unfired and the pool closes only after the commit.
"""

import pytest
from twisted.internet.testing import MemoryReactorClock

from pygmy.errors import NotPrimary, Unavailable
from pygmy.order.orders import BUYS, ORDERS
from pygmy.replication.store import Store
from pygmy.replication.tables import change
from tests.fakes import PoolThread, result
from tests.held import HeldPool


class Reactor(MemoryReactorClock):
    def callFromThread(self, f, *args, **kwargs):
        PoolThread.call_from_thread(f, *args, **kwargs)


class ClosablePool(HeldPool):
    started = True

    def stop(self):
        self.stopped = True


def put_order(txn, seq, created, item_id):
    row = {"id": seq, "item_id": item_id, "created": created, "request_id": f"r{seq}"}
    ORDERS.put(txn, [row])
    return [change(ORDERS, row)]


@pytest.fixture
def store(tmp_path):
    reactor = Reactor()
    store = Store(tmp_path / "order.sqlite", (ORDERS, BUYS), None, reactor)
    store.pool.threadpool = ClosablePool()
    store.reactor = reactor
    store.startService()
    return store


def test_stopping_finishes_the_commit_fails_the_queue_then_closes(store):
    first = store.write("a", put_order, 1)
    store.reactor.advance(0)
    assert len(store.pool.threadpool.jobs) >= 1
    queued = store.write("b", put_order, 2)
    stopped = store.stopService()
    with pytest.raises(Unavailable, match="shutting down"):
        result(queued)
    assert not stopped.called and not first.called
    store.pool.threadpool.run_all()
    assert result(first).seq == 1
    assert stopped.called
    with pytest.raises(Unavailable):
        result(store.write("c", put_order, 3))
    assert store.reactor.getDelayedCalls() == []


def test_stopping_an_idle_store_closes_at_once(store):
    stopped = store.stopService()
    assert stopped.called


def test_a_stopping_primary_fails_the_writes_waiting_for_a_backup():
    from pygmy.replication.primary import BackupLink

    link = BackupLink.__new__(BackupLink)
    link.closed, link.acked, link._waiters = False, None, []
    link.want = lambda seq: None
    waiting = link.wait_for(5)
    link.close(NotPrimary("no longer the primary"))
    with pytest.raises(NotPrimary):
        result(waiting)
