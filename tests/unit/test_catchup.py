"""
L{CatchUp} on its own: a fake node and primary, and a L{Clock}, no store and
no sockets.
"""

from __future__ import annotations

from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock
from twisted.logger import capturedLogs

from pygmy.errors import Unavailable
from pygmy.net.stream import StreamBroken
from pygmy.replication.catchup import CATCH_UP_BATCH, JOIN_GAP, CatchUp

INTERVAL = 0.5


class FakePrimary:
    """
    A primary whose log holds C{head} entries from view 1, handed out in
    batches (or only a snapshot, if C{compacted}, for a caller behind the
    head); C{failures} are raised, one per request, before anything else.
    """

    name = "A"

    def __init__(self, head: int, joins: bool = True):
        self.head = head
        self.joins = joins
        self.failures: list[Exception] = []
        self.requests: list[tuple[str, dict | None]] = []
        self.compacted = False
        self.broken: int | None = None

    def _answer(self, path, params, reply):
        self.requests.append((path, params))
        if self.failures:
            return fail(self.failures.pop(0))
        return succeed(reply())

    def stream(self, path, params, handle):
        """
        C{/replication/snapshot}: its records to C{handle}, one at a time;
        C{broken} records in, the stream breaks off (once).
        """
        assert path == "/replication/snapshot"
        records = [
            {"snapshot": {"applied_seq": self.head - 1, "last_view": 1}},
            {"page": {"table": "books", "rows": [{"id": 1}]}},
            {"log": {"after": self.head - 1, "until": self.head}},
            {"entries": [self.head]},
            {"end": {"applied_seq": self.head, "last_view": 1}},
        ]
        broken, self.broken = self.broken, None

        def run():
            for n, record in enumerate(records):
                if n == broken:
                    raise StreamBroken("catalog:A broke off its stream.")
                handle(record)
            return len(records)

        return self._answer(path, params, run)

    def get(self, path, params=None):
        """C{/replication/log}."""

        def log():
            after, limit = int(params["after"]), int(params["limit"])
            if self.compacted and after < self.head:
                return {"entries": None, "head": self.head}
            return {"entries": list(range(after + 1, min(self.head, after + limit) + 1)), "head": self.head}

        return self._answer(path, params, log)

    def post(self, path, body):
        """C{/replication/join}."""
        return self._answer(path, body, lambda: {"joined": self.joins})

    def paths(self) -> list[str]:
        """The paths requested so far, in order."""
        return [path for path, _ in self.requests]


class FakeStore:
    """Applies a batch of entry numbers: where the log ends."""

    def apply(self, entries):
        return succeed((entries[-1], 1))


class FakeInstall:
    """
    Takes a snapshot's records (L{FakePrimary.stream}'s) as
    L{Install<pygmy.replication.install.Install>} would: complete at C{end}.
    """

    made: list = []

    def __init__(self, store, source):
        self.records, self.position = [], None
        FakeInstall.made.append(self)

    def record(self, record):
        self.records.append(record)
        if "end" in record:
            self.position = (record["end"]["applied_seq"], record["end"]["last_view"])


class FakeNode:
    """The parts of a L{Node<pygmy.replication.node.Node>} that L{CatchUp} uses."""

    name, label = "B", "catalog:B"

    def __init__(self, primary: FakePrimary):
        self.role = "recovering"
        self.primary = primary.name
        self.peers = type("Peers", (), {"remotes": {primary.name: primary}})()
        self.store = FakeStore()
        self.applied_seq = self.last_view = 0
        self.installing = False
        self.joins = 0

    def advanced(self, seq, view):
        self.applied_seq, self.last_view = seq, view

    def joined(self):
        self.joins += 1


def catch_up(head: int, **kwargs):
    """A recovering node behind a primary at C{head}, its L{CatchUp} and clock."""
    primary = FakePrimary(head, **kwargs)
    node, clock = FakeNode(primary), Clock()
    loop = CatchUp(node, clock, INTERVAL)
    loop.installer = FakeInstall
    return node, primary, clock, loop


def test_fetches_batches_until_close_then_joins_and_stops_once_in_the_view():
    node, primary, clock, loop = catch_up(2 * CATCH_UP_BATCH + JOIN_GAP + 1)
    loop.start()
    assert primary.paths() == ["/replication/log"] * 3 + ["/replication/join"]
    assert primary.requests[-1][1] == {"replica": "B", "after": primary.head, "view": 1}
    assert node.applied_seq == primary.head and node.joins == 1
    assert loop.running
    node.role = "backup"  # the front end took it into the view
    clock.advance(INTERVAL * 4)
    assert not loop.running
    assert clock.getDelayedCalls() == []
    assert len(primary.requests) == 4


def test_joins_without_fetching_more_once_within_the_gap():
    node, primary, clock, loop = catch_up(CATCH_UP_BATCH + JOIN_GAP)
    loop.start()
    assert primary.paths() == ["/replication/log", "/replication/join"]
    assert node.applied_seq == CATCH_UP_BATCH
    assert primary.requests[-1][1]["after"] == CATCH_UP_BATCH


