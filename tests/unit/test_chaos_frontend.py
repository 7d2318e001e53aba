"""
Unit tests of C{pygmy chaos --frontend}: the option, the fault schedule
with and without the front end, the front end's kill and restart on a
C{Clock} (with the cluster and the processes faked), the load's failures
while it is down counted as expected, and invariant 9 on synthetic
ledgers.  No sockets, no processes.
"""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock

from pygmy import cli
from pygmy.cli import chaos, chaos_faults, invariants, invariants_frontends
from pygmy.cli.chaos_cluster import Cluster, Context
from pygmy.config import load
from tests.fakes import config_text, result
from tests.invariant_states import healthy


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "config.ini"
    path.write_text(config_text())
    return load(path)


# The option


def test_frontend_option_parses_and_defaults_to_off():
    assert cli.build_parser().parse_args(["chaos", "--frontend"]).frontend is True
    assert cli.build_parser().parse_args(["chaos"]).frontend is False


@pytest.mark.parametrize("argv, expected", [(["--frontend"], True), ([], False)])
def test_main_hands_the_option_to_the_run(config, monkeypatch, argv, expected):
    seen = {}

    def fake_main(config, duration, clients, seed, echo, frontend=False):
        seen.update(duration=duration, frontend=frontend)
        return 0

    monkeypatch.setattr(chaos, "main", fake_main)
    assert cli.main(["chaos", "-c", str(config.path), "--duration", "4", *argv]) == 0
    assert seen == {"duration": 4.0, "frontend": expected}


# The schedule


def test_the_schedule_has_the_front_end_only_with_the_option(config):
    assert chaos_faults.schedule() == chaos_faults.FAULTS
    assert chaos_faults.schedule(frontend=False) == chaos_faults.FAULTS
    assert all(service != "frontend" for service, _ in chaos_faults.FAULTS)
    assert chaos_faults.schedule(frontend=True) == (
        ("catalog", "primary"),
        ("catalog", "backup"),
        ("frontend", "front end"),
        ("order", "primary"),
    )
    run = Context(Clock(), config, None, random.Random(1), print)
    assert chaos_faults.FaultSchedule(run, None, 30.0).faults == chaos_faults.FAULTS
    with_frontend = chaos_faults.FaultSchedule(run, None, 30.0, frontend=True)
    assert ("frontend", "front end") in with_frontend.faults
    assert "frontend" in with_frontend.processes
    # The slots shrink with a fourth fault; each one stays down long enough to be noticed.
    assert with_frontend.down_for() == pytest.approx(max(2.5 * 1.5, 30.0 / 4 * 0.35))


class FakeCluster:
    """The front end's probes, answered at once; C{serving} after C{deaf} polls."""

    def __init__(self, run: Context, deaf: int = 3):
        self.run, self.deaf, self.probes = run, deaf, []

    async def settled(self, service):
        self.probes.append(("settled", service, self.run.obs.frontend_down))
        return {"primary": "A", "backups": ["B"]}

    async def poll(self, timeout, failure, probe, *args):
        while not await probe(*args):
            await chaos_faults.lifecycle.sleep(self.run.reactor, 0.25)
        return True

    async def serving(self, service):
        self.probes.append(("serving", service, self.run.obs.frontend_down))
        self.deaf -= 1
        return self.deaf < 0


def test_the_front_end_is_killed_restarted_and_its_outage_expected(config, monkeypatch):
    clock, lines = Clock(), []
    run = Context(clock, config, None, random.Random(1), lines.append)
    clock.advance(10.0)
    run.started = clock.seconds()  # the load began
    schedule = chaos_faults.FaultSchedule(run, FakeCluster(run), 8.0, frontend=True)
    killed, restarted = [], []

    async def kill(fault, process):
        killed.append((process.name, run.obs.frontend_down))
        fault.target, fault.pid, fault.killed = process.name, 4242, run.now()

    async def restart(process):
        restarted.append((process.name, run.now(), run.obs.frontend_down))

    monkeypatch.setattr(schedule, "kill", kill)
    monkeypatch.setattr(schedule, "restart", restart)
    fault = invariants.Fault("frontend", "front end")
    done = ensureDeferred(schedule.crash(fault, down=2.0))
    clock.pump([0.25] * 16)  # exact in binary, so the times below are too
    assert done.called and done.result is None
    assert killed == [("frontend", True)] and restarted == [("frontend", 2.0, True)]
    assert not run.obs.frontend_down  # over once it hears every replica again
    assert schedule.cluster.probes[:2] == [("settled", "catalog", False), ("settled", "order", False)]
    assert {probe[2] for probe in schedule.cluster.probes[2:]} == {True}
    assert (fault.restarted, fault.ready, fault.rejoined) == (2.0, 2.0, 2.75)
    assert lines[-1] == "[  2.75s] frontend hears every replica again (2.75s after the kill)"
    line = invariants.describe_fault(fault)
    assert line.startswith("kill -9 frontend (front end, pid 4242) at 0.00s; restarted at 2.00s")
    assert line.endswith("hears every replica at 2.75s (2.75s after the kill)")


# The load's failures while the front end is down


