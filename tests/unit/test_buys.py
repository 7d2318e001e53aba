"""
Exactly-once buys (DESIGN.md section 6, invariant 9) on a real order store,
with a catalog whose answers the test holds: the intent is recorded before
the decrement, a buy runs to its end after its caller cancels, a primary
that takes over finishes every pending intent, and a retry answers from the
outcome.
"""

from __future__ import annotations

import pytest
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.task import Clock

from pygmy.errors import NotFound, OutOfStock, Unavailable
from pygmy.order.orders import BUYS, ORDERS, Orders
from tests.fakes import SyncReactor, result, sync_store


class HeldCatalog:
    """The catalog's routes: each decrement waits until the test answers it."""

    def __init__(self):
        self.asked: list[dict] = []
        self.pending: list[Deferred] = []
        self.taken: set[str] = set()

    def write(self, call):
        return call(self)

    def batched(self, path, body):
        assert path == "/books/decrement"
        self.asked.append(body)
        d = Deferred()
        self.pending.append((body, d))
        return d

    def answer(self, error=None):
        """Answer the oldest decrement: done (once per request id), or C{error}."""
        body, d = self.pending.pop(0)
        if error is not None:
            d.errback(error)
        else:
            self.taken.add(body["request_id"])
            d.callback({"item": {"id": body["item_id"]}})


@pytest.fixture
def store(tmp_path):
    reactor = SyncReactor()
    store = sync_store(tmp_path / "order.sqlite", (ORDERS, BUYS), None, reactor)
    yield store
    store.pool.close()


def rows(store):
    dump = result(store.dump())
    return dump["rows"], {buy["request_id"]: buy for buy in dump["buys"]}


def test_the_intent_is_recorded_before_the_catalog_is_asked(store):
    catalog = HeldCatalog()
    buying = Orders(store, catalog).buy(3, "r1")
    assert catalog.asked == [{"item_id": 3, "request_id": "r1"}]
    orders, buys = rows(store)
    assert orders == [] and buys["r1"]["state"] == "pending"
    catalog.answer()
    order = result(buying)
    orders, buys = rows(store)
    assert orders == [order] and buys["r1"]["state"] == "ordered" and buys["r1"]["order_id"] == order["id"]


def test_a_buy_runs_to_its_end_when_its_caller_cancels(store):
    catalog = HeldCatalog()
    buying = Orders(store, catalog).buy(3, "r1")
    buying.cancel()
    with pytest.raises(CancelledError):
        result(buying)
    catalog.answer()
    orders, buys = rows(store)
    assert [o["request_id"] for o in orders] == ["r1"] and buys["r1"]["state"] == "ordered"


def test_a_retry_while_the_buy_runs_joins_it(store):
    catalog = HeldCatalog()
    orders = Orders(store, catalog)
    first, again = orders.buy(3, "r1"), orders.buy(3, "r1")
    assert len(catalog.asked) == 1
    catalog.answer()
    assert result(first) == result(again)


def test_a_new_primary_finishes_the_intent_it_inherits(store):
    """The primary died after its intent was written: the decrement's answer never came back."""
    dead = HeldCatalog()
    Orders(store, dead).buy(5, "r1")
    assert dead.asked and rows(store) == ([], {"r1": rows(store)[1]["r1"]})
    catalog = HeldCatalog()
    recovered = Orders(store, catalog, clock=Clock())
    done = recovered.recover()
    assert catalog.asked == [{"item_id": 5, "request_id": "r1"}]
    catalog.answer()
    result(done)
    orders, buys = rows(store)
    assert len(orders) == 1 and orders[0]["item_id"] == 5 and buys["r1"]["state"] == "ordered"
    result(recovered.recover())
    assert len(catalog.asked) == 1


