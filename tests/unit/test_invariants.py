"""
Unit tests of L{pygmy.cli.invariants}: the ledger's recording of answers,
the snapshot helpers, and the invariant checks and report on synthetic
observations (a violation must be caught).
"""

from __future__ import annotations

from collections import Counter

from pygmy.cli import invariants
from tests.invariant_states import healthy


def verdicts(obs) -> dict[int, tuple[str, ...]]:
    return {check.number: check.problems for check in invariants.check_all(obs)}


def test_a_healthy_run_holds_every_invariant():
    checks = invariants.check_all(healthy())
    assert [c.number for c in checks] == [1, 2, 3, 4, 5, 0]
    assert all(c.ok for c in checks), [c.problems for c in checks]
    lines = invariants.report(healthy(), checks)
    assert lines[-1] == "result: all invariants hold"
    assert "buys: 4 ok, 3 out of stock (409), 1 unavailable (503), 0 other" in lines
    assert any("kill -9 catalog:A (catalog primary, pid 123) at 1.00s" in line for line in lines)


def test_negative_stock_is_a_violation():
    obs = healthy()
    obs.replica_stock["catalog:B"][1] = -1
    obs.negative_seen.append("lookup at 2.00s: item 1 stock -1")
    problems = verdicts(obs)[1]
    assert "catalog:B: item 1 stock -1" in problems and len(problems) == 2


def test_unbalanced_stock_is_a_violation():
    obs = healthy()
    obs.end_stock[1] = 2  # a copy gone without an order
    assert verdicts(obs)[2] == ("item 1: start 10 + restocks 4 = 14, but stock 2 + orders 11 = 13",)
    obs = healthy()
    obs.restocks[1] += 1  # a restock nobody sees in the stock
    assert verdicts(obs)[2] == ("item 1: start 10 + restocks 5 = 15, but stock 3 + orders 11 = 14",)
    obs = healthy()
    del obs.end_stock[2]
    assert verdicts(obs)[2] == ("item 2: no current stock",)


def test_lost_old_orders_and_unresolved_restocks_are_violations():
    obs = healthy()
    del obs.orders_after[1]
    obs.unresolved_restocks.append("+2 to item 1 (Idempotency-Key k)")
    problems = verdicts(obs)[2]
    assert "restock of unknown outcome: +2 to item 1 (Idempotency-Key k)" in problems
    assert "orders that existed before the run are gone: [1]" in problems


def test_acknowledged_buy_missing_or_unretrievable_is_a_violation():
    obs = healthy()
    obs.bought[99] = 2
    obs.bought[4] = 1
    obs.duplicate_orders.append(5)
    obs.unretrievable[3] = "503 unavailable"
    problems = verdicts(obs)[3]
    assert problems == (
        "order id 5 was answered to two different buys",
        "order 4: bought item 1, table says 2",
        "order 99 (item 2) answered 200 but is not in the order table",
        "GET /orders/3: 503 unavailable",
    )


def test_divergent_replicas_are_a_violation():
    obs = healthy()
    obs.divergence["order"] = "after 5 s: A seq 10 checksum aa, B seq 9 checksum bb"
    assert verdicts(obs)[4] == ("order: after 5 s: A seq 10 checksum aa, B seq 9 checksum bb",)


def test_failed_reads_and_5xx_are_a_violation():
    obs = healthy()
    for n in range(invariants.KEEP + 3):
        obs.fail(f"GET /lookup/1: 500 internal #{n}")
    problems = verdicts(obs)[5]
    assert problems[0] == "GET /lookup/1: 500 internal #0"
    assert problems[-1] == "... and 3 more" and len(problems) == invariants.KEEP + 1


def test_a_replica_that_never_came_back_is_a_violation():
    obs = healthy()
    obs.faults.append(invariants.Fault("order", "primary", "order:B", 7, 5.0, error="restart failed: boom"))
    assert verdicts(obs)[0] == ("order:B: restart failed: boom",)
    lines = invariants.report(obs, invariants.check_all(obs))
    assert lines[-1] == "result: VIOLATED: restarts"
    assert "  [FAIL] every killed process restarted and rejoined" in lines
    assert "         order:B: restart failed: boom" in lines


