"""
The catalog primary's acknowledged invalidations (DESIGN §7), without
sockets: a real catalog node and store whose writes go through
L{AcknowledgedWrites}, real L{BeatProtocol}s on C{StringTransport}s as its
connections to front ends, and a clock.  A write is answered only once every
connected front end said C{INVALIDATED} for its seq, or its connection closed;
a front end silent for C{heartbeat_timeout} is dropped.  And the front end's
end: one C{INVALIDATED} per batch read, and C{INVALIDATED} from a replica
refused.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.python.failure import Failure

from pygmy import config as configuration
from pygmy.catalog.books import Catalog
from pygmy.catalog.coherence import AcknowledgedWrites, InvalidationPush
from pygmy.coordination.store import StoredView
from pygmy.frontend.cache import ReplyCache
from pygmy.frontend.monitor import Monitor
from pygmy.net.routing import ServiceRoutes
from pygmy.replication.heartbeat import (
    MAX_LINE,
    BeatFactory,
    MonitorFactory,
    ProtocolError,
    invalidate_line,
    parse,
    proof,
)
from pygmy.replication.node import Node
from tests.fakes import stub_remote

SECRET = "s3cret"
TIMEOUT = 1.5
REPO = Path(__file__).resolve().parents[2]
NONCE = "00112233445566778899aabbccddeeff"


def config():
    return configuration.load(REPO / "config.ini", environ={"PYGMY_SECRET": SECRET})


class Primary:
    """Catalog replica A, primary of view 1 without backups, and its connections to front ends."""

    def __init__(self, make_store, reactor):
        self.reactor = reactor
        self.store = make_store("catalog")
        peers = ServiceRoutes("catalog", [stub_remote(None, "catalog", "A", reactor)], reactor, 1.0)
        self.node = Node(config().replica("catalog", "A"), self.store, {"catalog": peers}, reactor, 0.5, 1000)
        self.node.view_received("catalog", 1, "A", [])
        self.fronts: list = []
        self.push = InvalidationPush(self.node, TIMEOUT, clock=reactor, connections=lambda: list(self.fronts))
        self.node.observe_writes(self.push)
        self.books = Catalog(self.store, AcknowledgedWrites(self.node, self.push))

    def front(self):
        """A new heartbeat connection to a front end, past its CHALLENGE."""
        protocol = BeatFactory(self.node, SECRET, self.reactor, 0.5).buildProtocol(None)
        protocol.makeConnection(StringTransport())
        protocol.dataReceived(f"CHALLENGE {NONCE}\n".encode())
        protocol.transport.clear()
        self.fronts.append(protocol)
        return protocol

    def buy(self, request_id: str, item: int = 1):
        return self.books.decrement(item, request_id)

    def waits(self):
        """(count, sum) of the wait histogram."""
        found = {s.name: s.value for family in self.push.metrics.waits.collect() for s in family.samples}
        return found["pygmy_invalidation_wait_seconds_count"], found["pygmy_invalidation_wait_seconds_sum"]

    def silent_closes(self) -> float:
        (family,) = self.push.metrics.silent_closes.collect()
        return next(s.value for s in family.samples if s.name.endswith("_total"))


@pytest.fixture
def primary(make_store, reactor):
    return Primary(make_store, reactor)


def invalidations(front) -> list[bytes]:
    """The INVALIDATE lines sent on C{front} since last asked."""
    lines = [line for line in front.transport.value().splitlines() if line.startswith(b"INVALIDATE ")]
    front.transport.clear()
    return lines


def answer(front, seq: int) -> None:
    front.dataReceived(f"INVALIDATED {seq}\n".encode())


def lost(front) -> None:
    front.connectionLost(Failure(ConnectionDone()))


def test_a_write_is_answered_once_the_front_end_said_invalidated(primary):
    front = primary.front()
    pending = primary.buy("r1")
    assert invalidations(front) == [invalidate_line(1, 1, "distributed systems")]
    primary.reactor.advance(TIMEOUT / 2)
    assert not pending.called
    answer(front, 1)
    write = pending.result
    assert (write.seq, write.row["stock"]) == (1, 999)
    assert not front.transport.disconnecting
    count, total = primary.waits()
    assert count == 1 and total == pytest.approx(TIMEOUT / 2)
    lost(front)
    assert primary.reactor.getDelayedCalls() == []


def test_without_a_front_end_a_write_waits_for_nobody(primary):
    write = primary.buy("r1").result
    assert write.seq == 1 and primary.waits() == (1, 0.0)


def test_every_front_end_must_answer(primary):
    first, second = primary.front(), primary.front()
    pending = primary.buy("r1")
    assert invalidations(first) == invalidations(second) == [invalidate_line(1, 1, "distributed systems")]
    answer(first, 1)
    assert not pending.called
    answer(second, 1)
    assert pending.result.seq == 1


def test_a_closed_connection_lets_the_write_go(primary):
    first, second = primary.front(), primary.front()
    pending = primary.buy("r1")
    answer(first, 1)
    lost(second)
    assert pending.result.seq == 1
    # The next write waits for the front end still connected only.
    primary.fronts.remove(second)
    pending = primary.buy("r2")
    assert not pending.called
    answer(first, 2)
    assert pending.result.seq == 2
    assert primary.silent_closes() == 0


def test_a_silent_front_end_is_dropped_after_heartbeat_timeout(primary):
    talking, silent = primary.front(), primary.front()
    pending = primary.buy("r1")
    answer(talking, 1)
    assert len(invalidations(silent)) == 1
    primary.reactor.advance(TIMEOUT - 0.01)
    assert not pending.called and not silent.transport.disconnecting
    with capturedLogs() as events:
        primary.reactor.advance(0.02)
    assert pending.result.seq == 1
    assert silent.transport.disconnecting and not talking.transport.disconnecting
    assert any("no INVALIDATED within" in (e.get("reason") or "") for e in events), events
    assert primary.silent_closes() == 1
    assert primary.waits()[1] == pytest.approx(TIMEOUT + 0.01)
    # Until its connection is gone, the dropped link holds no write up.
    pending = primary.buy("r2")
    assert invalidations(silent) == []
    answer(talking, 2)
    assert pending.result.seq == 2
    lost(silent)
    lost(talking)
    assert primary.reactor.getDelayedCalls() == []
    assert primary.silent_closes() == 1


def test_the_deadline_counts_from_the_oldest_unanswered_line(primary):
    front = primary.front()
    answer_now = primary.buy("r1")
    answer(front, 1)
    assert answer_now.called
    primary.reactor.advance(1.0)
    pending = primary.buy("r2")
    primary.reactor.advance(TIMEOUT - 0.01)
    assert not front.transport.disconnecting and not pending.called
    primary.reactor.advance(0.02)
    assert front.transport.disconnecting and pending.result.seq == 2


def test_one_answer_covers_every_earlier_write(primary):
    front = primary.front()
    writes = [primary.buy(f"r{n}") for n in range(1, 4)]
    assert [parse(line)[2] for line in invalidations(front)] == [1, 2, 3]
    answer(front, 2)
    assert [w.called for w in writes] == [True, True, False]
    answer(front, 3)
    assert writes[2].result.seq == 3
    assert not front.transport.disconnecting


def test_a_replayed_write_waits_for_its_first_attempts_answer(primary):
    front = primary.front()
    first = primary.buy("r1")
    again = primary.buy("r1")
    assert invalidations(front) == [invalidate_line(1, 1, "distributed systems")]
    assert not first.called and not again.called
    answer(front, 1)
    assert first.result.seq == again.result.seq == 1
    assert again.result.replayed


def test_a_cancelled_caller_leaves_the_others_waiting(primary):
    front = primary.front()
    cancelled, waiting = primary.buy("r1"), primary.buy("r2")
    cancelled.addErrback(lambda f: None)
    cancelled.cancel()
    answer(front, 2)
    assert waiting.result.seq == 2


BAD_ANSWERS = {
    "no seq": b"INVALIDATED",
    "two words": b"INVALIDATED 1 1",
    "not a number": b"INVALIDATED one",
    "negative": b"INVALIDATED -1",
    "twenty digits": b"INVALIDATED " + b"1" * 20,
    "over-long": b"INVALIDATED " + b"0" * MAX_LINE + b"1",
    "a seq never sent": b"INVALIDATED 2",
    "lowercase verb": b"invalidated 1",
}


@pytest.mark.parametrize("line", BAD_ANSWERS.values(), ids=BAD_ANSWERS.keys())
def test_a_bad_invalidated_closes_the_connection_and_acknowledges_nothing(primary, line):
    front, other = primary.front(), primary.front()
    pending = primary.buy("r1")
    answer(other, 1)
    front.dataReceived(line + b"\n")
    assert front.transport.disconnecting
    assert not pending.called, "a refused line counted as an answer"
    lost(front)
    assert pending.result.seq == 1


def test_invalidated_to_a_replica_that_sent_nothing_closes(primary):
    front = primary.front()
    answer(front, 1)
    assert front.transport.disconnecting
    assert front.invalidations is None


def test_invalidated_before_the_challenge_closes(primary):
    protocol = BeatFactory(primary.node, SECRET, primary.reactor, 0.5).buildProtocol(None)
    protocol.makeConnection(StringTransport())
    protocol.dataReceived(b"INVALIDATED 1\n")
    assert protocol.transport.disconnecting


def test_the_invalidated_grammar():
    assert parse(b"INVALIDATED 0") == ("INVALIDATED", 0)
    assert parse(b"INVALIDATED 9223372036854775807") == ("INVALIDATED", 2**63 - 1)
    for line in (b"INVALIDATED", b"INVALIDATED 1 2", b"INVALIDATED 0x1", b"INVALIDATED +1", b"INVALIDATED \xd9\xa3"):
        with pytest.raises(ProtocolError):
            parse(line)


# The front end's end


class FrontEnd:
    """A real monitor and cache, with a heartbeat connection from catalog replica A, the primary."""

    def __init__(self, reactor, replica="A"):
        self.monitor = Monitor(config(), reactor, {})
        self.monitor.restore({"catalog": StoredView(1, "A", ("B",), frozenset("AB"))})
        self.cache = ReplyCache(10, lease=self.monitor.lease)
        self.monitor.invalidated = self.cache.invalidate
        self.factory = MonitorFactory(self.monitor, SECRET, reactor, TIMEOUT, lease=self.monitor.lease)
        self.protocol = self.connect(replica)

    def connect(self, replica="A", service="catalog"):
        protocol = self.factory.buildProtocol(None)
        protocol.makeConnection(StringTransport())
        protocol.dataReceived(f"HELLO {service} {replica} {proof(SECRET, service, replica, protocol.nonce)}\n".encode())
        protocol.transport.clear()
        return protocol


def test_the_front_end_answers_a_batch_with_one_line_naming_the_last_seq(reactor):
    front = FrontEnd(reactor)
    for item in (1, 2, 3):
        front.cache.store(f"lookup:{item}", b"{}", (item,), front.cache.ticket())
    lines = [invalidate_line(1, 5, "t"), invalidate_line(2, 6, "t"), b"BEAT catalog A 1 6 1 primary"]
    front.protocol.dataReceived(b"\n".join(lines) + b"\n")
    assert front.protocol.transport.value() == b"INVALIDATED 6\n"
    assert len(front.cache) == 1
    front.protocol.transport.clear()
    front.protocol.dataReceived(b"BEAT catalog A 1 6 1 primary\n")
    assert front.protocol.transport.value() == b""
    front.protocol.dataReceived(invalidate_line(3, 7, "t") + b"\n")
    assert front.protocol.transport.value() == b"INVALIDATED 7\n"
    assert len(front.cache) == 0


def test_a_line_split_across_reads_is_answered_once_whole(reactor):
    front = FrontEnd(reactor)
    line = invalidate_line(1, 5, "t") + b"\n"
    front.protocol.dataReceived(line[:10])
    assert front.protocol.transport.value() == b""
    front.protocol.dataReceived(line[10:])
    assert front.protocol.transport.value() == b"INVALIDATED 5\n"


def test_a_bad_line_after_an_invalidate_leaves_it_unanswered(reactor):
    front = FrontEnd(reactor)
    front.protocol.dataReceived(invalidate_line(1, 5, "t") + b"\nBEAT catalog A 1\n")
    assert front.protocol.transport.disconnecting
    assert b"INVALIDATED" not in front.protocol.transport.value()


@pytest.mark.parametrize("line", [b"INVALIDATED 5", b"INVALIDATED x"], ids=["well formed", "malformed"])
def test_invalidated_from_a_replica_closes_and_changes_nothing(reactor, line):
    front = FrontEnd(reactor)
    front.cache.store("lookup:1", b"{}", (1,), front.cache.ticket())
    front.protocol.dataReceived(line + b"\n")
    assert front.protocol.transport.disconnecting
    assert front.protocol.transport.value() == b""
    assert front.cache.counters.invalidations == 0


def test_a_write_goes_through_once_the_front_end_answered_over_the_wire(primary):
    """Both ends for real: the lines cross between the two protocols' transports."""
    front_end = FrontEnd(primary.reactor)
    front_end.cache.store("lookup:1", b"{}", (1,), front_end.cache.ticket())
    replica = primary.front()
    pending = primary.buy("r1")
    assert not pending.called
    front_end.protocol.dataReceived(replica.transport.value())
    replica.transport.clear()
    assert len(front_end.cache) == 0
    assert not pending.called
    replica.dataReceived(front_end.protocol.transport.value())
    assert pending.result.seq == 1
    assert not replica.transport.disconnecting and not front_end.protocol.transport.disconnecting


def test_the_replicas_metrics_show_the_waits_and_the_dropped_connections(primary):
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from pygmy.process.metrics import ReplicaCollector, registry_with

    primary.front()
    pending = primary.buy("r1")
    primary.reactor.advance(TIMEOUT)
    assert pending.called
    registry, _ = registry_with(ReplicaCollector(primary.node))
    found = {
        sample.name: sample.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for sample in family.samples
        if not sample.labels or set(sample.labels) == {"le"} and sample.labels["le"] == "+Inf"
    }
    assert found["pygmy_invalidation_wait_seconds_count"] == 1
    assert found["pygmy_invalidation_wait_seconds_sum"] == pytest.approx(TIMEOUT)
    assert found["pygmy_invalidation_silent_closes_total"] == 1
