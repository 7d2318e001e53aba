"""
Unit tests of the front-end invariants of a chaos run
(L{pygmy.cli.invariants_frontends}: 6, 7 and 8) on fixed observations:
a healthy run of three front ends holds them all, and each violation is
caught on its own -- a stale cost through one front end, an order or a
cost lost across a front-end kill, writes stopped too long, a late or
missing new manager, a restarted front end that never follows, a failed
read while one was down, two managers at once, a view number going down.
"""

from __future__ import annotations

import dataclasses

from pygmy.cli import invariants
from pygmy.cli.invariants import Fault
from pygmy.cli.invariants_frontends import (
    CostRead,
    CostWrite,
    FrontendObservations,
    FrontendPoll,
    check_frontend_kills,
    check_kept_across_frontend_kills,
    check_visible_everywhere,
    stale_reads,
    two_managers,
    views_going_down,
    write_pause,
)
from tests.invariant_states import healthy

BOUND = 3.5  # lease_ttl 2 + heartbeat_timeout 1.5


def polls(*rows) -> list[FrontendPoll]:
    """C{(name, sent, role, leader, catalog view)} rows; answered 50 ms after sent."""
    return [FrontendPoll(n, t, t + 0.05, r, lead, {"catalog": v, "order": 1}) for n, t, r, lead, v in rows]


def several() -> invariants.Observations:
    """A healthy run of three front ends: the manager 1 killed at 10 s, then follower 3 at 20 s."""
    obs = healthy()
    obs.faults += [
        Fault("frontend", "manager", "frontend:1", 11, killed=10.0, failover=12.4, restarted=13.0, rejoined=14.0),
        Fault("frontend", "follower", "frontend:3", 33, killed=20.0, restarted=22.0, rejoined=23.0),
    ]
    obs.frontends = FrontendObservations(
        names=("1", "2", "3"),
        bound=BOUND,
        polls=polls(
            ("1", 9.0, "leader", "1", 3),
            ("2", 9.0, "follower", "1", 3),
            ("3", 9.0, "follower", "1", 3),
            ("1", 10.1, None, None, 0),
            ("2", 12.3, "leader", "2", 4),
            ("3", 12.3, "follower", "2", 4),
            ("1", 13.9, "follower", "2", 4),
            ("2", 21.0, "leader", "2", 5),
        ),
        writes=[9.5, 10.2, 11.0, 12.0, 13.0, 14.0, 19.9, 20.5, 21.5, 22.5, 23.0],
        cost_item=5,
        cost_writes=[CostWrite("10.00", 8.0, 8.1), CostWrite("10.01", 15.0, 15.2), CostWrite("10.02", 24.0, None)],
        cost_reads=[
            CostRead("1", 8.2, 8.25, "10.00"),
            CostRead("2", 8.2, 8.26, "10.00"),
            CostRead("3", 15.0, 15.3, "10.00"),  # sent before the ack of 10.01: either is fine
            CostRead("3", 15.3, 15.35, "10.01"),
            CostRead("2", 24.1, 24.2, "10.02"),  # a write in flight may show
        ],
    )
    obs.bought_at = {2: 10.5, 3: 20.4, 4: 30.0, 5: 1.0}
    obs.final_cost = "10.02"
    return obs


def test_a_healthy_run_of_three_front_ends_holds_every_invariant():
    obs = several()
    checks = invariants.check_all(obs, frontend=True)
    assert [c.number for c in checks] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]
    assert [c.problems for c in checks if not c.ok] == []
    lines = invariants.report(obs, checks)
    assert lines[-1] == "result: all invariants hold"
    assert any(line.startswith("  [ok] 8. kill -9 of a front end") for line in lines)
    assert "new view manager at 12.40s (+2.40s)" in invariants.describe_fault(obs.faults[1])
    assert "front ends: 8 status polls, 3 cost updates read back" in lines
    assert "  frontend:1 (manager): writes paused at most 1.00s (bound 3.5s)" in lines
    assert "  frontend:3 (follower): writes paused at most 1.00s (bound 3.5s)" in lines


