"""
Durable views on real twistd processes (DESIGN.md section 6, invariant 7):
the double fault.  The order backup stalls (SIGSTOP) and is dropped from the
in-sync set, the primary acknowledges buys alone, then the primary and the
front end are killed with C{kill -9}.  The restarted front end begins from
its stored view: it never promotes the stale backup, answers buys with 503
until the old primary is back, and then every acknowledged order is there
under its id.
"""

import os
import signal

import pytest

from pygmy.testing import SECRET, Cluster, every_replica_in_view, get_json, in_step, replica_statuses, wait_until

pytestmark = pytest.mark.integration


def services(cluster) -> dict:
    return get_json(cluster.url + "/status")[1]["services"]


@pytest.fixture
def cluster(tmp_path):
    running = Cluster(tmp_path)
    stopped = []
    running.stopped = stopped
    try:
        running.start_all()
        yield running
    finally:
        for pid in stopped:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        running.stop_all()


def test_a_stale_backup_is_never_promoted_after_the_front_end_restarts(cluster):
    wait_until(lambda: every_replica_in_view(services(cluster)), 15, "a full view")
    view = services(cluster)["order"]
    primary, backup = view["primary"], view["backups"][0]

    # The backup stalls: the front end drops it, the primary goes on alone.
    stalled = cluster.processes[f"order:{backup}"].pid
    os.kill(stalled, signal.SIGSTOP)
    cluster.stopped.append(stalled)
    wait_until(lambda: services(cluster)["order"]["backups"] == [], 10, "the stalled backup dropped")
    acknowledged = {}
    for item in (1, 2, 3, 1, 2, 3, 4, 5):
        status, body = get_json(f"{cluster.url}/buy/{item}", method="POST", body={})
        assert status == 200, body
        acknowledged[body["order"]["id"]] = item
    assert len(acknowledged) == 8

    # The primary and the front end crash; the front end comes back, then the stale backup.
    cluster.stop(f"order:{primary}", signal.SIGKILL)
    cluster.stop("frontend", signal.SIGKILL)
    cluster.start("frontend")
    os.kill(stalled, signal.SIGCONT)
    cluster.stopped.remove(stalled)
    wait_until(lambda: services(cluster)["order"]["replicas"][backup]["alive"], 10, "the stale backup beating")
    order = services(cluster)["order"]
    assert order["primary"] is None, order
    assert order["in_sync"] == [primary], order
    assert order["replicas"][backup]["promotable"] is False, order
    status, body = get_json(f"{cluster.url}/buy/6", method="POST", body={})
    assert status == 503, body
    assert services(cluster)["order"]["primary"] is None

    # The old primary returns: it leads, the stale backup catches up, nothing is lost.
    cluster.start("order", primary)
    wait_until(lambda: every_replica_in_view(services(cluster)), 15, "a full view again")
    assert services(cluster)["order"]["primary"] == primary
    for order_id, item in acknowledged.items():
        status, body = get_json(f"{cluster.url}/orders/{order_id}")
        assert status == 200 and body["order"]["item_id"] == item, (order_id, body)
    wait_until(lambda: in_step(replica_statuses(cluster.config, "order")), 5, "the order replicas in step")
    dump = get_json(
        cluster.replica_url("order", backup) + "/admin/dump", headers={"Authorization": f"Bearer {SECRET}"}
    )[1]
    assert {row["id"] for row in dump["rows"]} >= set(acknowledged)


def test_a_stale_read_during_an_outage_is_not_served_after_it(cluster):
    """Replies of a replica outside the view are served while nothing better is alive, never cached."""
    wait_until(lambda: every_replica_in_view(services(cluster)), 15, "a full view")
    view = services(cluster)["catalog"]
    primary, backup = view["primary"], view["backups"][0]
    auth = {"Authorization": f"Bearer {SECRET}"}

    cluster.stop(f"catalog:{backup}", signal.SIGKILL)
    wait_until(lambda: services(cluster)["catalog"]["backups"] == [], 10, "the dead backup dropped")
    status, body = get_json(f"{cluster.url}/update/1", headers=auth, method="POST", body={"stock_delta": 5})
    assert status == 200, body
    fresh = body["item"]["stock"]

    # The primary dies; the stale backup comes back, outside the in-sync set, and serves reads.
    cluster.stop(f"catalog:{primary}", signal.SIGKILL)
    cluster.start("catalog", backup)
    wait_until(lambda: services(cluster)["catalog"]["replicas"][backup]["alive"], 10, "the stale backup beating")
    for _ in range(3):
        status, body = get_json(f"{cluster.url}/lookup/1")
        assert status == 200 and body["stock"] == fresh - 5, body

    # Once the primary is back, no lookup shows the stale stock.
    cluster.start("catalog", primary)
    wait_until(lambda: every_replica_in_view(services(cluster)), 15, "a full view again")
    for _ in range(3):
        status, body = get_json(f"{cluster.url}/lookup/1")
        assert status == 200 and body["stock"] == fresh, body
