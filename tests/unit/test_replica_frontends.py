"""
A replica's heartbeat connections to several front ends (DESIGN.md section
5): one L{BeatProtocol} per front end, all feeding one real L{Node} through
L{FrontEnds}; the node follows the highest view number from any of them,
and what it says to "the front end" (SYNCED, the catalog's INVALIDATE) goes
to every one.  Without sockets: C{StringTransport}s, a memory reactor.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from pygmy import config as configuration
from pygmy.catalog.books import Catalog
from pygmy.catalog.coherence import AcknowledgedWrites, InvalidationPush
from pygmy.net.routing import ServiceRoutes
from pygmy.replication.frontends import FrontEnds, connect_to_frontends
from pygmy.replication.heartbeat import BeatFactory, invalidate_line
from pygmy.replication.node import Node
from tests.config_texts import CLUSTER, REPLICAS, frontends
from tests.fakes import stub_remote

SECRET = "s3cret"
REPO = Path(__file__).resolve().parents[2]
NONCE = "00112233445566778899aabbccddeeff"


class Replica:
    """Catalog replica A (a real node and store) and its connections to front ends."""

    def __init__(self, make_store, reactor):
        self.reactor = reactor
        config = configuration.load(REPO / "config.ini", environ={"PYGMY_SECRET": SECRET})
        self.store = make_store("catalog")
        remotes = [stub_remote(None, "catalog", name, reactor) for name in ("A", "B")]
        peers = ServiceRoutes("catalog", remotes, reactor, 1.0)
        self.node = Node(config.replica("catalog", "A"), self.store, {"catalog": peers}, reactor, 0.5, 1000)
        self.frontends = FrontEnds(self.node)

    def front(self):
        """A new heartbeat connection to one more front end, past its CHALLENGE."""
        protocol = BeatFactory(self.frontends, SECRET, self.reactor, 0.5).buildProtocol(None)
        protocol.makeConnection(StringTransport())
        protocol.dataReceived(f"CHALLENGE {NONCE}\n".encode())
        protocol.transport.clear()
        return protocol


@pytest.fixture
def replica(make_store, reactor):
    return Replica(make_store, reactor)


def view(front, number, primary="B", backups="A"):
    front.dataReceived(f"VIEW catalog {number} {primary} {backups}\n".encode())


def lost(front):
    front.connectionLost(Failure(ConnectionDone()))


def sent(front) -> list[bytes]:
    lines = front.transport.value().splitlines()
    front.transport.clear()
    return lines


def test_the_node_follows_the_highest_view_from_any_front_end(replica):
    one, two = replica.front(), replica.front()
    view(one, 3)
    assert (replica.node.view, replica.node.primary) == (3, "B")
    view(two, 2, "A", "B")  # a follower that lags
    assert (replica.node.view, replica.node.primary) == (3, "B")
    view(two, 4, "B", "A")
    view(one, 3, "A", "B")
    assert (replica.node.view, replica.node.primary) == (4, "B")


def test_a_front_end_that_reconnects_cannot_take_the_view_back(replica):
    one, two = replica.front(), replica.front()
    view(one, 5)
    lost(two)
    three = replica.front()
    view(three, 1, "A", "-")
    assert (replica.node.view, replica.node.primary) == (5, "B")


def test_the_node_hears_of_the_first_connection_and_of_the_last_end(replica):
    node = replica.node
    assert node.heartbeat is None
    one = replica.front()
    assert node.heartbeat is replica.frontends
    two = replica.front()
    lost(one)
    assert node.heartbeat is replica.frontends and replica.frontends.connections == [two]
    lost(two)
    assert node.heartbeat is None
    lost(two)  # a second end of the same connection changes nothing
    assert node.heartbeat is None and replica.frontends.connections == []


def test_every_connection_beats_and_hears_what_the_node_reports(replica):
    one, two = replica.front(), replica.front()
    replica.reactor.advance(0.5)
    assert any(line.startswith(b"BEAT catalog A ") for line in sent(one))
    assert any(line.startswith(b"BEAT catalog A ") for line in sent(two))
    assert replica.node.report_synced("B", 9)
    assert replica.node.report_unreachable("B")
    for front in (one, two):
        assert sent(front) == [b"SYNCED catalog B 9", b"UNREACHABLE catalog B"]
    lost(one)
    replica.node.report_synced("B", 10)
    assert sent(one) == [] and sent(two) == [b"SYNCED catalog B 10"]


def test_a_catalog_write_waits_for_every_front_end(replica):
    node = replica.node
    push = InvalidationPush(node, 1.5, clock=replica.reactor)  # the node's own connections
    node.observe_writes(push)
    books = Catalog(replica.store, AcknowledgedWrites(node, push))
    one, two = replica.front(), replica.front()
    view(one, 1, "A", "-")
    sent(one), sent(two)
    pending = books.decrement(1, "r1")
    line = invalidate_line(1, 1, "distributed systems")
    assert line in sent(one) and line in sent(two)
    one.dataReceived(b"INVALIDATED 1\n")
    assert not pending.called
    two.dataReceived(b"INVALIDATED 1\n")
    assert pending.called and pending.result.seq == 1


class Connecting:
    """A reactor that records C{connectTCP} and hands out connectors that record C{disconnect}."""

    def __init__(self):
        self.calls = []

    def connectTCP(self, host, port, factory):
        connector = SimpleNamespace(disconnected=False)
        connector.disconnect = lambda: setattr(connector, "disconnected", True)
        self.calls.append((host, port, factory, connector))
        return connector

    def seconds(self):
        return 0.0


def test_a_replica_connects_to_every_front_end(tmp_path):
    path = tmp_path / "config.ini"
    text = CLUSTER + frontends("1", "2", "3", base=9100) + "[coordinator]\netcd = http://127.0.0.1:2379\n" + REPLICAS
    path.write_text(text)
    config = configuration.load(path, environ={})
    reactor = Connecting()
    factories, connectors = connect_to_frontends(config, object(), reactor)
    assert [(host, port) for host, port, _, _ in reactor.calls] == [
        ("127.0.0.1", 9101),
        ("127.0.0.1", 9103),
        ("127.0.0.1", 9105),
    ]
    assert len({id(factory) for _, _, factory, _ in reactor.calls}) == 3
    factories.stopTrying()
    connectors.disconnect()
    assert all(not factory.continueTrying for _, _, factory, _ in reactor.calls)
    assert all(connector.disconnected for _, _, _, connector in reactor.calls)
