"""
The front end stopped in the middle of buys (DESIGN §6 invariants 2, 3, 4
and 9), on real twistd processes.

Each round, 16 clients buy books through the front end without an
C{Idempotency-Key} (so the front end makes the request id, and nobody can
retry the buy once the front end is gone): one scarce book and six
plentiful ones.  In the middle of it the front end is stopped, with
C{kill -9} or with SIGTERM, and started again; the clients buy a little
more, then stop.  A request that finds the front end down counts as no
answer, and the client goes on.  Once the cluster is quiet (every replica
in its view, no write for a second), the round reads every catalog row and
every order from the primaries' C{/admin/dump} and checks:

- invariant 2 and 9: per item, the copies gone from the stock in the round
  are exactly the orders placed for it (a decrement without an order is a
  violation even though no client was told the buy succeeded);
- invariant 3: every buy answered 200 has its order, by id, for its item;
- invariant 4: the replicas of each service agree within 5 s;
- no stock below zero, and no answer but 200, 409 or 503.

Every round runs, and the test fails at the end with every violation of
every round, one line each.
"""

from __future__ import annotations

import json
import random
import signal
from collections import Counter
from dataclasses import dataclass, field

import pytest
import pytest_twisted
from twisted.internet.defer import DeferredList, ensureDeferred
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from pygmy.testing import SECRET, converged, get_json, settled

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {SECRET}"}
ROUNDS = 5
CLIENTS = 16
#: The scarce item is set to this stock before each round; the others are kept plentiful.
SCARCE, SCARCE_STOCK = 1, 12
TOP_UP_BELOW, TOP_UP = 300, 1000
#: Seconds of buys before the stop (drawn), and after the restart.
BEFORE_STOP, AFTER_RESTART = (0.4, 0.9), 0.5
#: Quiet: no write on either primary for this long (bounded by QUIET_WITHIN).
QUIET_FOR, QUIET_WITHIN = 1.0, 15.0


def sleep(seconds: float):
    from twisted.internet import reactor

    return deferLater(reactor, max(seconds, 0.0), lambda: None)


@dataclass
class Buys:
    """What the clients of one round were answered."""

    statuses: Counter = field(default_factory=Counter)
    orders: dict = field(default_factory=dict)  # order id -> item, of every 200
    unexpected: list = field(default_factory=list)


async def buyer(http, url: str, buys: Buys, rng: random.Random, running) -> None:
    """Buy (no Idempotency-Key) until C{running()} is false; a failed request is counted, not retried."""
    while running():
        item = SCARCE if rng.random() < 0.3 else rng.randint(2, 7)
        try:
            response = await http.post(f"{url}/buy/{item}", timeout=15)
            status, body = response.code, json.loads(await response.content())
        except Exception:  # the front end is down, or went down mid-request
            buys.statuses["no answer"] += 1
            await sleep(0.05)
            continue
        buys.statuses[status] += 1
        if status == 200:
            buys.orders[body["order"]["id"]] = item
            if body["order"]["item_id"] != item:
                buys.unexpected.append(f"bought item {item}, answered {body}")
        elif status not in (409, 503):
            buys.unexpected.append(f"POST /buy/{item}: {status} {body}")


def primary(cluster, service: str) -> str:
    return get_json(cluster.url + "/status")[1]["services"][service]["primary"]


def dump(cluster, service: str) -> dict:
    """The C{/admin/dump} of C{service}'s primary."""
    status, body = get_json(cluster.replica_url(service, primary(cluster, service)) + "/admin/dump", AUTH)
    assert status == 200, body
    return body


def ledger(cluster) -> tuple[dict[int, int], dict[int, int]]:
    """Every item's stock, and every order (id -> item), from the primaries."""
    stock = {row["id"]: row["stock"] for row in dump(cluster, "catalog")["rows"]}
    orders = {row["id"]: row["item_id"] for row in dump(cluster, "order")["rows"]}
    return stock, orders


def restock(cluster) -> None:
    """Set the scarce item to L{SCARCE_STOCK}, top up the others (the cluster is quiet)."""
    stock, _ = ledger(cluster)
    for item, now in stock.items():
        target = SCARCE_STOCK if item == SCARCE else TOP_UP if now < TOP_UP_BELOW else now
        if target != now:
            status, body = get_json(
                f"{cluster.url}/update/{item}", AUTH, method="POST", body={"stock_delta": target - now}
            )
            assert status == 200, body


