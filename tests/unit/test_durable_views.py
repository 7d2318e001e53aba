"""
Durable views (DESIGN.md section 6): the front end's L{Monitor} stores each
view before it pushes it, and a monitor that starts begins from the stored
views, never promoting a replica outside the stored in-sync set.  Driven
without sockets: a L{Clock}, plain objects for the heartbeat connections and
a views store whose stores the test completes or fails.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from pygmy.config import load
from pygmy.coordination.local import FileViewStore, read_views
from pygmy.coordination.store import StoredView, ViewStoreError
from pygmy.frontend.monitor import Monitor
from tests.fakes import SyncReactor, config_text
from tests.held import HeldReactor


class HeldStore:
    """A views store whose stores wait for the test; C{views} is what it holds."""

    def __init__(self, views=None):
        self.views = dict(views or {})
        self.pending: list[tuple[str, StoredView, Deferred]] = []

    def load(self):
        return succeed(dict(self.views))

    def store(self, service, view):
        d = Deferred()
        self.pending.append((service, view, d))
        return d

    def watch(self, callback):
        pass

    def complete(self):
        while self.pending:
            service, view, d = self.pending.pop(0)
            self.views[service] = view
            d.callback(None)

    def fail(self):
        while self.pending:
            _, _, d = self.pending.pop(0)
            d.errback(ViewStoreError("disk full"))


class Routes:
    """Records the views the monitor hands the front end's own routes."""

    def __init__(self):
        self.views = []

    def update(self, number, primary, backups):
        self.views.append((number, primary, list(backups)))


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "config.ini"
    path.write_text(config_text())
    return load(path)


def connection():
    sent = []
    return SimpleNamespace(send=sent.append, sent=sent, transport=SimpleNamespace(loseConnection=lambda: None))


class Cluster:
    """A monitor with connected catalog replicas A and B."""

    def __init__(self, config, store, clock=None):
        self.clock = clock or Clock()
        self.routes = Routes()
        self.monitor = Monitor(config, self.clock, {"catalog": self.routes}, store)
        self.conns = {}
        self.started = self.monitor.start()

    def beat(self, name, seq=5, last_view=1, view=0, state="idle"):
        if name not in self.conns:
            self.conns[name] = connection()
            self.monitor.connected("catalog", name, self.conns[name])
        self.monitor.beat("catalog", name, view, seq, last_view, state)

    def lines(self, name):
        return [line for line in self.conns[name].sent if line.startswith(b"VIEW catalog")]

    def catalog(self):
        return self.monitor.views["catalog"]


def test_a_view_is_pushed_only_after_it_is_stored(config):
    store = HeldStore()
    cluster = Cluster(config, store)
    cluster.beat("A")
    cluster.beat("B")
    assert cluster.catalog().primary == "A"
    assert cluster.routes.views == [] and cluster.lines("A") == []
    store.complete()
    assert cluster.routes.views == [(1, "A", ["B"])]
    assert cluster.lines("A") == cluster.lines("B") == [b"VIEW catalog 1 A B"]
    assert store.views["catalog"] == StoredView(1, "A", ("B",), frozenset({"A", "B"}))


def test_a_failed_store_pushes_nothing_and_the_newest_view_is_tried_again(config):
    store = HeldStore()
    cluster = Cluster(config, store)
    cluster.beat("A")
    cluster.beat("B")
    store.fail()
    assert cluster.routes.views == []
    cluster.monitor.disconnected("catalog", "B", cluster.conns["B"])
    store.fail()
    cluster.clock.advance(config.cluster.heartbeat_interval)
    assert cluster.routes.views == []
    store.complete()
    assert cluster.routes.views == [(2, "A", [])]
    assert cluster.clock.getDelayedCalls() == []


def test_nothing_is_decided_before_the_stored_views_are_loaded(config):
    loading = Deferred()
    store = HeldStore()
    store.load = lambda: loading
    cluster = Cluster(config, store)
    cluster.beat("A", seq=9)
    cluster.beat("B", seq=9)
    assert cluster.catalog().primary is None and store.pending == []
    loading.callback({"catalog": StoredView(4, "B", ("A",), frozenset({"A", "B"}))})
    assert cluster.catalog().primary in ("A", "B")
    store.complete()
    assert cluster.routes.views[0][0] == 5


def test_a_restarted_monitor_never_promotes_a_replica_outside_the_stored_in_sync_set(config):
    # B stalled and was dropped; then A, the primary, crashed; then the front end restarted.
    store = HeldStore({"catalog": StoredView(7, None, (), frozenset({"A"}))})
    cluster = Cluster(config, store)
    cluster.beat("B", seq=50, last_view=6)
    cluster.clock.advance(10)
    cluster.monitor.check()
    assert cluster.catalog().primary is None
    assert store.pending == [] and cluster.routes.views == []
    status = cluster.monitor.status()["catalog"]["replicas"]
    assert status["B"]["promotable"] is False
    assert "not in the in-sync set" in status["B"]["promotion"]
    assert status["A"] == {**status["A"], "promotable": False, "promotion": "in the in-sync set, but down"}
    cluster.beat("A", seq=40, last_view=7)
    assert cluster.catalog().primary == "A"
    store.complete()
    assert cluster.routes.views == [(8, "A", [])]


