"""
Fakes for the tests of several front ends' succession
(L{pygmy.frontend.succession}): a leadership the test elects and deposes
(L{FakeLeadership}), a views store whose loads and stores the test answers
(L{FakeStore}), the front end's own routes (L{Routes}), and a L{FrontEnd}:
a L{Monitor} on a L{Clock} with them, and plain objects for the replicas'
heartbeat connections.
"""

from __future__ import annotations

from types import SimpleNamespace

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from pygmy.config import load
from pygmy.coordination.store import StoredView
from pygmy.frontend.monitor import Monitor
from tests.config_texts import CLUSTER, REPLICAS, frontends

INTERVAL = 0.5  # the config's heartbeat_interval: a failed read or store is tried again after it


class FakeLeadership:
    """A candidacy the test elects (L{win}) and deposes (L{lost}), as L{Leadership} tells them."""

    def __init__(self, name="1"):
        self.name = name
        self.leading = False
        self.leader = None
        self.elected = lambda: None
        self.deposed = lambda reason: None
        self.started = self.stopped = False

    def start(self):
        self.started = True

    def stop(self):
        self.stopped, self.leading = True, False
        return succeed(None)

    def win(self):
        self.leading, self.leader = True, self.name
        self.elected()

    def lost(self, reason):
        if self.leading:
            self.leading, self.leader = False, None
            self.deposed(reason)


class FakeStore:
    """
    The views in etcd: C{views} is what is stored.  Loads answer at once
    unless C{hold_loads}; stores wait in C{stores} for L{complete} or
    L{fail}; L{put} is a store by another front end, which the watch delivers.
    """

    def __init__(self, views=None):
        self.views = dict(views or {})
        self.stores: list[tuple[str, StoredView, Deferred]] = []
        self.attempts: list[tuple[str, StoredView]] = []
        self.watchers = []
        self.loads: list[Deferred] = []
        self.hold_loads = False
        self.stopped = False

    def load(self):
        if self.hold_loads:
            d = Deferred()
            self.loads.append(d)
            return d
        return succeed(dict(self.views))

    def answer_loads(self):
        while self.loads:
            self.loads.pop(0).callback(dict(self.views))

    def store(self, service, view):
        d = Deferred()
        self.attempts.append((service, view))
        self.stores.append((service, view, d))
        return d

    def watch(self, callback):
        self.watchers.append(callback)

    def stop(self):
        self.stopped = True

    def put(self, service, view):
        self.views[service] = view
        for watcher in self.watchers:
            watcher(service, view)

    def complete(self):
        while self.stores:
            service, view, d = self.stores.pop(0)
            self.put(service, view)
            d.callback(None)

    def fail(self, error):
        while self.stores:
            _, _, d = self.stores.pop(0)
            d.errback(error)


class Routes:
    """Records the views the monitor hands the front end's own routes."""

    def __init__(self):
        self.views = []

    def update(self, number, primary, backups):
        self.views.append((number, primary, list(backups)))


def front_end_1(tmp_path):
    """The configuration of front end 1 of two, with a coordinator."""
    path = tmp_path / "config.ini"
    path.write_text(CLUSTER + frontends("1", "2") + "[coordinator]\netcd = http://127.0.0.1:2379\n" + REPLICAS)
    return load(path, environ={}).named("1")


def view(number, primary="A", backups=("B",), in_sync=None):
    return StoredView(number, primary, tuple(backups), frozenset(in_sync or {primary, *backups} - {None}))


class FrontEnd:
    """A monitor of several front ends, with catalog replicas A and B connected on demand."""

    def __init__(self, config, store=None, clock=None):
        self.clock = clock or Clock()
        self.store = store if store is not None else FakeStore()
        self.leadership = FakeLeadership()
        self.routes = Routes()
        self.monitor = Monitor(config, self.clock, {"catalog": self.routes}, self.store, leadership=self.leadership)
        self.conns = {}
        self.started = self.monitor.start()

    def beat(self, name, seq=5, last_view=1, view=0, state="idle"):
        if name not in self.conns:
            sent = []
            self.conns[name] = SimpleNamespace(
                send=sent.append, sent=sent, transport=SimpleNamespace(loseConnection=lambda: None)
            )
            self.monitor.connected("catalog", name, self.conns[name])
        self.monitor.beat("catalog", name, view, seq, last_view, state)

    def drop(self, name):
        self.monitor.disconnected("catalog", name, self.conns.pop(name))

    def lines(self, name):
        return [line for line in self.conns[name].sent if line.startswith(b"VIEW catalog")]

    def catalog(self):
        return self.monitor.views["catalog"]

    def lead(self):
        """Win the leadership (the stored views are read at once) and store what is decided."""
        self.leadership.win()