def test_report_lists_every_violated_invariant():
    obs = healthy()
    obs.end_stock[2] = -1
    obs.reads["failed"] += 1
    obs.fail("GET /list: no answer (timeout)")
    lines = invariants.report(obs, invariants.check_all(obs))
    assert lines[-1] == "result: VIOLATED: 1, 2, 5"
    assert "reads: 50 ok, 1 failed" in lines


# Recording answers


def test_record_buy_counts_statuses_and_keeps_orders():
    obs = invariants.Observations()
    assert obs.record_buy(3, 200, {"order": {"id": 7, "item_id": 3}}) == 7
    assert obs.record_buy(3, 409, {"error": {"code": "out_of_stock"}}) is None
    assert obs.record_buy(3, 503, None) is None
    assert obs.record_buy(3, 200, {"order": {"id": 7, "item_id": 3}}) == 7
    assert obs.bought == {7: 3} and obs.duplicate_orders == [7]
    assert obs.buys == Counter({"200": 2, "409": 1, "503": 1}) and obs.failures == []


def test_record_buy_failures_are_named():
    obs = invariants.Observations()
    assert obs.record_buy(2, 500, {"error": {"code": "internal"}}) is None
    assert obs.record_buy(2, None, "ConnectionRefusedError: refused") is None
    assert obs.record_buy(2, 200, {"nothing": 1}) is None
    assert obs.failures == [
        "POST /buy/2: 500 internal",
        "POST /buy/2: no answer (ConnectionRefusedError: refused)",
        "POST /buy/2: 200",
    ]
    assert obs.buys == Counter({"500": 1, "None": 1, "200": 1}) and obs.bought == {}


def test_record_read_returns_the_body_or_none():
    obs = invariants.Observations()
    assert obs.record_read("/list", 1.0, 200, {"items": []}) == {"items": []}
    assert obs.record_read("/lookup/9", 2.5, 503, {"error": {"code": "unavailable"}}) is None
    assert obs.reads == Counter({"ok": 1, "failed": 1})
    assert obs.failures == ["GET /lookup/9 at 2.50s: 503 unavailable"]


def test_record_lookup_and_order_read_catch_wrong_data():
    obs = invariants.Observations()
    obs.record_lookup(None, 1.0)
    obs.record_lookup({"id": 1, "stock": 0}, 1.0)
    obs.record_lookup({"id": 2, "stock": -1}, 1.25)
    assert obs.negative_seen == ["lookup at 1.25s: item 2 stock -1"]
    obs.record_order_read(4, 1, None)
    obs.record_order_read(4, 1, {"order": {"id": 4, "item_id": 1}})
    obs.record_order_read(5, 1, {"order": {"id": 5, "item_id": 2}})
    assert obs.failures == ["GET /orders/5: item {'id': 5, 'item_id': 2} is not 1"]


def test_record_retrieval():
    obs = invariants.Observations()
    obs.record_retrieval(1, 3, 200, {"order": {"id": 1, "item_id": 3}})
    obs.record_retrieval(2, 3, 200, {"order": {"id": 2, "item_id": 4}})
    obs.record_retrieval(3, 3, 404, {"error": {"code": "not_found"}})
    assert obs.unretrievable == {2: "item 4, bought 3", 3: "404 not_found"}


# The snapshot


def test_snapshot_helpers():
    items = {1: {"id": 1, "stock": 10, "topic": "t"}, 2: {"id": 2, "stock": 0, "topic": "t"}}
    assert invariants.stock_levels(items) == {1: 10, 2: 0}
    assert invariants.row_stock([{"id": 1, "stock": 10}, {"id": 2, "stock": 0}]) == {1: 10, 2: 0}
    assert invariants.order_items([{"id": 5, "item_id": 1, "request_id": "r"}]) == {5: 1}


def test_replicas_agree_only_when_all_answer_alike():
    assert invariants.replicas_agree({"A": (3, "aa"), "B": (3, "aa")})
    assert not invariants.replicas_agree({"A": (3, "aa"), "B": (2, "bb")})
    assert not invariants.replicas_agree({"A": (3, "aa"), "B": None})
    seen = {"A": (3, "a" * 64), "B": None}
    assert invariants.describe_states(seen) == "A seq 3 checksum aaaaaaaaaaaa, B no answer"
