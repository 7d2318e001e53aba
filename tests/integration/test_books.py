"""
C{POST /books} on real twistd processes: a new book shows through the front
end at once (a lookup, a search of its topic in any case that the cache
held before, a page of the list that it held too) and is on both catalog
replicas, whose dumps and checksums agree; a thousand concurrent adds
through one front end all succeed with distinct, consecutive ids; and a
C{kill -9} of the catalog primary right after a 201 loses nothing.
"""

from __future__ import annotations

import json
import signal
from urllib.parse import quote

import pytest
import pytest_twisted
from twisted.internet.defer import DeferredSemaphore, ensureDeferred, gatherResults

from pygmy.testing import SECRET, converged, get_json, settled

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"}


def add(cluster, book, key=None):
    """A blocking C{POST /books}; its status and body."""
    headers = dict(AUTH)
    if key is not None:
        headers["Idempotency-Key"] = key
    return get_json(cluster.url + "/books", headers=headers, method="POST", body=book)


def search(cluster, topic):
    status, body = get_json(f"{cluster.url}/search/{quote(topic, safe='')}")
    assert status == 200, body
    return [item["id"] for item in body["items"]]


def cache_of(cluster):
    return get_json(cluster.url + "/status")[1]["cache"]


def dumps(cluster):
    """Each catalog replica's C{/admin/dump}, by name."""
    auth = {"Authorization": f"Bearer {SECRET}"}
    return {
        replica.name: get_json(replica.url + "/admin/dump", headers=auth)[1]
        for replica in cluster.config.replicas["catalog"]
    }


@pytest_twisted.ensureDeferred
async def test_a_new_book_shows_everywhere_and_the_replicas_agree(cluster):
    await settled(cluster)
    # Cached before the add: the search in two spellings, the list's first page and a later one.
    for _ in range(2):
        assert search(cluster, "école") == [] and search(cluster, "ÉCOLE") == []
        assert [item["id"] for item in get_json(cluster.url + "/list")[1]["items"]][-1] >= 7
    hits = cache_of(cluster)["hits"]
    assert search(cluster, "école") == []
    assert cache_of(cluster)["hits"] == hits + 1, "the search was not cached"

    book = {"title": "Les Misérables", "topic": "École", "cost": "12.5", "stock": 4}
    status, body = add(cluster, book)
    assert status == 201, body
    item = body["item"]
    assert item == {"id": item["id"], **book, "cost": "12.50"}

    assert get_json(f"{cluster.url}/lookup/{item['id']}") == (200, item)
    for spelling in ("école", "ÉCOLE", "E\u0301cole"):
        assert search(cluster, spelling) == [item["id"]], spelling
    assert get_json(cluster.url + "/list")[1]["items"][-1] == item
    assert get_json(f"{cluster.url}/list?after={item['id'] - 1}&limit=5")[1] == {"items": [item], "next": None}

    statuses = await converged(cluster, "catalog")
    assert len({status["checksum"] for status in statuses}) == 1
    found = dumps(cluster)
    assert found["A"] == found["B"]
    assert found["A"]["rows"][-1] == item
    assert all(set(row) == {"id", "title", "topic", "cost", "stock"} for row in found["A"]["rows"])


@pytest_twisted.ensureDeferred
async def test_a_key_replays_and_another_book_under_it_conflicts(cluster):
    await settled(cluster)
    book = {"title": "Keyed", "topic": "keys", "cost": "1.00", "stock": 1}
    first = add(cluster, book, key="keyed-add-1")
    assert first[0] == 201, first
    assert add(cluster, {**book, "cost": "1"}, key="keyed-add-1") == first
    status, body = add(cluster, {**book, "stock": 2}, key="keyed-add-1")
    assert (status, body["error"]["code"]) == (409, "conflict")
    assert search(cluster, "KEYS") == [first[1]["item"]["id"]]


@pytest_twisted.ensureDeferred
async def test_a_thousand_concurrent_adds_get_distinct_consecutive_ids(fresh_cluster, http):
    cluster = fresh_cluster
    await settled(cluster)
    headers = {key: [value] for key, value in AUTH.items()}
    limit = DeferredSemaphore(500)

    async def one(n):
        body = json.dumps({"title": f"Bulk {n}", "topic": f"bulk {n % 10}", "cost": "2.00", "stock": n}).encode()
        response = await http.request("POST", cluster.url + "/books", data=body, headers=headers)
        return response.code, json.loads(await response.content())

    answers = await gatherResults([limit.run(lambda n=n: ensureDeferred(one(n))) for n in range(1000)])
    refused = [answer for answer in answers if answer[0] != 201]
    assert not refused, refused[:5]
    ids = sorted(body["item"]["id"] for _, body in answers)
    assert ids == list(range(8, 1008))
    assert {body["item"]["title"]: body["item"]["stock"] for _, body in answers} == {
        f"Bulk {n}": n for n in range(1000)
    }
    statuses = await converged(cluster, "catalog", within=10.0)
    assert len({status["checksum"] for status in statuses}) == 1
    found = dumps(cluster)
    assert found["A"] == found["B"] and len(found["A"]["rows"]) == 1007
    assert len(search(cluster, "BULK 3")) == 100


@pytest_twisted.ensureDeferred
async def test_kill_9_of_the_catalog_primary_right_after_a_201_loses_nothing(fresh_cluster):
    cluster = fresh_cluster
    services = await settled(cluster)
    primary = services["catalog"]["primary"]
    book = {"title": "Survivor", "topic": "Crash Tests", "cost": "3.30", "stock": 2}
    status, body = add(cluster, book)
    assert status == 201, body
    item = body["item"]
    cluster.stop(f"catalog:{primary}", signal.SIGKILL)

    services = await settled_without(cluster, primary)
    assert services["catalog"]["primary"] != primary
    assert get_json(f"{cluster.url}/lookup/{item['id']}") == (200, item)
    assert search(cluster, "crash tests") == [item["id"]]
    # Writes go on under the new primary, with the next id.
    status, after = add(cluster, {**book, "title": "Next"})
    assert (status, after["item"]["id"]) == (201, item["id"] + 1)

    cluster.start("catalog", primary)
    await settled(cluster)
    await converged(cluster, "catalog")
    found = dumps(cluster)
    assert found["A"] == found["B"]
    assert [row for row in found["A"]["rows"] if row["id"] >= item["id"]] == [item, after["item"]]


async def settled_without(cluster, gone, within=10.0):
    """Wait until the catalog has a primary other than C{gone}; the front end's services."""
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    deadline = reactor.seconds() + within
    while True:
        services = get_json(cluster.url + "/status")[1]["services"]
        primary = services["catalog"]["primary"]
        if primary is not None and primary != gone:
            return services
        assert reactor.seconds() < deadline, services
        await deferLater(reactor, 0.1, lambda: None)