def test_no_answer_while_the_front_end_is_down_is_expected():
    obs = invariants.Observations(frontend_down=True)
    assert obs.record_buy(2, None, "ConnectionRefusedError: refused") is None
    assert obs.record_buy(2, 503, {"error": {"code": "unavailable"}}) is None
    assert obs.record_read("/lookup/1", 3.0, None, "ConnectionLost") is None
    assert obs.record_read("/lookup/1", 3.0, 503, {"error": {"code": "unavailable"}}) is None
    assert obs.buys == Counter({invariants.DOWN: 1, "503": 1}) and obs.reads == Counter({invariants.DOWN: 2})
    assert obs.failures == [] and obs.failure_count == 0
    # A 500 is a failure, front end down or not; and no answer once it is back is one too.
    obs.record_read("/list", 3.1, 500, {"error": {"code": "internal"}})
    obs.frontend_down = False
    obs.record_buy(2, None, "ConnectionRefusedError: refused")
    assert obs.failures == [
        "GET /list at 3.10s: 500 internal",
        "POST /buy/2: no answer (ConnectionRefusedError: refused)",
    ]


def test_the_report_says_what_was_lost_while_the_front_end_was_down():
    obs = healthy()
    obs.buys[invariants.DOWN] += 5
    obs.reads[invariants.DOWN] += 7
    lines = invariants.report(obs, invariants.check_all(obs, frontend=True))
    assert (
        "buys: 4 ok, 3 out of stock (409), 1 unavailable (503), 0 other, 5 lost while the front end was down (expected)"
        in lines
    )
    assert "reads: 50 ok, 0 failed, 7 lost while the front end was down (expected)" in lines
    assert lines[-1] == "result: all invariants hold"


def test_without_the_option_the_report_is_as_before():
    lines = invariants.report(healthy(), invariants.check_all(healthy()))
    assert "buys: 4 ok, 3 out of stock (409), 1 unavailable (503), 0 other" in lines
    assert "reads: 50 ok, 0 failed" in lines
    assert not any("9." in line or "front end" in line for line in lines)


# Invariant 9


def test_invariant_9_is_checked_only_with_the_option():
    assert [c.number for c in invariants.check_all(healthy())] == [1, 2, 3, 4, 5, 0]
    checks = invariants.check_all(healthy(), frontend=True)
    assert [c.number for c in checks] == [1, 2, 3, 4, 5, 9, 0]
    assert all(c.ok for c in checks)
    lines = invariants.report(healthy(), checks)
    assert "  [ok] 9. every decrement has exactly one order (no client retries)" in lines


def test_a_decrement_without_an_order_violates_invariant_9():
    obs = healthy()
    obs.end_stock[1] -= 2  # two copies gone, and no order for them
    obs.end_stock[2] -= 1
    nine = invariants_frontends.check_exactly_once(obs)
    assert nine.problems == (
        "item 1: 13 decrements but 11 orders: 2 decrement(s) without an order",
        "item 2: 4 decrements but 3 orders: 1 decrement(s) without an order",
    )
    lines = invariants.report(obs, invariants.check_all(obs, frontend=True))
    assert "  [FAIL] 9. every decrement has exactly one order (no client retries)" in lines
    assert "         item 1: 13 decrements but 11 orders: 2 decrement(s) without an order" in lines
    assert lines[-1] == "result: VIOLATED: 2, 9"


def test_an_order_without_a_decrement_violates_invariant_9():
    obs = healthy()
    obs.orders_after[99] = 2  # an order, and the stock never went down for it
    assert invariants_frontends.check_exactly_once(obs).problems == (
        "item 2: 4 orders but 3 decrements: 1 order(s) without a decrement",
    )


def test_invariant_9_cannot_settle_an_unknown_ledger():
    obs = healthy()
    obs.unresolved_restocks.append("+2 to item 1 (Idempotency-Key k)")
    del obs.end_stock[2]
    assert invariants_frontends.check_exactly_once(obs).problems == (
        "restock of unknown outcome, so the count is uncertain: +2 to item 1 (Idempotency-Key k)",
        "item 2: no current stock",
    )


def test_invariant_9_counts_only_the_orders_of_the_run():
    obs = healthy()
    obs.orders_before = {1: 2, 2: 1}  # order 2 existed before: item 1 sold one copy fewer in the run
    assert invariants_frontends.check_exactly_once(obs).problems == (
        "item 1: 11 decrements but 10 orders: 1 decrement(s) without an order",
    )


class PagedFrontend:
    """C{GET /list} over 5 books, 2 a page, as the front end pages them."""

    def __init__(self):
        self.seen = []

    async def request(self, method, url, data=None, headers=None, timeout=None):
        self.seen.append(url.split("/list", 1)[1])
        after = int(url.rsplit("after=", 1)[1])
        items = [{"id": n, "title": f"t{n}", "stock": 1} for n in range(after + 1, min(after + 2, 5) + 1)]
        following = items[-1]["id"] if items and items[-1]["id"] < 5 else None
        return FakeResponse({"items": items, "next": following})


class FakeResponse:
    code = 200

    def __init__(self, body):
        self._body = body

    async def content(self):
        return json.dumps(self._body).encode()


def test_the_listing_follows_every_page(config):
    """Invariants are checked on every book, not on the first page of /list."""
    front = PagedFrontend()
    run = Context(reactor=Clock(), config=config, http=front, rng=random.Random(1), echo=lambda line: None)
    books = result(Cluster(run).listing())
    assert sorted(books) == [1, 2, 3, 4, 5]
    assert front.seen == ["?after=0", "?after=2", "?after=4"]
