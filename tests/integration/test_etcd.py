"""
The views store and the leadership of several front ends against a real
etcd (L{pygmy.testing.Etcd}): started on free local ports, killed with
C{kill -9}, restarted, and as a three-member cluster that loses a member.
"""

import json
import time
import urllib.request
from base64 import b64decode, b64encode

import pytest
import pytest_twisted

from pygmy.coordination.etcd import NotLeader
from pygmy.coordination.store import ViewStoreError

pytestmark = pytest.mark.integration


def put(url, key, value, within=15.0):
    """
    A blocking put through the JSON gateway (set-up and checks only), tried
    again until C{within}: a put that reached a member while its leader had
    just died waits out etcd's request timeout, so it is given up sooner.
    """
    body = json.dumps({"key": b64encode(key.encode()).decode(), "value": b64encode(value.encode()).decode()})
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(url + "/v3/kv/put", body.encode()), timeout=2) as r:
                return json.loads(r.read())
        except OSError:
            if time.monotonic() > deadline:
                raise


def get(url, key):
    """A blocking range of one key: its value, or C{None}."""
    body = json.dumps({"key": b64encode(key.encode()).decode()})
    with urllib.request.urlopen(urllib.request.Request(url + "/v3/kv/range", body.encode()), timeout=5) as r:
        kvs = json.loads(r.read()).get("kvs", [])
    return None if not kvs else b64decode(kvs[0]["value"]).decode()


def test_etcd_keeps_its_data_across_kill_9(etcd):
    put(etcd.url, "/t/a", "1")
    etcd.kill()
    assert not etcd.healthy()
    etcd.start()
    assert get(etcd.url, "/t/a") == "1"


def test_a_three_member_cluster_serves_with_one_member_down(etcd_cluster):
    first, second, third = etcd_cluster.members
    put(first.url, "/t/b", "2")
    first.kill()
    put(second.url, "/t/b", "3")
    assert get(third.url, "/t/b") == "3"
    first.start()
    assert get(first.url, "/t/b") == "3"


# The views store and the leadership (pytest-twisted, on the real reactor)

TTL = 2.0
TIMEOUT = 1.0


def front_end(http, endpoints, name, prefix="/it"):
    """A front end's view of etcd: its gateway, its candidacy and its views store."""
    from twisted.internet import reactor

    from pygmy.coordination.etcd import EtcdViewStore
    from pygmy.coordination.etcd_gateway import Gateway
    from pygmy.coordination.etcd_leader import Leadership

    gateway = Gateway(endpoints, http, reactor, timeout=TIMEOUT)
    leadership = Leadership(gateway, prefix, name, TTL, reactor)
    return leadership, EtcdViewStore(gateway, prefix, leadership, reactor)


async def sleep(seconds):
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    await deferLater(reactor, seconds, lambda: None)


async def until(predicate, within, what, every=0.02):
    """Wait on the reactor until C{predicate()}; how long it took."""
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < within, f"timed out waiting {within}s for {what}"
        await sleep(every)
    return time.monotonic() - start


async def stopped(*fronts):
    for leadership, store in fronts:
        store.stop()
        await leadership.stop()


def view(number, primary="A", backups=("B",)):
    from pygmy.coordination.store import StoredView

    return StoredView(number, primary, tuple(backups), frozenset([primary, *backups]))


@pytest_twisted.ensureDeferred
async def test_views_round_trip_between_two_front_ends(etcd, http):
    one, two = front_end(http, etcd.url, "1"), front_end(http, etcd.url, "2")
    seen_one, seen_two = [], []
    try:
        one[0].start()
        await until(lambda: one[0].leading, 5, "front end 1 to lead")
        assert await one[1].load() == {}
        one[1].watch(lambda s, v: seen_one.append((s, v.number)))
        assert await two[1].load() == {}
        two[1].watch(lambda s, v: seen_two.append((s, v.number)))
        for number in (1, 2, 3):
            await one[1].store("catalog", view(number))
        await one[1].store("order", view(1, "B", ("A",)))
        await until(lambda: len(seen_two) == 4, 5, "the other front end's watch")
        assert seen_two == [("catalog", 1), ("catalog", 2), ("catalog", 3), ("order", 1)]
        await until(lambda: len(seen_one) == 4, 5, "the writer's own watch")
        loaded = await two[1].load()
        assert loaded == {"catalog": view(3), "order": view(1, "B", ("A",))}
        with pytest.raises(NotLeader):
            await two[1].store("catalog", view(4))
        assert (await two[1].load())["catalog"] == view(3)
    finally:
        await stopped(one, two)