def test_which_checks_a_run_gets():
    obs = several()
    assert [c.number for c in invariants.check_all(obs)] == [1, 2, 3, 4, 5, 6, 0]
    obs.frontends.names = ("frontend",)
    assert [c.number for c in invariants.check_all(obs, frontend=True)] == [1, 2, 3, 4, 5, 6, 7, 9, 0]


# 6


def test_a_stale_cost_through_one_front_end_violates_6():
    obs = several()
    obs.frontends.cost_reads.append(CostRead("3", 15.4, 15.45, "10.00"))
    assert check_visible_everywhere(obs).problems == (
        "lookup of item 5 through 3 at 15.40s: cost 10.00, but 10.01 was acknowledged at 15.20s",
    )
    assert invariants.report(obs, invariants.check_all(obs))[-1] == "result: VIOLATED: 6"


def test_reads_before_any_acknowledged_write_and_in_flight_values_are_fine():
    ledger = FrontendObservations(cost_item=1, cost_writes=[CostWrite("2.00", 5.0, 5.5), CostWrite("3.00", 6.0, None)])
    ledger.cost_reads = [
        CostRead("a", 1.0, 1.1, "9.99"),  # before any acknowledged write
        CostRead("a", 5.2, 5.3, "9.99"),  # sent before the ack
        CostRead("a", 6.5, 6.6, "3.00"),  # the unanswered one may have been applied
        CostRead("a", 5.6, 5.7, "2.00"),
    ]
    assert stale_reads(ledger) == []
    # An older value after the ack is stale; so is one not sent yet when the read was answered.
    ledger.cost_reads.append(CostRead("b", 5.6, 5.9, "9.99"))
    ledger.cost_reads.append(CostRead("b", 5.6, 5.9, "3.00"))
    assert [line.split(": ", 1)[1] for line in stale_reads(ledger)] == [
        "cost 9.99, but 2.00 was acknowledged at 5.50s",
        "cost 3.00, but 2.00 was acknowledged at 5.50s",
    ]


def test_nothing_acknowledged_checks_nothing_and_says_so():
    obs = several()
    obs.frontends.cost_writes = [CostWrite("1.00", 1.0, None)]
    assert check_visible_everywhere(obs).problems == ("no cost update was acknowledged: nothing was checked",)


# 7


def test_an_order_lost_across_a_front_end_kill_violates_7():
    obs = several()
    del obs.orders_after[3]  # bought at 20.4 s, while frontend:3 was down
    obs.bought[3] = 1
    assert check_kept_across_frontend_kills(obs).problems == (
        "order 3 answered 200 at 20.40s (a front end down) is not in the table",
    )
    obs = several()
    obs.unretrievable[2] = "404 not_found"
    assert check_kept_across_frontend_kills(obs).problems == (
        "order 2 answered 200 at 10.50s: GET /orders: 404 not_found",
    )


def test_a_lost_cost_violates_7_and_an_unanswered_newer_one_does_not():
    obs = several()
    obs.final_cost = "10.00"
    assert check_kept_across_frontend_kills(obs).problems == (
        "item 5 ends with cost 10.00, not 10.01 acknowledged at 15.20s",
    )
    obs.final_cost = "10.01"  # the unanswered 10.02 was never applied: fine
    assert check_kept_across_frontend_kills(obs).ok


def test_7_without_a_front_end_kill_says_so():
    obs = several()
    obs.faults = [f for f in obs.faults if f.service != "frontend"]
    assert check_kept_across_frontend_kills(obs).problems == ("no front end was killed",)


# 8


def test_writes_that_stop_too_long_violate_8():
    obs = several()
    obs.frontends.writes = [9.5, 14.0, 19.9, 20.5, 21.5, 22.5, 23.0]  # nothing from 10.0 to 14.0
    assert check_frontend_kills(obs).problems == ("frontend:1 (manager): no write answered for 4.00s, above 3.50s",)
    assert write_pause([1.0, 2.0], 0.0, 5.0) == 1.0
    assert write_pause([], 0.0, 5.0) == 5.0
    assert write_pause([0.5, 3.0, 9.0], 0.0, 4.0) == 2.5


