"""
Two catalog replicas in memory, for unit tests: L{Pair} holds replicas A
and B, each a real node, store and L{ReplicaApp}, whose nodes call each
other's app through C{StubTreq}; L{FakeHeartbeat} records the lines A's
node sends the front end.
"""

from __future__ import annotations

from pathlib import Path

from twisted.internet.defer import ensureDeferred

from pygmy import config as configuration
from pygmy.catalog.app import CatalogApp
from pygmy.catalog.books import Catalog
from pygmy.net.routing import ServiceRoutes
from pygmy.replication.node import Node
from pygmy.replication.replica import ReplicaApp
from tests.fakes import result, stub_remote

SECRET = "s3cret"
REPO = Path(__file__).resolve().parents[1]


class FakeHeartbeat:
    """Records the lines a node sends the front end."""

    def __init__(self):
        self.lines = []

    def send(self, line):
        self.lines.append(line)

    def beat(self):
        self.lines.append(b"BEAT")

    def synced(self):
        """The SYNCED lines sent so far."""
        return [line for line in self.lines if line.startswith(b"SYNCED ")]

    def invalidate_lines(self):
        """The INVALIDATE lines sent so far."""
        return [line for line in self.lines if line.startswith(b"INVALIDATE ")]


class Pair:
    """
    Catalog replicas A and B, each a real node, store and L{ReplicaApp};
    each node's routes reach the other's app in memory.
    """

    def __init__(self, make_store, reactor):
        config = configuration.load(REPO / "config.ini", environ={"PYGMY_SECRET": SECRET})
        self.reactor = reactor
        self.stores = {name: make_store(name) for name in "AB"}
        # Routes first with placeholder remotes: a node needs its routes,
        # an app its node, and a remote the other replica's app.
        self.routes = {
            name: ServiceRoutes("catalog", [stub_remote(None, "catalog", n, reactor) for n in "AB"], reactor, 1.0)
            for name in "AB"
        }
        self.nodes = {
            name: Node(
                config.replica("catalog", name),
                self.stores[name],
                {"catalog": self.routes[name]},
                reactor,
                interval=0.5,
                log_keep=1000,
            )
            for name in "AB"
        }
        self.apps = {
            name: ReplicaApp(config.replica("catalog", name), node, SECRET, CatalogApp(Catalog(node.store, node)))
            for name, node in self.nodes.items()
        }
        for name, other in (("A", "B"), ("B", "A")):
            remote = stub_remote(self.apps[other].resource(), "catalog", other, reactor, SECRET)
            self.routes[name].remotes[other] = remote
        self.heartbeat = FakeHeartbeat()
        self.nodes["A"].heartbeat_connected(self.heartbeat)

    def view(self, number, primary, backups, to="AB"):
        """The front end pushes a view of the catalog to the nodes in C{to}."""
        for name in to:
            self.nodes[name].view_received("catalog", number, primary, list(backups))

    def buy(self, request_id, item=1):
        """A decrement through A's node (which replicates it)."""
        return ensureDeferred(Catalog(self.stores["A"], self.nodes["A"]).decrement(item, request_id))

    def status(self, name):
        return result(self.stores[name].status())
