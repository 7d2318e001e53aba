"""
Several front ends on a three-member etcd cluster, with one member killed
under load (issue 11, item 7): the front ends go on with the two members
left (a quorum), to the next endpoint of C{[coordinator] etcd}, and a
view manager killed afterwards is still replaced within C{lease_ttl +
heartbeat_timeout} -- reads through the other front end never fail, writes
never stop for longer than that.
"""

from __future__ import annotations

import signal

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from pygmy.testing import Cluster, converged
from tests.integration.frontends_load import Load, Watcher, agreed, now, sleep, statuses

#: As in test_frontends.py: etcd grants whole seconds, so a 2 s lease, with room for a loaded machine.
LEASE_TTL = 2.5
HEARTBEAT_TIMEOUT = 0.6

pytestmark = pytest.mark.integration


@pytest.fixture
def on_three_members(etcd_cluster, tmp_path):
    """Two front ends whose coordinator lists every member; every process is stopped by its pid."""
    running = Cluster(
        tmp_path,
        frontends=("1", "2"),
        coordinator={"etcd": etcd_cluster.endpoints, "lease_ttl": str(LEASE_TTL)},
        heartbeat_interval="0.2",
        heartbeat_timeout=str(HEARTBEAT_TIMEOUT),
    )
    try:
        running.start_all()
        yield running
    finally:
        running.stop_all()


@pytest_twisted.ensureDeferred
async def test_a_member_of_three_killed_under_load_then_the_view_manager(on_three_members, etcd_cluster, http):
    cluster = on_three_members
    leader = await agreed(http, cluster)
    load = Load(http, {key: cluster.frontend_url(key) for key in cluster.frontends})
    watcher = Watcher(http, cluster)
    load.start()
    watcher.start()
    await sleep(1.0)

    # The first endpoint, the one every front end asks first, dies.
    member_killed = now()
    etcd_cluster.members[0].kill()
    await sleep(LEASE_TTL + 1.0)
    # If that member was etcd's leader, renewals may fail through its
    # election long enough for the manager to step down: safe, and allowed,
    # so long as one front end manages the views again.
    leader = await agreed(http, cluster)

    # Then the view manager: the other front end takes over through the two members left.
    follower = next(key for key in cluster.frontends if key != leader)
    killed_at = now()
    cluster.stop(leader, signal.SIGKILL)
    bound = LEASE_TTL + HEARTBEAT_TIMEOUT
    while True:
        body = (await statuses(http, cluster)).get(follower)
        if body is not None and body["frontend"]["role"] == "leader":
            break
        assert now() - killed_at < 3 * bound, "no new view manager"
        await sleep(0.02)
    took_over = now() - killed_at
    await sleep(1.0)
    await load.stop()
    await watcher.stop()

    survivors = [a for a in load.answers if a.frontend == follower]
    failed_reads = [a for a in load.failed("read") if a.frontend == follower or a.answered < killed_at]
    print(f"etcd member killed, then manager {leader}: {follower} took over in {took_over:.2f}s")
    assert took_over <= bound, f"another front end managed the views {took_over:.2f}s after the kill"
    assert failed_reads == [], [(a.frontend, a.sent - member_killed, a.body) for a in failed_reads][:8]
    assert load.longest_pause("write", member_killed, killed_at) <= bound
    good = sorted(a.answered for a in survivors if a.kind == "write" and a.status in (200, 409))
    gaps = [b - a for a, b in zip([member_killed] + good, good, strict=False)]
    assert good and max(gaps) <= bound, f"writes through {follower} stopped for {max(gaps, default=0):.2f}s"
    assert watcher.views_went_down() == []

    await deferToThread(etcd_cluster.members[0].start)
    await deferToThread(cluster.start, "frontend", leader.partition(":")[2])
    assert await agreed(http, cluster) == follower
    for service in ("catalog", "order"):
        await converged(cluster, service)