def test_a_refusal_is_the_outcome_and_a_retry_answers_it_without_the_catalog(store):
    catalog = HeldCatalog()
    orders = Orders(store, catalog)
    buying = orders.buy(6, "r1")
    catalog.answer(OutOfStock("Book 6 is out of stock."))
    with pytest.raises(OutOfStock, match="Book 6 is out of stock."):
        result(buying)
    with pytest.raises(OutOfStock, match="Book 6 is out of stock."):
        result(orders.buy(6, "r1"))
    assert len(catalog.asked) == 1
    assert rows(store)[1]["r1"]["state"] == "out_of_stock"
    buying = orders.buy(42, "r2")
    catalog.answer(NotFound("No book with id 42."))
    with pytest.raises(NotFound):
        result(buying)


def test_an_unreachable_catalog_leaves_the_intent_pending_for_the_next_round(store):
    clock = Clock()
    catalog = HeldCatalog()
    orders = Orders(store, catalog, clock=clock, recover_every=2.0)
    buying = orders.buy(2, "r1")
    catalog.answer(Unavailable("catalog cannot take writes now"))
    with pytest.raises(Unavailable):
        result(buying)
    assert rows(store)[1]["r1"]["state"] == "pending"
    orders.became("primary")
    assert len(catalog.asked) == 2
    catalog.answer(Unavailable("still not"))
    clock.advance(2.0)
    assert len(catalog.asked) == 3
    catalog.answer()
    assert rows(store)[1]["r1"]["state"] == "ordered"
    orders.became("backup")
    assert clock.getDelayedCalls() == []


def test_the_same_request_id_for_another_book_is_a_conflict(store):
    from pygmy.errors import Conflict

    catalog = HeldCatalog()
    orders = Orders(store, catalog)
    buying = orders.buy(1, "r1")
    catalog.answer()
    result(buying)
    with pytest.raises(Conflict):
        result(orders.buy(2, "r1"))
    assert len(catalog.asked) == 1


def test_a_failing_intent_write_asks_the_catalog_nothing(store):
    catalog = HeldCatalog()

    class Broken:
        def write(self, *args, **kwargs):
            return fail(Unavailable("no primary"))

    with pytest.raises(Unavailable):
        result(Orders(store, catalog, writer=Broken()).buy(1, "r1"))
    assert catalog.asked == []


class HeldWriter:
    """The store's writes, each held until the test releases it."""

    def __init__(self, store):
        self.store = store
        self.held: list[tuple[tuple, dict, Deferred]] = []

    def write(self, *args, **kwargs):
        d = Deferred()
        self.held.append((args, kwargs, d))
        return d

    def release(self):
        args, kwargs, d = self.held.pop(0)
        self.store.write(*args, **kwargs).chainDeferred(d)


@pytest.mark.parametrize("at", ["intent", "decrement", "outcome"])
def test_cancelling_at_each_await_of_a_buy_still_ends_in_one_order(store, at):
    catalog, writer = HeldCatalog(), HeldWriter(store)
    buying = Orders(store, catalog, writer=writer).buy(4, "r1")
    steps = {
        "intent": lambda: writer.release(),
        "decrement": lambda: catalog.answer(),
        "outcome": lambda: writer.release(),
    }
    for step in ("intent", "decrement", "outcome"):
        if step == at:
            buying.cancel()
            with pytest.raises(CancelledError):
                result(buying)
        steps[step]()
    orders, buys = rows(store)
    assert [order["request_id"] for order in orders] == ["r1"]
    assert buys["r1"]["state"] == "ordered" and len(catalog.asked) == 1


def test_a_fresh_intent_goes_to_the_catalog_without_reading_the_buy_back(store, monkeypatch):
    reads = []
    read = store.read
    monkeypatch.setattr(store, "read", lambda query, *args: reads.append(query.__name__) or read(query, *args))
    catalog = HeldCatalog()
    orders = Orders(store, catalog)
    buying = orders.buy(3, "r1")
    assert catalog.asked == [{"item_id": 3, "request_id": "r1"}] and reads == []
    catalog.answer()
    order = result(buying)
    # The same request again: its intent is a replay, so the buy's state is
    # read, and the order answered from it, without asking the catalog.
    again = result(orders.buy(3, "r1"))
    assert again == order and reads == ["_buy_row", "_select"] and len(catalog.asked) == 1
