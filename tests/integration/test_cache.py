"""
The front end's cache on real processes: after every acknowledged buy or
update, a lookup through the front end shows the new values, while many
readers keep the cache busy; a hung replica costs timeouts, not failures
or "Unhandled error" noise in the front end's log.
"""

import json
import os
import signal

import pytest
import pytest_twisted
from twisted.internet.defer import DeferredList, ensureDeferred

from pygmy.testing import Cluster, get_json, settled
from tests.integration.load import AUTH, request

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cache_cluster(tmp_path_factory):
    running = Cluster(tmp_path_factory.mktemp("cache"), request_timeout="0.5")
    try:
        running.start_all()
        yield running
    finally:
        running.stop_all()


async def readers(http, url, items, until, reactor, seen, headers=None):
    """Keep looking up C{items} until C{until}; count the answers."""
    n = 0
    while reactor.seconds() < until:
        response = await http.request("GET", f"{url}/lookup/{items[n % len(items)]}", headers=headers)
        await response.content()
        seen[response.code] = seen.get(response.code, 0) + 1
        n += 1


async def post(http, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    response = await http.request("POST", url, data=data, headers=AUTH)
    return response.code, json.loads(await response.content())


@pytest_twisted.ensureDeferred
async def test_reads_see_every_acknowledged_write(cache_cluster, http):
    from twisted.internet import reactor

    cluster = cache_cluster
    url = cluster.url
    await settled(cluster)
    seen = {}
    background = [ensureDeferred(readers(http, url, [2, 3], reactor.seconds() + 8, reactor, seen)) for _ in range(12)]
    checked = 0
    for n in range(60):
        if n % 3 == 0:
            status, body = await post(http, f"{url}/update/2", {"cost": f"{10 + n}.25", "stock_delta": 2})
            assert status == 200, body
            expected = body["item"]
        else:
            _, before = await request(http, "GET", f"{url}/lookup/2")
            status, body = await post(http, f"{url}/buy/2")
            assert status == 200, body
            expected = dict(before, stock=before["stock"] - 1)
        status, now = await request(http, "GET", f"{url}/lookup/2")
        assert (status, now) == (200, expected), n
        checked += 1
    await DeferredList(background)
    assert checked == 60
    assert set(seen) == {200}, seen
    cache = get_json(url + "/status")[1]["cache"]
    assert cache["hits"] > 100 and cache["invalidations"] >= 60, cache


@pytest_twisted.ensureDeferred
async def test_hung_replica_costs_no_failures_and_no_noise(cache_cluster, http):
    from twisted.internet import reactor

    cluster = cache_cluster
    services = await settled(cluster)
    backup = services["catalog"]["backups"][0]
    process = cluster.processes[f"catalog:{backup}"]
    os.kill(process.pid, signal.SIGSTOP)
    try:
        seen = {}
        no_cache = {"Cache-Control": "no-cache"}
        until = reactor.seconds() + 3
        await DeferredList(
            [ensureDeferred(readers(http, cluster.url, [4, 5, 6], until, reactor, seen, no_cache)) for _ in range(6)]
        )
        view = get_json(cluster.url + "/status")[1]["services"]["catalog"]
        assert backup not in view["backups"], view
    finally:
        os.kill(process.pid, signal.SIGCONT)
    assert set(seen) == {200}, seen
    await settled(cluster)
    log = (cluster.directory / "frontend.log").read_text()
    assert "Unhandled" not in log and "Traceback" not in log