def test_a_compacted_log_is_caught_up_with_a_snapshot():
    node, primary, clock, loop = catch_up(10)
    primary.compacted = True
    loop.start()
    assert primary.paths() == ["/replication/log", "/replication/snapshot", "/replication/log", "/replication/join"]
    assert (node.applied_seq, node.last_view) == (10, 1)


def test_a_snapshot_is_installed_record_by_record_and_the_node_is_installing_until_its_end():
    node, primary, clock, loop = catch_up(10)
    primary.compacted = True
    seen = []
    original = FakeInstall.record

    def record(install, record):
        seen.append((next(iter(record)), node.installing, node.applied_seq))
        return original(install, record)

    FakeInstall.record = record
    try:
        loop.start()
    finally:
        FakeInstall.record = original
    assert seen == [(kind, True, 0) for kind in ("snapshot", "page", "log", "entries", "end")]
    assert not node.installing and (node.applied_seq, node.last_view) == (10, 1)


def test_a_broken_off_snapshot_leaves_the_node_installing_and_the_next_try_installs_again_at_once():
    node, primary, clock, loop = catch_up(10)
    primary.compacted, primary.broken = True, 2
    with capturedLogs() as events:
        loop.start()
    assert [e["why"] for e in events if "why" in e] == ["catalog:A broke off its stream."]
    assert primary.paths() == ["/replication/log", "/replication/snapshot"]
    assert node.installing and node.applied_seq == 0
    clock.advance(INTERVAL)
    # Straight to a snapshot: the log after a partial install is no place to start from.
    assert primary.paths() == ["/replication/log"] + ["/replication/snapshot"] * 2 + [
        "/replication/log",
        "/replication/join",
    ]
    assert not node.installing and node.applied_seq == 10 and node.joins == 1


def test_a_node_that_restarts_mid_install_asks_for_a_snapshot_first():
    node, primary, clock, loop = catch_up(10)
    node.installing = True  # what Node.load found in meta
    loop.start()
    assert primary.paths() == ["/replication/snapshot", "/replication/log", "/replication/join"]
    assert not node.installing and node.applied_seq == 10


def test_a_stream_that_ends_without_its_end_record_is_not_installed():
    node, primary, clock, loop = catch_up(10)
    primary.compacted = True
    original = primary.stream

    def without_end(path, params, handle):
        return original(path, params, lambda record: None if "end" in record else handle(record))

    primary.stream = without_end
    with capturedLogs() as events:
        loop.start()
    assert any("ended before it was complete" in e.get("why", "") for e in events)
    assert node.installing and node.applied_seq == 0 and node.joins == 0


def test_not_wanted_unless_recovering_with_a_primary():
    node, primary, clock, loop = catch_up(10)
    node.primary = None
    loop.start()
    assert primary.requests == [] and not loop.running
    node.primary, node.role = "A", "backup"
    loop.start()
    assert primary.requests == [] and not loop.running


def test_only_one_loop_at_a_time():
    node, primary, clock, loop = catch_up(10)
    loop.start()
    loop.start()
    assert primary.paths() == ["/replication/log", "/replication/join"]
    node.role = "backup"
    clock.advance(INTERVAL * 4)
    assert not loop.running


def test_a_replica_error_waits_one_interval_and_goes_on():
    node, primary, clock, loop = catch_up(10)
    primary.failures.append(Unavailable("catalog:A did not answer."))
    with capturedLogs() as events:
        loop.start()
    assert [e["why"] for e in events if "why" in e] == ["catalog:A did not answer."]
    assert loop.running and len(primary.requests) == 1
    clock.advance(INTERVAL * 0.99)
    assert len(primary.requests) == 1
    clock.advance(INTERVAL * 0.01)
    assert primary.paths() == ["/replication/log"] * 2 + ["/replication/join"]
    assert node.applied_seq == 10


def test_an_unexpected_failure_ends_the_loop_and_retries_after_one_interval():
    node, primary, clock, loop = catch_up(10)
    primary.failures.append(RuntimeError("unforeseen"))
    with capturedLogs() as events:
        loop.start()
    assert [e for e in events if e.get("log_failure") is not None]
    assert not loop.running and node.applied_seq == 0
    assert [call.getTime() for call in clock.getDelayedCalls()] == [INTERVAL]
    clock.advance(INTERVAL * 0.99)
    assert len(primary.requests) == 1
    clock.advance(INTERVAL * 0.01)
    assert loop.running and node.applied_seq == 10 and node.joins == 1


def test_no_retry_once_the_node_no_longer_needs_it():
    node, primary, clock, loop = catch_up(10)
    primary.failures.append(RuntimeError("unforeseen"))
    with capturedLogs():
        loop.start()
    node.role = "backup"
    clock.advance(INTERVAL)
    assert not loop.running and len(primary.requests) == 1
    assert clock.getDelayedCalls() == []


def test_a_refused_join_fetches_again():
    node, primary, clock, loop = catch_up(10, joins=False)
    original = primary.post

    def post(path, body):
        reply = original(path, body)
        primary.joins = True  # refused once, taken the second time
        return reply

    primary.post = post
    loop.start()
    assert primary.paths() == ["/replication/log", "/replication/join"] * 2
    assert node.joins == 1
