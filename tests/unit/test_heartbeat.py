"""
The heartbeat line protocol, both ends, without sockets: the front end's
L{MonitorProtocol} and the replica's L{BeatProtocol} on a C{StringTransport}
with a C{Clock}, talking to small recording fakes instead of the monitor and
the node.  The grammar of the lines alone is in
C{tests/unit/test_heartbeat_grammar.py}.
"""

from __future__ import annotations

import pytest
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from pygmy.replication.heartbeat import (
    MAX_LINE,
    BeatFactory,
    MonitorFactory,
    proof,
    topic_token,
)

SECRET = "s3cret"
HELLO_TIMEOUT = 3.0
INTERVAL = 0.5


class FakeMonitor:
    """Records what the front end's protocol tells the monitor."""

    def __init__(self, known=(("catalog", "A"), ("catalog", "B"))):
        self.known = set(known)
        self.calls = []

    def knows(self, service, replica):
        return (service, replica) in self.known

    def connected(self, service, replica, connection):
        self.calls.append(("connected", service, replica, connection))
        self.current = {**getattr(self, "current", {}), (service, replica): connection}

    def is_current(self, service, replica, connection):
        return getattr(self, "current", {}).get((service, replica)) is connection

    def beat(self, *args):
        self.calls.append(("beat", *args))

    def synced(self, *args):
        self.calls.append(("synced", *args))

    def invalidate(self, *args):
        self.calls.append(("invalidate", *args))

    def disconnected(self, service, replica, connection):
        self.calls.append(("disconnected", service, replica, connection))


class FakeNode:
    """The attributes and callbacks of a node that L{BeatProtocol} uses."""

    service, name, view, applied_seq, last_view, role = "catalog", "B", 4, 17, 3, "backup"

    def __init__(self):
        self.calls = []

    def heartbeat_connected(self, protocol):
        self.calls.append(("connected", protocol))

    def heartbeat_disconnected(self, protocol):
        self.calls.append(("disconnected", protocol))

    def view_received(self, *args):
        self.calls.append(("view", *args))


def lost(protocol) -> None:
    """Tell C{protocol} its connection is gone, as a transport would."""
    protocol.connectionLost(Failure(ConnectionDone()))


# The front end's end


@pytest.fixture
def front():
    """A connected L{MonitorProtocol}, its transport, monitor and clock."""
    monitor, clock = FakeMonitor(), Clock()
    protocol = MonitorFactory(monitor, SECRET, clock, HELLO_TIMEOUT).buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport, monitor, clock


def hello(protocol, service="catalog", replica="A", secret=SECRET) -> bytes:
    return f"HELLO {service} {replica} {proof(secret, service, replica, protocol.nonce)}\n".encode()


def test_challenge_is_the_first_line(front):
    protocol, transport, monitor, clock = front
    assert transport.value() == b"CHALLENGE " + protocol.nonce.encode() + b"\n"
    assert len(protocol.nonce) == 32
    assert monitor.calls == []
    assert [c.getTime() for c in clock.getDelayedCalls()] == [HELLO_TIMEOUT]


def test_correct_hello_registers_and_cancels_the_deadline(front):
    protocol, transport, monitor, clock = front
    protocol.dataReceived(hello(protocol))
    assert monitor.calls == [("connected", "catalog", "A", protocol)]
    assert protocol.identity == ("catalog", "A")
    assert not transport.disconnecting
    assert clock.getDelayedCalls() == []


def test_beat_and_synced_after_hello_reach_the_monitor(front):
    protocol, transport, monitor, clock = front
    protocol.dataReceived(hello(protocol) + b"BEAT catalog A 3 42 2 primary\r\n")
    protocol.dataReceived(b"SYNCED catalog B 42\n")
    assert monitor.calls[1:] == [
        ("beat", "catalog", "A", 3, 42, 2, "primary"),
        ("synced", "catalog", "A", "B", 42),
    ]
    assert not transport.disconnecting
    lost(protocol)
    assert monitor.calls[-1] == ("disconnected", "catalog", "A", protocol)
    assert clock.getDelayedCalls() == []


def test_no_hello_in_time_closes(front):
    protocol, transport, monitor, clock = front
    clock.advance(HELLO_TIMEOUT - 0.01)
    assert not transport.disconnecting
    clock.advance(0.02)
    assert transport.disconnecting
    lost(protocol)
    assert monitor.calls == []
    assert clock.getDelayedCalls() == []


