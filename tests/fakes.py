"""
Test doubles that let the real stores and apps run without threads or
sockets: a reactor whose thread work runs at once, and HTTP clients that call
a Klein resource in memory (``StubTreq``).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from treq.testing import StubTreq
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from pygmy.config import ReplicaConfig
from pygmy.remote import Remote
from pygmy.storage import Store


class SyncThreadPool:
    """A thread pool that runs every job at once, in the calling thread."""

    def callInThreadWithCallback(self, onResult, f, *args, **kwargs):
        try:
            result = f(*args, **kwargs)
        except BaseException:
            onResult(False, Failure())
        else:
            onResult(True, result)

    def start(self):
        pass

    def stop(self):
        pass


class SyncReactor(MemoryReactorClock):
    """A memory reactor and clock whose ``callFromThread`` runs at once."""

    def callFromThread(self, f, *args, **kwargs):
        f(*args, **kwargs)


def sync_store(path: Path, tables, seed, reactor: SyncReactor) -> Store:
    """A real L{Store} on SQLite whose interactions complete synchronously."""
    store = Store(path, tables, seed, reactor)
    store.pool.threadpool = SyncThreadPool()
    return store


def stub_remote(resource, service: str, name: str, reactor, secret: str = "s3cret"):
    """A L{Remote} that calls ``resource`` in memory instead of over TCP."""
    http = SimpleNamespace(client=StubTreq(resource), reactor=reactor)
    replica = ReplicaConfig(service, name, "127.0.0.1", 1, "127.0.0.1")
    return Remote(http, replica, secret, timeout=5)


class InMemoryCluster:
    """
    One catalog replica, one order replica and the front end, wired with
    in-memory HTTP: every request runs to completion synchronously.

    @ivar front: a C{StubTreq} for the front end's public API.
    """

    secret = "s3cret"

    def __init__(self, tmp_path: Path):
        from pygmy import config as configuration
        from pygmy.catalog.app import CatalogApp
        from pygmy.catalog.books import BOOKS, Catalog, seed
        from pygmy.frontend.app import FrontendApp
        from pygmy.order.app import OrderApp
        from pygmy.order.orders import ORDERS, Orders
        from pygmy.replica import ReplicaApp
        from pygmy.routing import ServiceRoutes

        repo = Path(__file__).resolve().parent.parent
        self.config = configuration.load(repo / "config.ini", environ={"PYGMY_SECRET": self.secret})
        self.reactor = SyncReactor()
        self.catalog_store = sync_store(tmp_path / "catalog.sqlite", (BOOKS,), seed, self.reactor)
        self.order_store = sync_store(tmp_path / "order.sqlite", (ORDERS,), None, self.reactor)

        catalog_replica = self.config.replica("catalog", "A")
        catalog_app = ReplicaApp(
            catalog_replica, self.catalog_store, self.secret, CatalogApp(Catalog(self.catalog_store))
        )
        self.catalog = StubTreq(catalog_app.app.resource())
        catalog_routes = ServiceRoutes(
            "catalog", [stub_remote(catalog_app.app.resource(), "catalog", "A", self.reactor, self.secret)]
        )
        order_app = ReplicaApp(
            self.config.replica("order", "A"),
            self.order_store,
            self.secret,
            OrderApp(Orders(self.order_store, catalog_routes)),
        )
        self.order = StubTreq(order_app.app.resource())
        order_routes = ServiceRoutes(
            "order", [stub_remote(order_app.app.resource(), "order", "A", self.reactor, self.secret)]
        )
        self.frontend = FrontendApp(self.config, {"catalog": catalog_routes, "order": order_routes})
        self.front = StubTreq(self.frontend.app.resource())

    def close(self):
        """Close both databases."""
        self.catalog_store.pool.close()
        self.order_store.pool.close()
