"""
Several front ends on a real etcd (DESIGN.md section 6, invariant 8):
three C{pygmy-frontend --name} processes, catalog and order pairs and one
etcd member, all real processes on free local ports.

- kill -9 of the view manager under reads and writes through the other two:
  no read fails, writes never stop for longer than C{lease_ttl +
  heartbeat_timeout}, another front end manages the views within that
  time, the killed one restarted rejoins as a follower, no view number goes
  down, two front ends never lead at once, and every front end agrees on
  the leader;
- the same with the catalog primary killed too: a new primary within
  C{lease_ttl + 2 x heartbeat_timeout};
- kill -9 of a follower: nothing changes;
- kill -9 of etcd: the views stay and reads and writes go on; a replica
  killed meanwhile makes no view change until etcd is back;
- a write through one front end shows at once through the others.
"""

from __future__ import annotations

import signal

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from pygmy.testing import Cluster, converged
from tests.integration.frontends_load import Load, Watcher, call, now, sleep

pytestmark = pytest.mark.integration

LEASE_TTL = 2.0
HEARTBEAT_TIMEOUT = 0.6
NAMES = ("1", "2", "3")


@pytest.fixture
def several(etcd, tmp_path):
    """Three front ends on C{etcd}, catalog A/B and order A/B; every process is stopped by its pid."""
    running = Cluster(
        tmp_path,
        frontends=NAMES,
        coordinator={"etcd": etcd.url, "lease_ttl": str(LEASE_TTL)},
        heartbeat_interval="0.2",
        heartbeat_timeout=str(HEARTBEAT_TIMEOUT),
    )
    running.etcd = etcd
    try:
        running.start_all()
        yield running
    finally:
        running.stop_all()


async def statuses(http, cluster) -> dict:
    """The C{/status} of every running front end, by key."""
    found = {}
    for key in cluster.frontends:
        if key in cluster.processes:
            status, body = await call(http, "GET", cluster.frontend_url(key) + "/status", timeout=2.0)
            if status == 200:
                found[key] = body
    return found


def whole(services: dict) -> bool:
    """Every replica in its service's view, and alive as this front end sees it."""
    return all(
        v["primary"] is not None
        and len(v["backups"]) == len(v["replicas"]) - 1
        and all(r["alive"] for r in v["replicas"].values())
        for v in services.values()
    )


async def agreed(http, cluster, within: float = 20.0, exclude=()) -> str:
    """
    Wait until every running front end names the same leader, that leader
    says it leads, and every view is whole and the same everywhere; return
    the leader's key.
    """
    deadline = now() + within
    while True:
        found = {k: v for k, v in (await statuses(http, cluster)).items() if k not in exclude}
        leaders = {body["frontend"]["leader"] for body in found.values()}
        views = {
            tuple(sorted((s, v["view"], v["primary"], tuple(v["backups"])) for s, v in body["services"].items()))
            for body in found.values()
        }
        running = [k for k in cluster.frontends if k in cluster.processes and k not in exclude]
        if len(found) == len(running) and len(leaders) == 1 and len(views) == 1:
            (leader,) = leaders
            key = f"frontend:{leader}" if leader else None
            if key in found and found[key]["frontend"]["role"] == "leader":
                if all(whole(body["services"]) for body in found.values()):
                    return key
        assert now() < deadline, {k: (v["frontend"], v["services"]) for k, v in found.items()}
        await sleep(0.1)


def views_of(body) -> dict:
    return {service: (v["view"], v["primary"], tuple(v["backups"])) for service, v in body["services"].items()}


def no_overlap(leaders: dict) -> None:
    """No two front ends' spans of saying they lead overlap."""
    spans = sorted(leaders.items(), key=lambda item: item[1][0])
    for (a, (_, end)), (b, (start, _)) in zip(spans, spans[1:], strict=False):
        assert end < start, f"{a} led until {end:.2f}, {b} from {start:.2f}"


@pytest_twisted.ensureDeferred
async def test_kill_9_of_the_view_manager_under_load(several, http):
    cluster = several
    leader = await agreed(http, cluster)
    others = [key for key in cluster.frontends if key != leader]
    load = Load(http, {key: cluster.frontend_url(key) for key in others})
    watcher = Watcher(http, cluster)
    load.start()
    watcher.start()
    await sleep(1.0)

    killed_at = now()
    cluster.stop(leader, signal.SIGKILL)
    bound = LEASE_TTL + HEARTBEAT_TIMEOUT
    while True:
        found = await statuses(http, cluster)
        new = [k for k, body in found.items() if body["frontend"]["role"] == "leader"]
        if new:
            break
        assert now() - killed_at < 3 * bound, "no new view manager"
        await sleep(0.02)
    took_over = now() - killed_at
    await sleep(1.5)

    name = leader.partition(":")[2]
    await deferToThread(cluster.start, "frontend", name)
    new_leader = await agreed(http, cluster)
    await sleep(0.5)
    await load.stop()
    await watcher.stop()
    finished = now()

    pause = load.longest_pause("write", killed_at, finished)
    print(
        f"view manager {leader} killed: {new_leader} took over in {took_over:.2f}s; writes paused {pause:.2f}s at most"
    )
    assert new_leader == new[0] and new_leader != leader
    assert took_over <= bound, f"another front end managed the views {took_over:.2f}s after the kill"
    assert load.failed("read") == [], [(a.frontend, a.sent - killed_at, a.body) for a in load.failed("read")][:8]
    assert pause <= bound, f"writes stopped for {pause:.2f}s"
    assert len([a for a in load.answers if a.kind == "write" and a.status == 200]) > 20
    assert watcher.views_went_down() == []
    no_overlap(watcher.leaders())
    found = await statuses(http, cluster)
    assert found[leader]["frontend"] == {
        "name": name,
        "role": "follower",
        "leader": new_leader.partition(":")[2],
        "coordinator": "etcd",
    }
    assert len({str(views_of(body)) for body in found.values()}) == 1
    for service in ("catalog", "order"):
        await converged(cluster, service)