BAD_BEFORE_HELLO = {
    "wrong proof": lambda p: hello(p, secret="guess"),
    "unknown replica": lambda p: hello(p, replica="Z"),
    "unknown service": lambda p: hello(p, service="shipping"),
    "beat before hello": lambda p: b"BEAT catalog A 1 1 1 backup\n",
    "synced before hello": lambda p: b"SYNCED catalog B 1\n",
    "hello with uppercase hex": lambda p: hello(p).upper().replace(b"HELLO CATALOG", b"HELLO catalog"),
    "hello with three words": lambda p: b"HELLO catalog A\n",
    "unknown verb": lambda p: b"PING catalog A\n",
    "non-ascii": lambda p: "HELLO catalog \u00c5 0123456789abcdef\n".encode("utf-8"),
    "empty line": lambda p: b"\n",
    "over-long line": lambda p: b"BEAT " + b"x" * MAX_LINE + b"\n",
    "over-long without newline": lambda p: b"y" * (MAX_LINE + 2),
}


@pytest.mark.parametrize("make_line", BAD_BEFORE_HELLO.values(), ids=BAD_BEFORE_HELLO.keys())
def test_bad_line_before_hello_closes_and_changes_nothing(front, make_line):
    protocol, transport, monitor, clock = front
    protocol.dataReceived(make_line(protocol) + hello(protocol) + b"BEAT catalog A 1 1 1 backup\n")
    assert transport.disconnecting
    assert monitor.calls == []
    assert protocol.identity is None
    lost(protocol)
    assert monitor.calls == []
    assert clock.getDelayedCalls() == []


BAD_AFTER_HELLO = {
    "second hello": b"HELLO catalog A " + b"0" * 64,
    "beat for another replica": b"BEAT catalog B 1 1 1 backup",
    "beat for another service": b"BEAT order A 1 1 1 backup",
    "synced for another service": b"SYNCED order B 1",
    "beat with five words": b"BEAT catalog A 1 1 backup",
    "beat with seven words": b"BEAT catalog A 1 1 1 1 backup",
    "non-numeric seq": b"BEAT catalog A 1 x1 1 backup",
    "negative seq": b"BEAT catalog A 1 -1 1 backup",
    "non-numeric view": b"BEAT catalog A v 1 1 backup",
    "bad state": b"BEAT catalog A 1 1 1 leader",
    "double space": b"BEAT catalog  A 1 1 1 backup",
    "unknown verb": b"STATUS catalog A",
    "view from a replica": b"VIEW catalog 3 A B",
    "challenge from a replica": b"CHALLENGE 0123456789abcdef0123",
    "non-ascii": b"BEAT catalog A 1 1 1 backup\xff",
    "over-long": b"BEAT catalog A 1 1 1 backup" + b" " * MAX_LINE,
}


@pytest.mark.parametrize("line", BAD_AFTER_HELLO.values(), ids=BAD_AFTER_HELLO.keys())
def test_bad_line_after_hello_closes_and_changes_nothing(front, line):
    protocol, transport, monitor, clock = front
    protocol.dataReceived(hello(protocol))
    protocol.dataReceived(line + b"\nBEAT catalog A 1 1 1 backup\n")
    assert transport.disconnecting
    assert [call[0] for call in monitor.calls] == ["connected"]
    lost(protocol)
    assert [call[0] for call in monitor.calls] == ["connected", "disconnected"]
    assert clock.getDelayedCalls() == []


# The replica's end


@pytest.fixture
def replica():
    """A connected L{BeatProtocol}, its transport, node and clock."""
    node, clock = FakeNode(), Clock()
    protocol = BeatFactory(node, SECRET, clock, INTERVAL).buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport, node, clock


NONCE = "00112233445566778899aabbccddeeff"
BEAT = b"BEAT catalog B 4 17 3 backup\n"


def test_replica_waits_for_the_challenge(replica):
    protocol, transport, node, clock = replica
    clock.advance(INTERVAL * 3)
    assert transport.value() == b""
    assert node.calls == [] and clock.getDelayedCalls() == []


