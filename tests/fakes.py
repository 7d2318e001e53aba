"""
Test doubles that let the real stores and apps run without threads or
sockets: a reactor whose thread work runs at once, and HTTP clients that call
a Klein resource in memory (C{StubTreq}).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from treq.testing import StubTreq
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from pygmy.config import ReplicaConfig
from pygmy.net.remote import Remote
from pygmy.replication.store import Store

#: The replica sections of the default config.ini: catalog and order, A and B.
REPLICA_SECTIONS = """\
[catalog:A]
port = 8081
[catalog:B]
port = 8082
[order:A]
port = 8083
[order:B]
port = 8084
"""


def config_text(secret: str = "s3cret", data_dir: str = "var") -> str:
    """A small valid config.ini on the default ports."""
    return (
        f"[cluster]\nsecret = {secret}\ndata_dir = {data_dir}\n\n"
        "[frontend]\nport = 8080\nheartbeat_port = 8090\n\n" + REPLICA_SECTIONS
    )


class PoolThread:
    """
    What a fake pool's job would see of the reactor if it ran in a thread
    of its own: a C{callFromThread} made while a job runs waits until the
    job is over, then runs before the job's result is handed back -- the
    order of a real reactor, which runs both later, on its own thread, in
    the order they were sent.  Every fake pool runs its jobs through
    L{run}; every fake reactor's C{callFromThread} is L{call_from_thread}.
    """

    #: One list per job running now (innermost last): the calls it sent.
    _sent: list[list] = []

    @classmethod
    def run(cls, on_result, f, *args, **kwargs) -> None:
        """Run the job C{f} now, then the calls it sent, then C{on_result}."""
        cls._sent.append([])
        try:
            outcome = (True, f(*args, **kwargs))
        except BaseException:
            outcome = (False, Failure())
        finally:
            sent = cls._sent.pop()
        for call, call_args, call_kwargs in sent:
            call(*call_args, **call_kwargs)
        on_result(*outcome)

    @classmethod
    def call_from_thread(cls, f, *args, **kwargs) -> None:
        """C{f} now, or after the job running now."""
        if cls._sent:
            cls._sent[-1].append((f, args, kwargs))
        else:
            f(*args, **kwargs)


class SyncThreadPool:
    """A thread pool that runs every job at once, in the calling thread (L{PoolThread})."""

    def callInThreadWithCallback(self, onResult, f, *args, **kwargs):
        PoolThread.run(onResult, f, *args, **kwargs)

    def start(self):
        pass

    def stop(self):
        pass


class RecordingThreadPool(SyncThreadPool):
    """A L{SyncThreadPool} that counts its jobs and says when one is running (C{running})."""

    def __init__(self):
        self.jobs = 0
        self.running = False

    def callInThreadWithCallback(self, onResult, f, *args, **kwargs):
        self.jobs += 1

        def job():
            self.running = True
            try:
                return f(*args, **kwargs)
            finally:
                self.running = False

        super().callInThreadWithCallback(onResult, job)


class ThreadedClock(Clock):
    """
    A C{Clock} that is also a reactor with threads (C{deferToThreadPool}
    works on it): its pool (C{pool}, a L{RecordingThreadPool}) runs each job
    at once, and C{callFromThread} calls at once (after the job that sent
    it, L{PoolThread}).  Work that must not run on
    the reactor thread can check C{pool.running}.
    """

    def __init__(self):
        super().__init__()
        self.pool = RecordingThreadPool()

    def getThreadPool(self):
        return self.pool

    def callFromThread(self, f, *args, **kwargs):
        PoolThread.call_from_thread(f, *args, **kwargs)


class SyncReactor(MemoryReactorClock):
    """
    A memory reactor and clock whose C{callFromThread}, and C{callLater}
    with no delay ("at the end of this turn"), run at once (a
    C{callFromThread} sent by a pool's job, once the job is over:
    L{PoolThread}).
    """

    def callFromThread(self, f, *args, **kwargs):
        PoolThread.call_from_thread(f, *args, **kwargs)

    def callLater(self, delay, f, *args, **kwargs):
        call = super().callLater(delay, f, *args, **kwargs)
        if delay <= 0:
            self.advance(0)
        return call


class TurnReactor(MemoryReactorClock):
    """
    A memory reactor whose thread results come back at once but whose
    end-of-turn calls wait for L{turns}: writes made in one turn are
    committed together, as on a real reactor.
    """

    def callFromThread(self, f, *args, **kwargs):
        PoolThread.call_from_thread(f, *args, **kwargs)

    def turns(self, most: int = 10_000) -> None:
        """Run turns until nothing is due."""
        for _ in range(most):
            if not any(call.getTime() <= self.seconds() for call in self.getDelayedCalls()):
                return
            self.advance(0)
        raise AssertionError("still busy")


def committed(store, reactor, calls, flush=lambda: None) -> tuple[list, int]:
    """
    Run C{calls} (Deferreds) to their end, with C{flush} (of an in-memory
    client) after each round of turns; their results and the transactions
    they took.
    """
    begun = []
    result(store.pool.runWithConnection(lambda c: c.set_trace_callback(begun.append)))
    outcomes = gatherResults(calls, consumeErrors=True)
    for _ in range(100):
        reactor.turns()
        flush()
        if outcomes.called:
            break
    result(store.pool.runWithConnection(lambda c: c.set_trace_callback(None)))
    return result(outcomes), sum(1 for sql in begun if sql.startswith("BEGIN"))


def result(d):
    """The result of a Deferred (or coroutine) that has already fired; re-raise a failure."""
    if not isinstance(d, Deferred):
        d = Deferred.fromCoroutine(d)
    outcome = []
    d.addBoth(outcome.append)
    assert outcome, "Deferred has not fired"
    if hasattr(outcome[0], "raiseException"):
        outcome[0].raiseException()
    return outcome[0]


def sync_store(path: Path, tables, seed, reactor: SyncReactor) -> Store:
    """A real L{Store} on SQLite whose interactions complete synchronously."""
    store = Store(path, tables, seed, reactor)
    store.pool.threadpool = SyncThreadPool()
    return store


def stub_remote(resource, service: str, name: str, reactor, secret: str = "s3cret"):
    """A L{Remote} that calls C{resource} in memory instead of over TCP."""
    http = SimpleNamespace(
        client=None if resource is None else StubTreq(resource),
        reactor=reactor,
        body=lambda data: data,
    )
    replica = ReplicaConfig(service, name, "127.0.0.1", 1, "127.0.0.1")
    return Remote(http, replica, secret, timeout=5)


class InMemoryCluster:
    """
    One catalog replica (primary, no backups), one order replica and the
    front end, wired with in-memory HTTP: every request runs to completion
    synchronously.

    @ivar front: a C{StubTreq} for the front end's public API.
    """

    secret = "s3cret"

    def __init__(self, tmp_path: Path):
        from pygmy import config as configuration
        from pygmy.catalog.app import CatalogApp
        from pygmy.catalog.books import BOOKS, Catalog, seed
        from pygmy.frontend.app import FrontendApp
        from pygmy.frontend.cache import ReplyCache
        from pygmy.frontend.monitor import Monitor
        from pygmy.order.app import OrderApp
        from pygmy.order.orders import BUYS, ORDERS, Orders

        repo = Path(__file__).resolve().parent.parent
        self.config = configuration.load(repo / "config.ini", environ={"PYGMY_SECRET": self.secret})
        self.reactor = SyncReactor()
        self.catalog_store = sync_store(tmp_path / "catalog.sqlite", (BOOKS,), seed, self.reactor)
        self.order_store = sync_store(tmp_path / "order.sqlite", (ORDERS, BUYS), None, self.reactor)

        self.catalog_node = catalog_node = self.primary_node("catalog", self.catalog_store)
        self.catalog_app = catalog_app = self.replica_app(
            catalog_node, CatalogApp(Catalog(self.catalog_store, catalog_node))
        )
        self.catalog = StubTreq(catalog_app.resource())
        catalog_routes = self.routes("catalog", catalog_app)

        order_node = self.primary_node("order", self.order_store)
        orders = Orders(self.order_store, catalog_routes, order_node)
        order_app = self.replica_app(order_node, OrderApp(orders))
        self.order = StubTreq(order_app.resource())
        routes = {"catalog": catalog_routes, "order": self.routes("order", order_app)}
        self.monitor = Monitor(self.config, self.reactor, {})
        self.cache = ReplyCache(100)
        self.frontend = FrontendApp(self.config, routes, self.monitor, self.cache)
        self.front = StubTreq(self.frontend.resource())

    def primary_node(self, service: str, store):
        """A node that is its service's only replica, and so its primary."""
        from pygmy.net.routing import ServiceRoutes
        from pygmy.replication.node import Node

        replica = self.config.replica(service, "A")
        peers = ServiceRoutes(service, [stub_remote(None, service, "A", self.reactor)], self.reactor, 1.0)
        node = Node(replica, store, {service: peers}, self.reactor, interval=0.5, log_keep=1000)
        node.view_received(service, 1, "A", [])
        return node

    def replica_app(self, node, service_app):
        from pygmy.replication.replica import ReplicaApp

        return ReplicaApp(node.store and self.config.replica(node.service, "A"), node, self.secret, service_app)

    def routes(self, service: str, replica_app):
        """L{ServiceRoutes} to the in-memory replica, which is primary."""
        from pygmy.net.routing import ServiceRoutes

        remote = stub_remote(replica_app.resource(), service, "A", self.reactor, self.secret)
        routes = ServiceRoutes(service, [remote], self.reactor, deadline=1.0)
        routes.update(1, "A", [])
        return routes

    def close(self):
        """Close both databases."""
        self.catalog_store.pool.close()
        self.order_store.pool.close()
