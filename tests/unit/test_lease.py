"""
The front end's cache lease (DESIGN §7), without sockets: a real monitor,
cache and L{MonitorProtocol}s on C{StringTransport}s, a clock.  The cache
serves a hit and stores a fill only within C{heartbeat_timeout} of the last
line processed from the current catalog primary's connection; otherwise it
reads through and is emptied (an expiry, counted).  Then through the
front end's app: both the fast path of L{CachedReads} and the app's own
cached routes read through when the lease has lapsed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from pygmy import config as configuration
from pygmy.coordination.store import StoredView
from pygmy.frontend.app import FrontendApp
from pygmy.frontend.cache import ReplyCache
from pygmy.frontend.lease import Lease
from pygmy.frontend.monitor import Monitor
from pygmy.net.routing import ServiceRoutes
from pygmy.replication.heartbeat import MonitorFactory, proof

SECRET = "s3cret"
REPO = Path(__file__).resolve().parents[2]
BEAT = b"BEAT catalog A 1 3 1 primary\n"


class Front:
    """A front end's monitor and cache, catalog A its primary; C{timeout} is config.ini's heartbeat_timeout."""

    def __init__(self):
        self.config = configuration.load(REPO / "config.ini", environ={"PYGMY_SECRET": SECRET})
        self.timeout = self.config.cluster.heartbeat_timeout
        self.clock = Clock()
        self.monitor = Monitor(self.config, self.clock, {})
        self.monitor.restore({"catalog": StoredView(1, "A", ("B",), frozenset("AB"))})
        self.cache = ReplyCache(10, lease=self.monitor.lease)
        # Not wired to a new view's clear (pygmy.frontend.service does it):
        # here only the lease empties the cache.
        self.monitor.invalidated = self.cache.invalidate
        self.factory = MonitorFactory(self.monitor, SECRET, self.clock, self.timeout, lease=self.monitor.lease)

    def connect(self, replica="A"):
        protocol = self.factory.buildProtocol(None)
        protocol.makeConnection(StringTransport())
        protocol.dataReceived(f"HELLO catalog {replica} {proof(SECRET, 'catalog', replica, protocol.nonce)}\n".encode())
        return protocol

    def fill(self, key="lookup:1", tags=(1,)) -> bool:
        return self.cache.store(key, b"body", tags, self.cache.ticket())


@pytest.fixture
def front():
    return Front()


def test_no_line_for_heartbeat_timeout_no_hit_and_the_cache_is_emptied(front):
    primary = front.connect()
    assert front.fill() and front.fill("lookup:2", (2,))
    assert front.cache.get("lookup:1") == b"body"
    front.clock.advance(front.timeout - 0.01)
    assert front.cache.get("lookup:1") == b"body"
    front.clock.advance(0.01)
    assert front.cache.get("lookup:1") is None
    assert len(front.cache) == 0
    assert front.cache.counters.lease_expiries == 1
    assert not front.fill(), "a fill stored while the lease had lapsed"
    assert front.cache.get("lookup:1") is None and front.cache.counters.lease_expiries == 1
    # A line arrives: hits again, after a fill.
    primary.dataReceived(BEAT)
    assert front.cache.get("lookup:1") is None
    assert front.fill()
    assert front.cache.get("lookup:1") == b"body"
    assert front.cache.counters.lease_expiries == 1


def test_each_line_from_the_primary_renews_the_lease(front):
    primary = front.connect()
    front.fill()
    for _ in range(5):
        front.clock.advance(front.timeout * 0.9)
        primary.dataReceived(BEAT)
    assert front.cache.get("lookup:1") == b"body"
    assert front.cache.counters.lease_expiries == 0


def test_a_lapse_no_one_saw_empties_the_cache_when_the_next_line_comes(front):
    primary = front.connect()
    front.fill()
    front.clock.advance(front.timeout * 2)
    primary.dataReceived(BEAT)
    assert len(front.cache) == 0 and front.cache.counters.lease_expiries == 1
    assert front.cache.get("lookup:1") is None


def test_only_the_current_primarys_lines_hold_the_lease(front):
    backup = front.connect("B")
    assert not front.fill(), "no line from the primary yet"
    front.connect("A")
    assert front.fill()
    front.clock.advance(front.timeout)
    backup.dataReceived(b"BEAT catalog B 1 3 1 backup\n")
    assert front.cache.get("lookup:1") is None
    assert front.cache.counters.lease_expiries == 1


class Connection:
    def __init__(self, service, replica):
        self.identity = (service, replica)


def test_a_new_primary_holds_the_lease_with_its_own_lines():
    clock, primary, lapses = Clock(), ["A"], []
    lease = Lease(clock, 1.5, lambda: primary[0])
    lease.subscribe(lapses.append)
    a, b, order_a = Connection("catalog", "A"), Connection("catalog", "B"), Connection("order", "A")
    lease.heard(order_a)
    assert not lease.valid()
    lease.heard(a)
    assert lease.valid() and lapses == []
    primary[0] = "B"
    assert not lease.valid() and lapses == [False]
    lease.heard(a)
    assert not lease.valid()
    lease.heard(b)
    assert lease.valid()
    clock.advance(1.5)
    assert not lease.valid() and lapses == [False, True]
    assert not lease.valid() and lapses == [False, True], "one lapse, one call"
    primary[0] = None
    lease.heard(b)
    assert not lease.valid()


def test_the_primarys_connection_lost_or_replaced_empties_the_cache(front):
    primary = front.connect()
    front.fill()
    primary.connectionLost(None)
    assert len(front.cache) == 0 and front.cache.counters.lease_expiries == 0
    assert not front.fill()
    again = front.connect()
    assert front.fill()
    # A newer connection of the primary: lines may have been missed between the two.
    front.connect()
    assert len(front.cache) == 0
    assert front.fill()
    again.connectionLost(None)  # the older one's end changes nothing now
    assert front.cache.get("lookup:1") == b"body"


def test_a_fill_begun_before_a_lapse_is_refused_even_if_a_line_came_since(front):
    primary = front.connect()
    ticket = front.cache.ticket()
    front.clock.advance(front.timeout)
    primary.dataReceived(BEAT)
    assert not front.cache.store("lookup:1", b"old", (1,), ticket)
    assert front.cache.counters.refused_fills == 1


def test_a_fill_that_finishes_after_the_lease_lapsed_is_not_stored(front):
    front.connect()
    ticket = front.cache.ticket()
    front.clock.advance(front.timeout)
    assert not front.cache.store("lookup:1", b"old", (1,), ticket)
    assert len(front.cache) == 0 and front.cache.counters.lease_expiries == 1


def test_without_a_catalog_primary_nothing_is_cached():
    config = configuration.load(REPO / "config.ini", environ={"PYGMY_SECRET": SECRET})
    clock = Clock()
    monitor = Monitor(config, clock, {})
    cache = ReplyCache(10, lease=monitor.lease)
    protocol = MonitorFactory(monitor, SECRET, clock, 1.0, lease=monitor.lease).buildProtocol(None)
    protocol.makeConnection(StringTransport())
    protocol.dataReceived(f"HELLO catalog A {proof(SECRET, 'catalog', 'A', protocol.nonce)}\n".encode())
    assert not cache.store("lookup:1", b"body", (1,), cache.ticket())


# Through the front end's app


class Catalog:
    """A catalog replica (L{pygmy.net.remote.Remote}'s interface) that counts its reads."""

    name, replica = "catalog:A", "A"

    def __init__(self):
        self.reads = 0
        self.cost = "1.00"

    async def get(self, path, params=None):
        self.reads += 1
        if path == "/books":
            return {"items": [{"id": 1, "title": "One"}]}
        return {"id": 1, "title": "One", "topic": "t", "cost": self.cost, "stock": 5}


@pytest.mark.parametrize("path", ["/lookup/1", "/search/t"], ids=["CachedReads", "the app's cached route"])
def test_the_app_reads_through_once_the_lease_lapsed(front, path):
    catalog = Catalog()
    routes = {
        "catalog": ServiceRoutes("catalog", [catalog], front.clock, deadline=1.0),
        "order": ServiceRoutes("order", [Catalog()], front.clock, deadline=1.0),
    }
    for service in routes.values():
        service.update(1, "A", [])
    client = StubTreq(FrontendApp(front.config, routes, front.monitor, front.cache).resource())

    def get():
        reply = client.get("http://front.invalid" + path)
        client.flush()
        done = []
        reply.addCallback(lambda r: r.content()).addCallback(done.append)
        client.flush()
        return json.loads(done[0])

    primary = front.connect()
    get(), get()
    assert catalog.reads == 1, "the second read was not a hit"
    front.clock.advance(front.timeout)
    catalog.cost = "2.00"
    body = get()
    assert catalog.reads == 2 and front.cache.counters.lease_expiries == 1
    if path == "/lookup/1":
        assert body["cost"] == "2.00"
    get()
    assert catalog.reads == 3, "stored while the lease had lapsed"
    primary.dataReceived(BEAT)
    get(), get()
    assert catalog.reads == 4


def test_the_front_ends_metrics_count_the_expiries(front):
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from pygmy.process.metrics import FrontendCollector, registry_with

    front.connect()
    front.fill()
    front.clock.advance(front.timeout)
    assert front.cache.get("lookup:1") is None
    registry, _ = registry_with(FrontendCollector(front.monitor, front.cache))
    text = generate_latest(registry).decode()
    found = {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples}
    assert found["pygmy_cache_lease_expiries_total"] == 1
    assert front.cache.status()["lease_expiries"] == 1
