"""
Pygmy over a real (if virtual) network: each process on a host of its own.

Every process runs in a Linux network namespace of its own with its own
address, as on separate machines: a veth pair joins each namespace to a
bridge, which lives in one more namespace (the "switch", where the test's
client runs too).  config.ini names those addresses as the hosts.  Then a
replica (a catalog backup, the catalog primary, the order primary) is cut
off with iptables inside its namespace (every packet in or out dropped, as
when a cable is pulled, so its connections go silent rather than closed):
the front end must declare it dead and route around it, reads and buys
keep working, and once the rules are gone it rejoins the view, every
replica converges, and every acknowledged order is there.

Nothing touches the machine's own network: the bridge, the veths and the
addresses (in 10.201.0.0/24) exist only inside namespaces this test creates
(named after its pid) and deletes again, even on failure.  There is no
default route and no forwarding, so no packet can leave the machine.

The namespaces, the client and the processes are C{tests/netns_hosts.py}.
It needs root, C{ip netns} and C{iptables}, and is skipped otherwise.
"""

from __future__ import annotations

import random

import pytest

from tests.netns_hosts import AUTH, HOSTS, Hosts, hosts_on_namespaces

pytestmark = pytest.mark.integration


@pytest.fixture
def hosts(tmp_path):
    """The cluster on five "hosts" (C{tests/netns_hosts.py}); everything is removed afterwards, even on failure."""
    yield from hosts_on_namespaces(tmp_path)


def buy(cluster: Hosts, item: int, acknowledged: list) -> int | None:
    """Buy C{item}; keep the order if it was acknowledged; return the status."""
    status, body = cluster.client.call("POST", cluster.url() + f"/buy/{item}")
    if status == 200:
        acknowledged.append(body["order"])
    return status


def reads_succeed(cluster: Hosts, rng: random.Random, count: int) -> None:
    """C{count} rounds of lookup, search and list through the front end, all 200."""
    for _ in range(count):
        for path in (f"/lookup/{rng.randint(1, 7)}", "/search/graduate%20school", "/list"):
            status, body = cluster.get("frontend", path)
            assert status == 200, (path, status, body)


@pytest.mark.parametrize("service, which", [("catalog", "backup"), ("catalog", "primary"), ("order", "primary")])
def test_cut_off_replica_is_routed_around_and_rejoins(hosts, service, which):
    cluster = hosts
    rng = random.Random(677)
    services = cluster.wait_for("every replica in the view", cluster.settled, 15.0)
    view = services[service]
    victim = view["primary"] if which == "primary" else view["backups"][0]
    victim_key = f"{service}:{victim}"
    before = cluster.ledger()
    acknowledged: list = []
    for item in (1, 2, 3):
        assert buy(cluster, item, acknowledged) == 200

    cluster.network.cut(HOSTS[victim_key][0])
    assert cluster.client.call("GET", cluster.url(victim_key) + "/status", timeout=1.0)[0] is None
    # The cable is out; until the front end notices, a buy may answer 503
    # (never 500), and a read is retried on another replica.
    assert buy(cluster, 4, acknowledged) in (200, 503)
    reads_succeed(cluster, rng, 2)

    def declared_dead():
        view = cluster.status()[service]
        member = view["replicas"][victim]
        if member["alive"] or victim == view["primary"] or victim in view["backups"]:
            return None
        return view

    view = cluster.wait_for(f"{victim_key} declared dead", declared_dead, 5.0)
    assert view["replicas"][victim]["state"] == "down"
    assert view["primary"] is not None and view["primary"] != victim

    # The front end routes around it: every read succeeds, and buys go
    # through (allowing the new view a moment to reach every replica).
    reads_succeed(cluster, rng, 5)
    cluster.wait_for("a buy after the failover", lambda: buy(cluster, 5, acknowledged) == 200, 5.0)
    for _ in range(10):
        assert buy(cluster, rng.randint(1, 7), acknowledged) == 200
    assert cluster.client.call("POST", cluster.url() + "/update/6", {"stock_delta": 3}, AUTH)[0] == 200

    cluster.network.cut(HOSTS[victim_key][0], cut=False)
    services = cluster.wait_for(f"{victim_key} back in the view", cluster.settled, 20.0)
    assert services[service]["replicas"][victim]["alive"]
    for name in ("catalog", "order"):
        statuses = cluster.wait_for(f"{name} replicas converged", lambda n=name: cluster.converged(n), 5.0)
        assert sorted(s["role"] for s in statuses) == ["backup", "primary"], statuses

    # Nothing acknowledged was lost and stock adds up (DESIGN §6, 1-3).
    after = cluster.ledger()
    for item, (stock, orders) in after.items():
        start_stock, start_orders = before[item]
        restocked = 3 if item == 6 else 0
        assert stock >= 0
        assert start_stock + restocked == stock + (orders - start_orders), (item, before[item], after[item])
    for order in acknowledged:
        assert cluster.get("frontend", f"/orders/{order['id']}") == (200, {"order": order})
    assert len({order["id"] for order in acknowledged}) == len(acknowledged)
    # The rejoined replica holds the same rows as the others.
    keys = [key for key in HOSTS if key.startswith(service + ":")]
    dumps = [cluster.get(key, "/admin/dump", AUTH)[1] for key in keys]
    assert all(dump == dumps[0] for dump in dumps), victim_key