async def quiet(cluster) -> None:
    """
    Wait until every replica is in its view, no buy is unfinished (no
    pending intent: a buy still finishing would land between the reads of
    the two ledgers) and neither primary wrote for L{QUIET_FOR} s.
    """
    from twisted.internet import reactor

    await settled(cluster, within=QUIET_WITHIN)
    deadline = reactor.seconds() + QUIET_WITHIN
    seqs, since = None, reactor.seconds()
    while reactor.seconds() < deadline:
        dumps = {service: dump(cluster, service) for service in ("catalog", "order")}
        now = tuple(dumps[service]["applied_seq"] for service in ("catalog", "order"))
        if any(buy["state"] == "pending" for buy in dumps["order"]["buys"]):
            seqs, since = None, reactor.seconds()
        elif now != seqs:
            seqs, since = now, reactor.seconds()
        elif reactor.seconds() - since >= QUIET_FOR:
            return
        await sleep(0.1)


def balance(before, after, buys: Buys) -> list[str]:
    """Invariants 1, 2/9 and 3 for one round, as problem lines."""
    (start, orders_before), (end, orders_after) = before, after
    problems = [
        f"order {o} existed before the round and is gone" for o in sorted(set(orders_before) - set(orders_after))
    ]
    placed = Counter(item for order, item in orders_after.items() if order not in orders_before)
    for item in sorted(start):
        sold, stock = placed[item], end.get(item)
        if stock is None or stock < 0:
            problems.append(f"item {item}: stock {stock} at the end")
            continue
        taken = start[item] - stock
        if taken != sold:
            kind = "decrement(s) without an order" if taken > sold else "order(s) without a decrement"
            problems.append(
                f"invariant 2: item {item}: stock {start[item]} -> {stock} ({taken} decrements) "
                f"but {sold} orders: {abs(taken - sold)} {kind}"
            )
    for order, item in sorted(buys.orders.items()):
        if orders_after.get(order) != item:
            problems.append(
                f"invariant 3: order {order} (item {item}) answered 200, table has {orders_after.get(order)}"
            )
    return problems + buys.unexpected[:10]


async def one_round(cluster, http, sig: int, rng: random.Random) -> tuple[list[str], Buys]:
    """Buys, a stop and restart of the front end, the rest of the buys, then the checks."""
    restock(cluster)
    before = ledger(cluster)
    buys, running = Buys(), [True]
    workers = [
        ensureDeferred(buyer(http, cluster.url, buys, random.Random(rng.random()), lambda: running[0]))
        for _ in range(CLIENTS)
    ]
    problems = []
    try:
        await sleep(rng.uniform(*BEFORE_STOP))
        code = await deferToThread(cluster.stop, "frontend", sig)
        # twistd stopped cleanly by SIGTERM re-raises it, so it exits by the signal too.
        if code != -sig:
            problems.append(f"the front end exited with {code} on signal {sig}")
        await deferToThread(cluster.start, "frontend")
        await sleep(AFTER_RESTART)
    finally:
        running[0] = False
        await DeferredList(workers)
    await quiet(cluster)
    for service in ("catalog", "order"):
        try:
            await converged(cluster, service, within=5.0)
        except AssertionError as e:
            problems.append(f"invariant 4: {service} replicas disagree after 5 s: {e}")
    return problems + balance(before, ledger(cluster), buys), buys


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
@pytest_twisted.ensureDeferred
async def test_front_end_stopped_mid_buys(fresh_cluster, http, sig):
    cluster, rng = fresh_cluster, random.Random(int(sig))
    await settled(cluster)
    violations, totals = [], Counter()
    for number in range(1, ROUNDS + 1):
        problems, buys = await one_round(cluster, http, sig, rng)
        totals.update(buys.statuses)
        assert buys.statuses[200] > 0, (number, buys.statuses)
        violations += [f"round {number}: {problem}" for problem in problems]
    assert totals["no answer"] > 0, totals  # the stop did meet the clients
    assert not violations, "\n".join([f"answers over {ROUNDS} rounds: {dict(totals)}", *violations])
