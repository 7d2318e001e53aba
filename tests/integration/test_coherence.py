"""
Coherent caches on real processes (DESIGN §7): a front end frozen with
SIGSTOP for longer than C{heartbeat_timeout} holds a catalog write up for
about C{heartbeat_timeout} only (the catalog primary drops its silent
connection), and once thawed its first lookup of the book shows the write
(its lease had lapsed), not what it had cached.

With one front end, a frozen front end answers no client either, so the
write goes straight to the catalog primary's internal route, with the
secret, as the front end itself would send it.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
import pytest_twisted
from twisted.internet.task import deferLater

from pygmy.testing import get_json, settled
from tests.integration.load import AUTH, request

pytestmark = pytest.mark.integration


async def sleep(seconds: float) -> None:
    from twisted.internet import reactor

    await deferLater(reactor, seconds, lambda: None)


async def first_answer(http, url: str, within: float = 15.0):
    """The first 200 of C{GET url}, waiting out the 503s of a cluster that settles again."""
    deadline = time.monotonic() + within
    while True:
        status, body = await request(http, "GET", url)
        if status == 200 or time.monotonic() > deadline:
            return status, body
        await sleep(0.05)


@pytest_twisted.ensureDeferred
async def test_a_frozen_front_end_holds_a_write_up_for_heartbeat_timeout_and_then_serves_no_stale_entry(
    fresh_cluster, http
):
    cluster = fresh_cluster
    timeout = cluster.config.cluster.heartbeat_timeout
    services = await settled(cluster)
    primary = services["catalog"]["primary"]
    lookup = f"{cluster.url}/lookup/3"
    status, before = await request(http, "GET", lookup)
    assert status == 200, before
    hits = get_json(cluster.url + "/status")[1]["cache"]["hits"]
    assert await request(http, "GET", lookup) == (200, before)
    assert get_json(cluster.url + "/status")[1]["cache"]["hits"] == hits + 1, "the lookup is not cached"
    new_cost = "77.70" if before["cost"] != "77.70" else "66.60"

    frontend = cluster.processes["frontend"]
    replica = cluster.replica_url("catalog", primary)
    os.kill(frontend.pid, signal.SIGSTOP)
    try:
        await sleep(timeout / 2)
        started = time.monotonic()
        response = await http.request(
            "POST",
            f"{replica}/books/3/update",
            data=json.dumps({"request_id": "frozen-front-end", "cost": new_cost}).encode(),
            headers=AUTH,
        )
        written = json.loads(await response.content())
        waited = time.monotonic() - started
        assert response.code == 200, written
        assert written["item"]["cost"] == new_cost
        # It waited for the silent front end, and not for much longer than heartbeat_timeout.
        assert timeout * 0.8 <= waited <= timeout + 1.0, waited
        metrics = (await (await http.get(f"{replica}/metrics", headers=AUTH)).content()).decode()
        assert "pygmy_invalidation_silent_closes_total 1.0" in metrics, metrics
        await sleep(timeout)
    finally:
        os.kill(frontend.pid, signal.SIGCONT)
    status, after = await first_answer(http, lookup)
    assert status == 200, after
    assert after["cost"] == new_cost, f"a stale entry was served after the write: {after}"
    await settled(cluster)
    assert await request(http, "GET", lookup) == (200, after)