def test_without_a_stored_view_the_first_view_takes_the_furthest_log(config):
    store = HeldStore()
    cluster = Cluster(config, store)
    cluster.beat("A", seq=3)
    cluster.beat("B", seq=9)
    store.complete()
    assert cluster.routes.views == [(1, "B", [])]


def test_the_double_fault_through_the_file_store(config, tmp_path):
    """A stalled backup is dropped, the primary dies, the front end restarts: the view waits for A."""
    path = tmp_path / "views.json"
    reactor = HeldReactor()
    first = Cluster(config, FileViewStore(path, reactor))
    reactor.pool.run_all()
    first.beat("A", seq=5)
    first.beat("B", seq=5)
    reactor.pool.run_all()
    assert first.routes.views == [(1, "A", ["B"])]
    # B stalls: silent past the timeout while A beats on.
    first.clock.advance(config.cluster.heartbeat_timeout + 0.1)
    first.beat("A", seq=8)
    first.monitor.check()
    reactor.pool.run_all()
    assert first.routes.views[-1] == (2, "A", [])
    assert read_views(path)["catalog"].in_sync == {"A"}
    # The front end restarts (A is gone for good meanwhile); B comes back first.
    second = Cluster(config, FileViewStore(path, reactor))
    reactor.pool.run_all()
    second.beat("B", seq=5, last_view=1, view=2)
    second.clock.advance(60)
    second.monitor.check()
    reactor.pool.run_all()
    assert second.catalog().primary is None and second.routes.views == []
    second.beat("A", seq=8, last_view=2, view=2)
    reactor.pool.run_all()
    assert second.routes.views == [(3, "A", [])]


def test_a_replica_that_connects_gets_the_stored_views_only(config):
    store = HeldStore()
    cluster = Cluster(config, store)
    cluster.beat("A")
    cluster.beat("B")
    late = connection()
    cluster.monitor.connected("order", "A", late)
    assert late.sent == []
    store.complete()
    late2 = connection()
    cluster.monitor.connected("order", "B", late2)
    assert late2.sent == [b"VIEW catalog 1 A B"]


def test_an_unreadable_store_fails_the_start(config, tmp_path):
    path = tmp_path / "views.json"
    path.write_text("{")
    reactor = SyncReactor()
    from tests.fakes import SyncThreadPool

    reactor.getThreadPool = lambda: SyncThreadPool()
    cluster = Cluster(config, FileViewStore(path, reactor))
    failures = []
    cluster.started.addErrback(failures.append)
    assert failures and failures[0].check(ViewStoreError)


def test_a_front_end_whose_stored_views_are_unreadable_stops(config, tmp_path):
    from pygmy.frontend.service import FrontendService
    from tests.fakes import SyncThreadPool

    path = tmp_path / "views.json"
    path.write_text('{"format": 1, "views": {"catalog": 7}}')
    reactor = SyncReactor()
    reactor.getThreadPool = lambda: SyncThreadPool()
    reactor.running = True
    stopped = []
    reactor.stop = lambda: stopped.append(True)
    service = FrontendService("http://x", Monitor(config, Clock(), {}, FileViewStore(path, reactor)), reactor)
    service.startService()
    assert stopped == [True]
    service.stopService()


def test_the_front_end_keeps_its_views_in_data_dir(config):
    from pygmy.frontend.service import frontend_service

    service = frontend_service(config, SyncReactor())
    assert service.monitor.store.path == config.cluster.data_dir / "frontend-views.json"


def test_a_restored_view_waits_for_its_whole_in_sync_set_before_electing(config):
    store = HeldStore({"catalog": StoredView(4, "A", ("B",), frozenset({"A", "B"}))})
    cluster = Cluster(config, store)
    cluster.beat("B", seq=9, last_view=4, view=4, state="backup")
    assert cluster.catalog().primary is None
    cluster.beat("A", seq=10, last_view=4, view=4, state="primary")
    assert (cluster.catalog().primary, cluster.catalog().backups) == ("A", ["B"])


def test_a_restored_view_elects_without_a_dead_member_after_the_grace(config):
    store = HeldStore({"catalog": StoredView(4, "A", ("B",), frozenset({"A", "B"}))})
    cluster = Cluster(config, store)
    cluster.beat("B", seq=9, last_view=4, view=4, state="backup")
    cluster.clock.advance(cluster.catalog().grace)
    cluster.beat("B", seq=9, last_view=4, view=4, state="backup")
    assert (cluster.catalog().primary, cluster.catalog().backups) == ("B", [])


def test_a_restored_view_keeps_its_primary_even_if_a_backup_beat_later(config):
    """The primary's beat is older (a lower seq) than its backup's: no needless failover."""
    store = HeldStore({"catalog": StoredView(4, "A", ("B",), frozenset({"A", "B"}))})
    cluster = Cluster(config, store)
    cluster.beat("A", seq=606, last_view=4, view=4, state="primary")
    cluster.beat("B", seq=619, last_view=4, view=4, state="backup")
    assert (cluster.catalog().primary, cluster.catalog().backups) == ("A", ["B"])
