"""
A bounded load of buys and lookups through the front end, recording every
answer, and the checks of DESIGN §6's invariants after it.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from twisted.internet.defer import DeferredList, ensureDeferred
from twisted.internet.task import deferLater

from pygmy.testing import SECRET, get_json

AUTH = {"Authorization": f"Bearer {SECRET}"}


@dataclass
class Record:
    """What a load saw."""

    buys: dict = field(default_factory=dict)  # status -> count
    reads: dict = field(default_factory=dict)
    orders: list = field(default_factory=list)  # every order answered 200
    errors: list = field(default_factory=list)  # unexpected answers


async def request(http, method, url):
    response = await http.request(method, url)
    return response.code, json.loads(await response.content())


async def client(http, url, record: Record, until: float, reactor, rng: random.Random):
    """One client: alternately buy and look up a random book until C{until}."""
    while reactor.seconds() < until:
        item = rng.randint(1, 7)
        try:
            status, body = await request(http, "POST", f"{url}/buy/{item}")
        except Exception as e:
            record.errors.append(f"buy {item}: {e!r}")
            continue
        record.buys[status] = record.buys.get(status, 0) + 1
        if status == 200:
            record.orders.append(body["order"])
        elif status not in (409, 503):
            record.errors.append(f"buy {item}: {status} {body}")
        try:
            status, body = await request(http, "GET", f"{url}/lookup/{rng.randint(1, 7)}")
        except Exception as e:
            record.errors.append(f"lookup: {e!r}")
            continue
        record.reads[status] = record.reads.get(status, 0) + 1
        if status != 200:
            record.errors.append(f"lookup: {status} {body}")


async def run_load(http, url, seconds: float, clients: int = 8, seed: int = 7, events=()):
    """
    Run C{clients} concurrent clients for C{seconds}; meanwhile call each
    C{(at, function)} of C{events} at C{at} seconds from the start.
    """
    from twisted.internet import reactor

    record = Record()
    start = reactor.seconds()
    rng = random.Random(seed)
    work = [
        ensureDeferred(client(http, url, record, start + seconds, reactor, random.Random(rng.random())))
        for _ in range(clients)
    ]
    for at, event in events:
        await deferLater(reactor, max(0.0, start + at - reactor.seconds()), lambda: None)
        event()
    results = await DeferredList(work, consumeErrors=True)
    for ok, failure in results:
        if not ok:
            record.errors.append(repr(failure))
    return record


def ledger(cluster) -> dict:
    """Per item: (stock, number of orders), read through the front end and an order replica."""
    items, after = [], 0
    while after is not None:
        status, listed = get_json(f"{cluster.url}/list?after={after}")
        assert status == 200, listed
        items.extend(listed["items"])
        after = listed["next"]
    primary = get_json(cluster.url + "/status")[1]["services"]["order"]["primary"]
    status, dump = get_json(cluster.replica_url("order", primary) + "/admin/dump", AUTH)
    assert status == 200, dump
    counts = {}
    for row in dump["rows"]:
        counts[row["item_id"]] = counts.get(row["item_id"], 0) + 1
    return {item["id"]: (item["stock"], counts.get(item["id"], 0)) for item in items}


def check_invariants(cluster, before: dict, record: Record, restocks: dict | None = None) -> None:
    """
    DESIGN §6 invariants 1-3 and 5 after a load: no stock below zero; stock
    plus orders constant per item (plus restocks); every order answered 200
    retrievable; no failed read and no answer but 200, 409 or 503.
    """
    restocks = restocks or {}
    after = ledger(cluster)
    for item, (stock, orders) in after.items():
        assert stock >= 0, (item, stock)
        start_stock, start_orders = before[item]
        assert start_stock + restocks.get(item, 0) == stock + (orders - start_orders), (item, before[item], after[item])
    assert record.errors == [], record.errors[:10]
    for order in record.orders:
        status, body = get_json(f"{cluster.url}/orders/{order['id']}")
        assert (status, body) == (200, {"order": order})
    assert len({order["id"] for order in record.orders}) == len(record.orders)