def test_a_late_or_missing_new_manager_violates_8():
    obs = several()
    obs.faults[1].failover = 13.6
    assert check_frontend_kills(obs).problems == ("frontend:1 (manager): a new view manager after 3.60s, above 3.50s",)
    obs.faults[1].failover = None
    assert check_frontend_kills(obs).problems == ("frontend:1 (manager): no other front end took over the views",)


def test_a_front_end_that_does_not_come_back_as_a_follower_violates_8():
    obs = several()
    obs.faults[2].rejoined = None
    assert check_frontend_kills(obs).problems == ("frontend:3 (follower): did not come back as a follower",)


def test_a_failed_read_while_a_front_end_is_down_violates_8_and_5():
    obs = several()
    obs.frontend_down = True
    assert obs.record_read("/lookup/1", 10.3, None, "ConnectionRefusedError") is None
    assert obs.reads["failed"] == 1 and obs.failures == ["GET /lookup/1 at 10.30s: no answer (ConnectionRefusedError)"]
    assert check_frontend_kills(obs).problems == (
        "failed read while a front end was down: GET /lookup/1 at 10.30s: no answer (ConnectionRefusedError)",
    )
    # A buy with no answer is the killed front end's: expected.
    assert obs.record_buy(2, None, "ConnectionLost") is None and obs.buys[invariants.DOWN] == 1


def test_two_managers_at_once_violate_8():
    found = polls(("1", 5.0, "leader", "1", 3), ("2", 5.02, "leader", "2", 3), ("2", 6.0, "leader", "2", 3))
    assert two_managers(found) == ["1 (5.00-5.05s) and 2 (5.02-5.07s) both said they manage the views"]
    # One after the other is a hand-over, not two managers.
    assert two_managers(polls(("1", 5.0, "leader", "1", 3), ("2", 5.1, "leader", "2", 3))) == []
    obs = several()
    obs.frontends.polls += found[:2]
    assert check_frontend_kills(obs).problems == ("1 (5.00-5.05s) and 2 (5.02-5.07s) both said they manage the views",)


def test_a_view_number_going_down_violates_8():
    same = polls(("2", 1.0, "follower", "1", 5), ("2", 2.0, "follower", "1", 4))
    assert views_going_down(same) == ["2: catalog view 4 at 2.05s after 5 at 1.05s"]
    across = polls(("1", 1.0, "leader", "1", 6), ("2", 3.0, "follower", "1", 5), ("2", 4.0, "leader", "2", 5))
    assert views_going_down(across) == ["catalog: manager 2 at view 5 at 4.05s, after manager 1 had view 6 at 1.05s"]
    # A follower that lags behind the manager is not a view going down.
    assert views_going_down(polls(("1", 1.0, "leader", "1", 6), ("2", 1.0, "follower", "1", 5))) == []
    # A restarted front end that says it has read no view yet is not either ...
    restarted = polls(("1", 1.0, "follower", "2", 6), ("1", 3.0, "follower", "2", 0), ("1", 3.5, "follower", "2", 6))
    assert views_going_down(restarted) == ["1: catalog view 0 at 3.05s after 6 at 1.05s"]
    restarted[1] = dataclasses.replace(restarted[1], reading=True)
    assert views_going_down(restarted) == []
    # ... but a view 0 from one that has read them is, follower or manager (above, and:)
    assert views_going_down(polls(("1", 1.0, "leader", "1", 6), ("1", 3.0, "leader", "1", 0))) != []


def test_no_manager_ever_violates_8():
    obs = several()
    obs.frontends.polls = [p for p in obs.frontends.polls if p.role != "leader"]
    assert "no front end ever said it manages the views" in check_frontend_kills(obs).problems
