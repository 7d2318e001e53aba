"""
No request path scans history (DESIGN.md section 4): every statement that
the hot paths of a replica run is checked with SQLite's C{EXPLAIN QUERY
PLAN}.

The statements are not listed by hand: each hot operation runs on a real
store with a trace callback on its connection (L{tests.query_trace.Tracer}),
and every statement it issued is explained.  So a new query on one of these
paths is checked the day it is written, and a query that loses its index (a
changed C{WHERE}, a dropped index, a function around an indexed column)
fails here.

A plan may only C{SEARCH} (seek through the primary key or an index); a
C{SCAN} is a walk of a whole table or index, and a temporary B-tree a sort
of every match -- both grow with the table.  The only sort allowed is the
one over the pending buys, which the partial index C{buys_pending} bounds
by the buys in flight, not by history.
"""

from __future__ import annotations

import pytest
from twisted.internet.defer import succeed

from pygmy.catalog.books import BOOKS, Catalog, seed
from pygmy.errors import NotFound
from pygmy.order.orders import BUYS, ORDERS, Orders
from pygmy.replication.tables import utc_timestamp
from tests.fakes import SyncReactor, result, sync_store
from tests.query_trace import Tracer, assert_indexed, growing


@pytest.fixture
def reactor():
    return SyncReactor()


@pytest.fixture
def catalog_store(tmp_path, reactor):
    store = sync_store(tmp_path / "catalog.sqlite", (BOOKS,), seed, reactor)
    yield store
    store.pool.close()


@pytest.fixture
def order_store(tmp_path, reactor):
    store = sync_store(tmp_path / "order.sqlite", (ORDERS, BUYS), None, reactor)
    yield store
    store.pool.close()


@pytest.fixture
def backup_store(tmp_path, reactor):
    store = sync_store(tmp_path / "catalog-backup.sqlite", (BOOKS,), seed, reactor)
    yield store
    store.pool.close()


class AnsweringCatalog:
    """The catalog's routes as the order primary sees them: every decrement is taken, or refused."""

    def __init__(self, refuse: bool = False):
        self.refuse = refuse

    def write(self, call):
        return call(self)

    def batched(self, path, body):
        if self.refuse:
            raise NotFound(f"No book with id {body['item_id']}.")
        return succeed({"item": {"id": body["item_id"]}})


def _history(catalog: Catalog, writes: int = 50) -> None:
    """Some writes, so that the log and the requests table are not empty."""
    for n in range(writes):
        result(catalog.decrement(1 + n % 7, f"history-{n}"))


@pytest.mark.parametrize(
    "operation",
    [
        pytest.param(lambda c: c.search("distributed systems"), id="search"),
        pytest.param(lambda c: c.search("Distributed SYSTEMS"), id="search-any-case"),
        pytest.param(lambda c: c.lookup(3), id="lookup"),
        pytest.param(lambda c: c.page(0, 3), id="list-first-page"),
        pytest.param(lambda c: c.page(3, 3), id="list-next-page"),
        pytest.param(lambda c: c.decrement(2, "decrement-1"), id="decrement"),
        pytest.param(lambda c: c.decrement(4, "history-3"), id="decrement-replayed"),
        pytest.param(lambda c: c.update(4, {"stock_delta": 5, "cost": "1.00"}, "update-1"), id="update"),
        pytest.param(
            lambda c: c.add({"title": "New", "topic": "Travel", "cost": "1.00", "stock": 3}, "add-1"), id="add"
        ),
        pytest.param(lambda c: c.store.status(), id="status"),
    ],
)
def test_catalog_requests_use_indexes(catalog_store, operation):
    catalog = Catalog(catalog_store)
    _history(catalog)
    with Tracer(catalog_store) as tracer:
        result(operation(catalog))
    assert_indexed(tracer)


def test_shipping_and_applying_the_log_use_indexes(catalog_store, backup_store):
    """What a primary does for a backup (entries, a match, the log) and the backup's apply."""
    catalog = Catalog(catalog_store)
    _history(catalog)
    with Tracer(catalog_store) as primary:
        entries, head = result(catalog_store.entries_after(40, 0, 100))
        result(catalog_store.matches(45, 0))
        result(catalog_store.read_log(10, 5))
    assert_indexed(primary)
    assert [entry["seq"] for entry in entries] == list(range(41, 51))
    first = result(catalog_store.read_log(0, 100))
    with Tracer(backup_store) as backup:
        result(backup_store.apply(first))
    assert_indexed(backup)


def test_compaction_uses_indexes(catalog_store, reactor):
    catalog = Catalog(catalog_store)
    _history(catalog)
    forget_before = utc_timestamp(reactor.seconds() + 1)
    with Tracer(catalog_store) as tracer:
        deleted = result(catalog_store.compact(keep=5, below=45, forget_before=forget_before))
    assert deleted == 45
    assert_indexed(tracer)


@pytest.mark.parametrize("refuse", [False, True], ids=["ordered", "refused"])
def test_a_buy_uses_indexes(order_store, refuse):
    orders = Orders(order_store, AnsweringCatalog(refuse=refuse))
    for n in range(20):
        result(Orders(order_store, AnsweringCatalog()).buy(1 + n % 7, f"history-{n}"))
    with Tracer(order_store) as tracer:
        d = orders.buy(3, "buy-1")
        if refuse:
            with pytest.raises(NotFound):
                result(d)
        else:
            result(d)
        result(orders.buy(3, "buy-1").addErrback(lambda f: f.trap(NotFound)))
    assert_indexed(tracer)


def test_reading_an_order_and_recovering_intents_use_indexes(order_store):
    orders = Orders(order_store, AnsweringCatalog())
    order = result(orders.buy(5, "buy-1"))
    with Tracer(order_store) as tracer:
        assert result(orders.get(order["id"]))["item_id"] == 5
        with pytest.raises(NotFound):
            result(orders.get(10**9))
        result(orders.recover())
    assert_indexed(tracer)


def test_the_check_finds_a_scan():
    """The check itself: a plan that walks a table, or sorts all of it, is reported."""
    assert growing(["SCAN orders"], "SELECT * FROM orders") == ["SCAN orders"]
    assert growing(["SCAN books USING INDEX books_topic"], "SELECT id FROM books") != []
    sort = ["SEARCH orders USING INDEX x (item_id=?)", "USE TEMP B-TREE FOR ORDER BY"]
    assert growing(sort, "SELECT * FROM orders WHERE item_id = 1 ORDER BY created") == [sort[1]]
    assert growing(["SEARCH log USING INTEGER PRIMARY KEY (rowid>?)"], "SELECT * FROM log") == []


def test_an_unindexed_query_fails_the_check(catalog_store):
    """A query on a column without an index is caught by the tracer and the check."""
    with Tracer(catalog_store) as tracer:
        result(catalog_store.read(lambda txn: txn.execute("SELECT id FROM books WHERE title = 'x'").fetchall()))
    with pytest.raises(AssertionError, match="SCAN books"):
        assert_indexed(tracer)
