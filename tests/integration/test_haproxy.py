"""
A real HAProxy, run from docs/haproxy.cfg (rendered with this test's free
ports: L{tests.haproxy.render}), in front of the two front ends of a real
cluster with etcd (L{pygmy.testing.Cluster} of two C{[frontend:NAME]} on
the C{etcd} fixture's member): under a read load through HAProxy, the
front end that manages the views is killed with C{kill -9}, and not one
read through HAProxy fails -- the ones it had in flight and the ones sent
to it before its health check took it out are sent to the other front
end by HAProxy.

Every process is stopped by its pid: HAProxy by this test, the cluster
and etcd by their fixtures.
"""

from __future__ import annotations

import random
import signal
from dataclasses import dataclass, field

import pytest
import pytest_twisted
from twisted.internet.defer import DeferredList, ensureDeferred
from twisted.internet.task import deferLater

from pygmy.cli import launcher
from pygmy.testing import Cluster, free_ports
from tests.haproxy import HAProxy, haproxy_binary

pytestmark = pytest.mark.integration

#: Seconds of read load, when the kill comes, concurrent readers.
LOAD, KILL_AT, READERS = 7.0, 2.0, 12
READS = ("/lookup/{item}", "/search/distributed%20systems", "/list", "/search?topic=theory")


@pytest.fixture
def two(etcd, tmp_path):
    """Two front ends on C{etcd}, catalog A/B and order A/B, all running; every process stopped by its pid after."""
    if haproxy_binary() is None:
        pytest.skip("no haproxy: apt-get install haproxy (.ci/run installs it)")
    cluster = Cluster(tmp_path, frontends=("1", "2"), coordinator={"etcd": etcd.url, "lease_ttl": "2"})
    try:
        cluster.start_all()
        yield cluster
    finally:
        cluster.stop_all()


@dataclass
class Reads:
    """Every read sent through HAProxy: (sent, seconds, status or the failure)."""

    seen: list = field(default_factory=list)

    def failed(self) -> list:
        return [entry for entry in self.seen if entry[2] != 200]


async def reader(http, url: str, reads: Reads, until: float, reactor, rng: random.Random) -> None:
    """One client reading through HAProxy until C{until}; every answer recorded."""
    while reactor.seconds() < until:
        path = rng.choice(READS).format(item=rng.randint(1, 7))
        sent = reactor.seconds()
        try:
            response = await http.request("GET", url + path, timeout=20)
            await response.content()
            outcome = response.code
        except Exception as e:  # no answer through HAProxy is a failure
            outcome = f"{path}: {type(e).__name__}: {e}"
        reads.seen.append((sent, reactor.seconds() - sent, outcome))


async def manager(http, config) -> str | None:
    """The name of the front end whose /status says it manages the views, if any does."""
    for name, front in config.frontends.items():
        try:
            response = await http.request("GET", front.url + "/status", timeout=5)
            body = await response.json()
        except Exception:
            continue
        if (body.get("frontend") or {}).get("role") == "leader":
            return name
    return None


@pytest_twisted.ensureDeferred
async def test_kill_9_of_a_front_end_under_reads_through_haproxy(two, http, tmp_path):
    from twisted.internet import reactor

    config = two.config
    [port] = free_ports(1)
    servers = {f"frontend-{name}": f"{front.host}:{front.port}" for name, front in config.frontends.items()}
    proxy = HAProxy(tmp_path, port, servers)
    proxy.start()
    try:
        victim = None
        for _ in range(100):  # the first to take the lease manages the views
            victim = await manager(http, config)
            if victim is not None:
                break
            await deferLater(reactor, 0.1, lambda: None)
        assert victim is not None, "no front end says it manages the views"
        reads, rng = Reads(), random.Random(11)
        started = reactor.seconds()
        until = started + LOAD
        load = DeferredList(
            [ensureDeferred(reader(http, proxy.url, reads, until, reactor, rng)) for _ in range(READERS)]
        )
        await deferLater(reactor, KILL_AT, lambda: None)
        assert two.stop(f"frontend:{victim}", signal.SIGKILL) == -signal.SIGKILL
        killed = reactor.seconds()
        await load
    finally:
        proxy.stop()
    failed = reads.failed()
    assert failed == [], f"{len(failed)} of {len(reads.seen)} reads failed through HAProxy: {failed[:5]}"
    before = [entry for entry in reads.seen if entry[0] < killed]
    after = [entry for entry in reads.seen if entry[0] >= killed + 0.5]
    assert len(before) > 50 and len(after) > 100, (len(before), len(after))
    # HAProxy's health check took the killed one out; the survivor served the rest.
    assert f"Server frontends/frontend-{victim} is DOWN" in proxy.log.read_text(errors="replace")
    survivor = next(front for name, front in config.frontends.items() if name != victim)
    assert launcher.answers(survivor.url + "/health")
