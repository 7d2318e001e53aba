"""
An Idempotency-Key outlives the compaction of its log entries: real
processes with a tiny log (C{log_keep = 5}, compacted every 0.2 s), a keyed
buy or update, enough other writes that the primaries' logs no longer hold
its entries (waited for by asking the primaries' logs, not by sleeping),
then the same key again through the front end.

Before the C{requests} table (schema version 3), the replay ran again: the
catalog took a second copy, the order insert failed on its unique request
id, and the key answered 503 with an internal error for good.
"""

import pytest
import pytest_twisted

from pygmy.testing import Cluster, compacted_past, converged, get_json, settled
from tests.integration.load import AUTH

pytestmark = pytest.mark.integration
COMPACT_INTERVAL = 0.2


@pytest.fixture(scope="module")
def compacting(tmp_path_factory):
    """A cluster whose replicas keep 5 log entries, compacted every 0.2 s."""
    running = Cluster(tmp_path_factory.mktemp("idempotency"), log_keep=5, compact_interval=COMPACT_INTERVAL)
    try:
        running.start_all()
        yield running
    finally:
        running.stop_all()


def post(cluster, path, key=None, body=None, headers=None):
    """A POST through the front end, with C{key} as its Idempotency-Key."""
    headers = dict(headers or {})
    if key is not None:
        headers["Idempotency-Key"] = key
    if body is not None:
        headers["Content-Type"] = "application/json"
    return get_json(cluster.url + path, headers=headers, method="POST", body=body)


def stock(cluster, item_id):
    status, body = get_json(f"{cluster.url}/lookup/{item_id}")
    assert status == 200, body
    return body["stock"]


def primary_url(services, cluster, service):
    return cluster.replica_url(service, services[service]["primary"])


def head(url):
    """Where the log of the replica at C{url} ends."""
    return get_json(f"{url}/status")[1]["applied_seq"]


def logged(url, request_id, after, view):
    """
    C{(seq, view)} of the entry C{request_id} wrote in the log of the
    replica at C{url}, after its entry C{after} (of C{view}: the cluster is
    settled, so every entry is of the current view; the log keeps the last
    five, so C{after} is still there just after a write).
    """
    status, body = get_json(f"{url}/replication/log?after={after}&view={view}&limit=1000", headers=AUTH)
    assert status == 200 and body["entries"] is not None, body
    (entry,) = [entry for entry in body["entries"] if entry["request_id"] == request_id]
    return entry["seq"], entry["view"]


def bury(cluster, count=20):
    """C{count} unkeyed buys of book 1: entries in both services' logs."""
    for _ in range(count):
        status, body = post(cluster, "/buy/1")
        assert status == 200, body


def refused_as_conflict(status, body):
    assert status == 409, body
    assert body["error"]["code"] == "conflict", body
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    for internal in ("Traceback", "Integrity", "UNIQUE", "sqlite"):
        assert internal not in body["error"]["message"]


@pytest_twisted.ensureDeferred
async def test_a_buy_replays_after_its_entries_are_compacted(compacting):
    cluster = compacting
    services = await settled(cluster)
    catalog, order = primary_url(services, cluster, "catalog"), primary_url(services, cluster, "order")
    before = stock(cluster, 3)
    marks = {url: head(url) for url in (catalog, order)}
    status, first = post(cluster, "/buy/3", key="compacted-buy")
    assert status == 200, first
    where = [
        (url, *logged(url, "buy:key:compacted-buy", marks[url], services[service]["view"]))
        for url, service in ((catalog, "catalog"), (order, "order"))
    ]
    bury(cluster)
    for url, seq, view in where:
        await compacted_past(url, seq, view)

    status, again = post(cluster, "/buy/3", key="compacted-buy")
    assert (status, again) == (200, first)
    assert stock(cluster, 3) == before - 1
    assert get_json(f"{cluster.url}/orders/{first['order']['id']}") == (200, first)

    other = stock(cluster, 5)
    refused_as_conflict(*post(cluster, "/buy/5", key="compacted-buy"))
    assert stock(cluster, 5) == other
    await converged(cluster, "catalog")
    await converged(cluster, "order")


@pytest_twisted.ensureDeferred
async def test_an_update_replays_after_its_entry_is_compacted(compacting):
    cluster = compacting
    services = await settled(cluster)
    catalog = primary_url(services, cluster, "catalog")
    before = stock(cluster, 4)
    change = {"stock_delta": 2}
    mark = head(catalog)
    status, first = post(cluster, "/update/4", key="compacted-update", body=change, headers=AUTH)
    assert status == 200, first
    seq, view = logged(catalog, "update:key:compacted-update", mark, services["catalog"]["view"])
    bury(cluster)
    await compacted_past(catalog, seq, view)

    status, again = post(cluster, "/update/4", key="compacted-update", body=change, headers=AUTH)
    assert (status, again) == (200, first)
    assert stock(cluster, 4) == before + 2
    refused_as_conflict(*post(cluster, "/update/4", key="compacted-update", body={"stock_delta": 3}, headers=AUTH))
    assert stock(cluster, 4) == before + 2
    await converged(cluster, "catalog")