def test_challenge_is_answered_then_beats_every_interval(replica):
    protocol, transport, node, clock = replica
    protocol.dataReceived(f"CHALLENGE {NONCE}\n".encode())
    expected = f"HELLO catalog B {proof(SECRET, 'catalog', 'B', NONCE)}\n".encode()
    assert transport.value() == expected + BEAT
    assert node.calls == [("connected", protocol)]
    transport.clear()
    clock.advance(INTERVAL / 2)
    assert transport.value() == b""
    clock.advance(INTERVAL / 2)
    assert transport.value() == BEAT
    node.applied_seq, node.role = 18, "primary"
    clock.advance(INTERVAL)
    assert transport.value() == BEAT + b"BEAT catalog B 4 18 3 primary\n"


def test_view_lines_reach_the_node_parsed(replica):
    protocol, transport, node, clock = replica
    protocol.dataReceived(f"CHALLENGE {NONCE}\n".encode())
    protocol.dataReceived(b"VIEW catalog 5 A B,C\nVIEW order 2 - -\n")
    assert node.calls[1:] == [
        ("view", "catalog", 5, "A", ["B", "C"]),
        ("view", "order", 2, None, []),
    ]
    assert not transport.disconnecting


@pytest.mark.parametrize(
    "data",
    [
        b"VIEW catalog 5 A B\n",
        f"CHALLENGE {NONCE}\nCHALLENGE {NONCE}\n".encode(),
        f"CHALLENGE {NONCE}\nBEAT catalog A 1 1 1 backup\n".encode(),
        f"CHALLENGE {NONCE}\nVIEW catalog five A B\n".encode(),
        b"CHALLENGE not-hex\n",
    ],
    ids=["view before challenge", "second challenge", "beat to a replica", "bad view", "bad nonce"],
)
def test_replica_closes_on_bad_lines(replica, data):
    protocol, transport, node, clock = replica
    protocol.dataReceived(data)
    assert transport.disconnecting
    assert [call[0] for call in node.calls] in ([], ["connected"])


def test_connection_lost_stops_the_beats(replica):
    protocol, transport, node, clock = replica
    protocol.dataReceived(f"CHALLENGE {NONCE}\n".encode())
    assert len(clock.getDelayedCalls()) == 1
    lost(protocol)
    assert node.calls == [("connected", protocol), ("disconnected", protocol)]
    assert clock.getDelayedCalls() == []
    transport.clear()
    clock.advance(INTERVAL * 4)
    assert transport.value() == b""


def test_connection_lost_before_challenge_tells_the_node_nothing(replica):
    protocol, transport, node, clock = replica
    lost(protocol)
    assert node.calls == [] and clock.getDelayedCalls() == []


# A superseded connection


def test_lines_on_a_superseded_connection_close_it():
    """A newer HELLO for the same replica makes the older connection's lines untrusted."""
    from pygmy.replication.heartbeat import MonitorProtocol, proof

    clock, monitor = Clock(), FakeMonitor()
    old, new = MonitorProtocol(monitor, SECRET, clock, 1.0), MonitorProtocol(monitor, SECRET, clock, 1.0)
    for protocol in (old, new):
        transport = StringTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(f"HELLO catalog A {proof(SECRET, 'catalog', 'A', protocol.nonce)}\n".encode())
    old.dataReceived(b"BEAT catalog A 1 2 1 backup\n")
    assert old.transport.disconnecting
    assert [c for c in monitor.calls if c[0] == "beat"] == []
    new.dataReceived(b"BEAT catalog A 1 2 1 backup\n")
    assert not new.transport.disconnecting
    assert [c[0] for c in monitor.calls].count("beat") == 1
    for protocol in (old, new):
        protocol.connectionLost(None)
    assert clock.getDelayedCalls() == []


# INVALIDATE from a replica


def test_invalidate_from_the_catalog_tells_the_monitor_the_book_and_the_topic(front):
    protocol, transport, monitor, clock = front
    token = topic_token("travel")
    protocol.dataReceived(hello(protocol) + f"INVALIDATE 7 42 {token}\nINVALIDATE 3 43\n".encode())
    assert monitor.calls[1:] == [("invalidate", "A", 7, 42), ("invalidate", "A", token, 42), ("invalidate", "A", 3, 43)]
    assert not transport.disconnecting


def test_invalidate_from_an_order_replica_closes(front):
    protocol, transport, monitor, clock = front
    monitor.known.add(("order", "A"))
    protocol.dataReceived(hello(protocol, "order") + b"INVALIDATE 7 42\n")
    assert transport.disconnecting
    assert [call[0] for call in monitor.calls] == ["connected"]
