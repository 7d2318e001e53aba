"""
Three replicas per service, from config.ini alone (sections C{catalog:C}
and C{order:C}; no other setting): every replica joins the view, buys and
lookups work, and C{kill -9} of the catalog primary and then of the order
primary under load keeps DESIGN §6's invariants, with all three replicas of
each service converging afterwards.
"""

import signal

import pytest
import pytest_twisted

from pygmy.testing import Cluster, converged, get_json, settled
from tests.integration.load import check_invariants, ledger, run_load

pytestmark = pytest.mark.integration
REPLICAS = ("A", "B", "C")


@pytest.fixture
def three(tmp_path):
    """A front end and three replicas of each service, stopped after the test."""
    running = Cluster(tmp_path, replicas=REPLICAS)
    try:
        running.start_all()
        yield running
    finally:
        running.stop_all()


def roles(services: dict, service: str) -> tuple:
    """C{(primary, sorted backups)} of C{service} in the front end's status."""
    view = services[service]
    return view["primary"], sorted(view["backups"])


@pytest_twisted.ensureDeferred
async def test_three_replicas_settle_and_serve(three):
    services = await settled(three)
    for service in ("catalog", "order"):
        primary, backups = roles(services, service)
        assert sorted([primary] + backups) == list(REPLICAS), services[service]
        assert set(services[service]["replicas"]) == set(REPLICAS)
        assert all(r["alive"] for r in services[service]["replicas"].values())

    status, book = get_json(three.url + "/lookup/2")
    assert status == 200 and book["title"] == "RPCs for Dummies"
    status, bought = get_json(three.url + "/buy/2", method="POST")
    assert status == 200, bought
    assert get_json(f"{three.url}/orders/{bought['order']['id']}") == (200, bought)
    assert get_json(three.url + "/lookup/2")[1]["stock"] == book["stock"] - 1
    status, found = get_json(three.url + "/search/distributed%20systems")
    assert status == 200 and [i["id"] for i in found["items"]] == [1, 2]

    for service in ("catalog", "order"):
        statuses = await converged(three, service)
        assert sorted(s["replica"] for s in statuses) == list(REPLICAS)
        assert sorted(s["role"] for s in statuses) == ["backup", "backup", "primary"]


@pytest_twisted.ensureDeferred
async def test_kill_9_both_primaries_under_load(three, http):
    services = await settled(three)
    catalog_primary = services["catalog"]["primary"]
    order_primary = services["order"]["primary"]
    before = ledger(three)
    killed = []

    def kill(service, name):
        def event():
            killed.append(three.stop(f"{service}:{name}", signal.SIGKILL))

        return event

    def restart(service, name):
        return lambda: three.start(service, name)

    record = await run_load(
        http,
        three.url,
        seconds=9.0,
        events=[
            (1.5, kill("catalog", catalog_primary)),
            (3.0, restart("catalog", catalog_primary)),
            (4.5, kill("order", order_primary)),
            (6.0, restart("order", order_primary)),
        ],
    )
    assert killed == [-signal.SIGKILL, -signal.SIGKILL]
    assert record.buys.get(200, 0) > 20, record.buys
    services = await settled(three)
    check_invariants(three, before, record)
    for service, old in (("catalog", catalog_primary), ("order", order_primary)):
        # A backup took over; the old primary came back as a backup.
        assert services[service]["primary"] != old, services[service]
        assert old in services[service]["backups"], services[service]
        statuses = await converged(three, service)
        assert sorted(s["role"] for s in statuses) == ["backup", "backup", "primary"], statuses