@pytest_twisted.ensureDeferred
async def test_two_candidates_make_exactly_one_leader_and_a_lapse_hands_over(etcd, http):
    fronts = [front_end(http, etcd.url, name) for name in ("1", "2")]
    try:
        for leadership, _ in fronts:
            leadership.start()
        await until(lambda: any(f[0].leading for f in fronts), 5, "a leader")
        await sleep(1.0)
        assert sum(f[0].leading for f in fronts) == 1
        (old, old_store), (new, new_store) = sorted(fronts, key=lambda f: not f[0].leading)
        assert new.leader == old.name
        await old_store.store("catalog", view(5))
        deposed = []
        old.deposed = deposed.append
        # The leader's process stops renewing (as if frozen): it lapses
        # within lease_ttl, and the other wins once etcd expires the lease.
        old._renewing.stop()
        lapsed = await until(lambda: not old.leading, TTL + 0.5, "the old leader to notice")
        assert deposed and lapsed <= TTL + 0.2
        won = await until(lambda: new.leading, TTL + 1.5, "the other to take over")
        assert old.leading is False
        assert lapsed + won <= TTL + 1.5
        with pytest.raises(NotLeader):
            await old_store.store("catalog", view(6))
        await new_store.load()
        await new_store.store("catalog", view(6))
        assert (await old_store.load())["catalog"] == view(6)
    finally:
        await stopped(*fronts)


@pytest_twisted.ensureDeferred
async def test_a_deposed_manager_that_did_not_notice_stores_nothing(etcd, http):
    old, old_store = front_end(http, etcd.url, "1")
    new, new_store = front_end(http, etcd.url, "2")
    try:
        old.start()
        await until(lambda: old.leading, 5, "front end 1 to lead")
        await old_store.store("catalog", view(1))
        # Frozen: no renewals, and its own deadline does not fire either.
        old._renewing.stop()
        old._cancel_expiry()
        old._valid_until = float("inf")
        new.start()
        await until(lambda: new.leading, TTL + 2.0, "front end 2 to take over")
        # The view key is as the old manager last saw it: only the fence refuses.
        with pytest.raises(NotLeader):
            await old_store.store("catalog", view(9))
        assert not old.leading
        assert (await new_store.load())["catalog"] == view(1)
        await new_store.store("catalog", view(2))
        with pytest.raises(NotLeader):
            await old_store.store("catalog", view(10))
        assert (await new_store.load())["catalog"] == view(2)
    finally:
        await stopped((old, old_store), (new, new_store))


@pytest_twisted.ensureDeferred
async def test_stores_fail_cleanly_while_etcd_is_down_and_succeed_after(etcd, http):
    leader, store = front_end(http, etcd.url, "1")
    try:
        leader.start()
        await until(lambda: leader.leading, 5, "front end 1 to lead")
        await store.store("catalog", view(1))
        etcd.kill()
        failures = []
        for number in (2, 3, 4):
            started = time.monotonic()
            with pytest.raises(ViewStoreError) as caught:
                await store.store("catalog", view(number))
            failures.append((time.monotonic() - started, caught.value))
        assert all(took <= TIMEOUT + 0.5 for took, _ in failures), failures
        await until(lambda: not leader.leading, TTL + 0.5, "the leader to lapse without etcd")
        etcd.start()
        await until(lambda: leader.leading, 2 * TTL + 3, "the leadership again")
        assert (await store.load())["catalog"] == view(1)
        await store.store("catalog", view(5))
        assert (await store.load())["catalog"] == view(5)
    finally:
        await stopped((leader, store))


@pytest_twisted.ensureDeferred
async def test_stores_go_on_when_a_member_of_three_dies(etcd_cluster, http):
    fronts = [front_end(http, etcd_cluster.endpoints, name) for name in ("1", "2")]
    try:
        for leadership, _ in fronts:
            leadership.start()
        await until(lambda: any(f[0].leading for f in fronts), 5, "a leader")
        first, _ = next(f for f in fronts if f[0].leading)
        outcomes = []
        number = 0

        async def store_for(seconds):
            """Store ever newer views through whichever front end leads."""
            nonlocal number
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                number += 1
                leading = [store for leadership, store in fronts if leadership.leading]
                try:
                    if not leading:
                        raise ViewStoreError("no leader")
                    await leading[0].load()
                    await leading[0].store("catalog", view(number))
                    outcomes.append((time.monotonic(), number, None))
                except ViewStoreError as e:
                    outcomes.append((time.monotonic(), number, e))
                    await sleep(0.05)

        await store_for(1.0)
        # A starved member may call an election even now (the tests' election
        # timeout is 0.5 s): most stores succeed, and the last one.
        assert sum(e is None for _, _, e in outcomes) >= 5 and outcomes[-1][2] is None, outcomes
        # The member the leader talks to dies under the load of stores.
        killed = time.monotonic()
        etcd_cluster.members[first.gateway.current].kill()
        before = len(outcomes)
        await store_for(6.0)
        after = outcomes[before:]
        stored = [(at, n) for at, n, e in after if e is None]
        assert len(stored) >= 20, after
        # Stores stop for no longer than an election and a call's timeout.
        times = [killed] + [at for at, _ in stored]
        assert max(b - a for a, b in zip(times, times[1:], strict=False)) < TTL + 1.0, after
        # The manager usually keeps its lease through etcd's election, but a
        # slow one may outlast it (its renewals unanswered for lease_ttl):
        # then it stepped down, and one of them leads again.
        assert any(leadership.leading for leadership, _ in fronts), "nobody manages the views"
        last = max(n for _, n, e in outcomes if e is None)
        for _, store in fronts:
            assert (await store.load())["catalog"].number == last
    finally:
        await stopped(*fronts)
