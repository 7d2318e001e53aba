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
  killed meanwhile makes no view change until etcd is back, and a write
  that needs it is refused (503), then done once when sent again after;
- a write through one front end shows at once through the others.
"""

from __future__ import annotations

import json
import signal

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from pygmy.testing import Cluster, converged
from tests.integration.frontends_load import AUTH, Load, Watcher, agreed, call, now, sleep, statuses

pytestmark = pytest.mark.integration

#: etcd grants whole seconds (2 here) and looks for expired leases every
#: 0.5 s, so a killed manager's key goes 2 to 2.5 s after its last renewal:
#: within LEASE_TTL, and the takeover within LEASE_TTL + HEARTBEAT_TIMEOUT
#: with room for a loaded machine (with lease_ttl = 2.0 only 0.1 s is left).
LEASE_TTL = 2.5
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


async def update(http, url: str):
    """The same restock of 5 copies each time (one Idempotency-Key): (status, body)."""
    headers = {b"Idempotency-Key": [b"etcd-down-restock"], **AUTH}
    response = await http.request("POST", url, data=b'{"stock_delta": 5}', headers=headers, timeout=60)
    return response.code, json.loads(await response.content())


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
        "views_read": True,
    }
    assert len({str(views_of(body)) for body in found.values()}) == 1
    for service in ("catalog", "order"):
        await converged(cluster, service)


async def primary_of(http, cluster, service: str, exclude=()) -> dict:
    """The primary of C{service} as each running front end (but C{exclude}) sees it."""
    found = await statuses(http, cluster)
    return {key: body["services"][service]["primary"] for key, body in found.items() if key not in exclude}


@pytest_twisted.ensureDeferred
async def test_kill_9_of_the_view_manager_and_the_catalog_primary(several, http):
    cluster = several
    leader = await agreed(http, cluster)
    others = [key for key in cluster.frontends if key != leader]
    primary = (await statuses(http, cluster))[leader]["services"]["catalog"]["primary"]
    load = Load(http, {key: cluster.frontend_url(key) for key in others})
    load.start()
    await sleep(1.0)

    killed_at = now()
    cluster.stop(leader, signal.SIGKILL)
    cluster.stop(f"catalog:{primary}", signal.SIGKILL)
    bound = LEASE_TTL + 2 * HEARTBEAT_TIMEOUT
    while True:
        seen = await primary_of(http, cluster, "catalog", exclude=(leader,))
        if seen and all(name not in (None, primary) for name in seen.values()):
            break
        assert now() - killed_at < 3 * bound, seen
        await sleep(0.02)
    new_primary = now() - killed_at
    await sleep(1.0)
    await load.stop()
    first_write = load.first_good("write", killed_at)
    pause = load.longest_pause("write", killed_at, now())
    print(f"manager and catalog primary killed: new primary in {new_primary:.2f}s; writes paused {pause:.2f}s at most")

    assert new_primary <= bound, f"no new catalog primary within {bound:.1f}s ({new_primary:.2f}s)"
    assert first_write is not None and pause <= bound, f"writes stopped for {pause:.2f}s"
    assert load.failed("read") == [], [(a.frontend, a.sent - killed_at, a.body) for a in load.failed("read")][:8]
    assert all(a.status in (200, 409, 503) for a in load.answers), {a.status for a in load.answers}

    await deferToThread(cluster.start, "catalog", primary)
    await deferToThread(cluster.start, "frontend", leader.partition(":")[2])
    await agreed(http, cluster)
    for service in ("catalog", "order"):
        await converged(cluster, service)


@pytest_twisted.ensureDeferred
async def test_kill_9_of_a_follower_changes_nothing(several, http):
    cluster = several
    leader = await agreed(http, cluster)
    follower = next(key for key in cluster.frontends if key != leader)
    others = [key for key in cluster.frontends if key != follower]
    before = views_of((await statuses(http, cluster))[leader])
    load = Load(http, {key: cluster.frontend_url(key) for key in others})
    watcher = Watcher(http, cluster)
    load.start()
    watcher.start()
    await sleep(0.5)
    killed_at = now()
    cluster.stop(follower, signal.SIGKILL)
    await sleep(LEASE_TTL + HEARTBEAT_TIMEOUT)
    found = await statuses(http, cluster)
    assert {views_of(body) == before for body in found.values()} == {True}
    assert {body["frontend"]["leader"] for body in found.values()} == {leader.partition(":")[2]}
    await deferToThread(cluster.start, "frontend", follower.partition(":")[2])
    assert await agreed(http, cluster) == leader
    await load.stop()
    await watcher.stop()

    assert views_of((await statuses(http, cluster))[follower]) == before
    assert load.failed("read") == [] and load.failed("write") == [], (load.failed("read") + load.failed("write"))[:5]
    assert load.longest_pause("write", killed_at, now()) < HEARTBEAT_TIMEOUT
    assert set(watcher.leaders()) == {leader}


@pytest_twisted.ensureDeferred
async def test_etcd_down_views_stay_and_the_front_ends_serve_by_the_last_view(several, http):
    cluster = several
    leader = await agreed(http, cluster)
    before = views_of((await statuses(http, cluster))[leader])
    load = Load(http, {key: cluster.frontend_url(key) for key in cluster.frontends})
    load.start()
    await sleep(0.5)

    cluster.etcd.kill()
    down_at = now()
    await sleep(LEASE_TTL + 1.0)  # the leader's lease lapses: nobody manages the views
    found = await statuses(http, cluster)
    assert {body["frontend"]["role"] for body in found.values()} == {"follower"}
    assert all(views_of(body) == before for body in found.values())
    backup = before["catalog"][2][0]
    load_stopped = now()
    await load.stop()
    assert load.failed("read") == [] and load.failed("write") == [], (load.failed("read") + load.failed("write"))[:5]
    writes = [a for a in load.answers if a.kind == "write" and a.sent > down_at + LEASE_TTL and a.status == 200]
    assert writes and load.longest_pause("write", down_at, load_stopped) < HEARTBEAT_TIMEOUT

    # A replica killed now makes no view change: there is no view manager.
    readers = Load(http, {key: cluster.frontend_url(key) for key in cluster.frontends}, writers=0)
    readers.start()
    cluster.stop(f"catalog:{backup}", signal.SIGKILL)
    await sleep(2 * HEARTBEAT_TIMEOUT + 1.0)
    found = await statuses(http, cluster)
    assert all(views_of(body) == before for body in found.values())
    # Nor can a catalog write be acknowledged: the dead backup is in the view
    # and nobody may take it out.  It is refused, never answered 200.
    front = cluster.frontend_url(next(iter(cluster.frontends)))
    stock = (await call(http, "GET", f"{front}/lookup/3"))[1]["stock"]
    refused = await update(http, f"{front}/update/3")
    assert refused[0] == 503 and refused[1]["error"]["code"] == "unavailable", refused
    await readers.stop()
    assert readers.failed("read") == [], readers.failed("read")[:5]

    # etcd is back: a front end manages the views again, and takes the dead backup out.
    await deferToThread(cluster.etcd.start)
    back_at = now()
    while True:
        found = await statuses(http, cluster)
        catalog = {views_of(body)["catalog"] for body in found.values()}
        if len(catalog) == 1 and next(iter(catalog))[2] == () and next(iter(catalog))[0] > before["catalog"][0]:
            break
        assert now() - back_at < 15, catalog
        await sleep(0.1)
    # The refused write again, with its key: done once, whether or not the
    # first attempt had been committed.
    done = await update(http, f"{front}/update/3")
    assert done[0] == 200 and done[1]["item"]["stock"] == stock + 5, done
    assert (await call(http, "GET", f"{front}/lookup/3"))[1]["stock"] == stock + 5
    await deferToThread(cluster.start, "catalog", backup)
    await agreed(http, cluster)
    await converged(cluster, "catalog")


@pytest_twisted.ensureDeferred
async def test_a_write_through_one_front_end_shows_through_the_others_at_once(several, http):
    cluster = several
    await agreed(http, cluster)
    first, *rest = [cluster.frontend_url(key) for key in cluster.frontends]
    for url in rest:
        for _ in range(2):  # the second is a hit of the front end's cache
            status, book = await call(http, "GET", f"{url}/lookup/3")
            assert status == 200
        status, found = await call(http, "GET", f"{url}/search/graduate%20school")
        assert status == 200
    for round in range(5):
        status, body = await call(http, "POST", f"{first}/update/3", {"stock_delta": 1})
        assert status == 200, body
        stock = body["item"]["stock"]
        for url in rest:
            status, seen = await call(http, "GET", f"{url}/lookup/3")
            assert (status, seen["stock"]) == (200, stock), (round, url)
    new = {"title": "Leases for the Impatient", "topic": "graduate school", "cost": "3.00", "stock": 2}
    status, body = await call(http, "POST", f"{rest[0]}/books", new)
    assert status == 201, body
    for url in [first, *rest]:
        status, found = await call(http, "GET", f"{url}/search/graduate%20school")
        assert body["item"]["id"] in [item["id"] for item in found["items"]], url
