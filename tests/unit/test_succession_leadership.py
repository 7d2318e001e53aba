"""
Several front ends (DESIGN.md section 6, invariant 8): a leader that loses
the leadership (L{pygmy.frontend.succession}) stops deciding at once, and
neither a store nor a read of etcd begun before is acted on or tried again;
a store refused because another front end leads makes it a follower, one
refused as stale reads the views again and goes past them, and an election
whose read fails reads again.  Driven without sockets, with the fakes of
L{tests.succession_fakes}.
"""

from __future__ import annotations

import pytest

from pygmy.coordination.etcd import NotLeader, StaleView
from pygmy.coordination.etcd_wire import EtcdUnavailable
from tests.succession_fakes import INTERVAL, FakeStore, FrontEnd, front_end_1, view


@pytest.fixture
def config(tmp_path):
    return front_end_1(tmp_path)


def following_past_the_grace(config):
    """A front end following stored view 4 (A primary, B backup), both beating, past the start-up grace."""
    store = FakeStore({"catalog": view(4)})
    front = FrontEnd(config, store)
    front.beat("A", view=4, state="primary")
    front.beat("B", view=4, state="backup")
    front.clock.advance(front.catalog().grace)
    return store, front


def test_a_deposed_leader_stops_deciding_at_once(config):
    store, front = following_past_the_grace(config)
    front.lead()
    store.complete()
    front.leadership.lost("the leadership lease has expired in etcd")
    before = list(store.attempts)
    front.drop("B")
    front.monitor.synced("catalog", "A", "B", 9)
    front.clock.advance(10)
    front.monitor.check()
    assert store.attempts == before
    assert front.monitor.frontend_status()["role"] == "follower"
    assert (front.catalog().number, front.catalog().backups) == (5, ["B"])


def test_a_deposition_cancels_the_store_waiting_to_be_tried_again(config):
    store, front = following_past_the_grace(config)
    front.lead()
    store.fail(EtcdUnavailable("etcd did not answer /v3/kv/txn"))
    assert front.clock.getDelayedCalls()
    front.leadership.lost("no renewal of the leadership lease answered within 2s")
    front.clock.advance(INTERVAL * 10)
    assert store.attempts == [("catalog", view(5))]
    assert front.routes.views == [(4, "A", ["B"])]
    # What it decided and could not store is forgotten: it follows the stored view.
    assert front.catalog().number == 4


def test_a_store_in_flight_at_the_deposition_is_not_tried_again(config):
    store, front = following_past_the_grace(config)
    front.lead()
    front.leadership.lost("no renewal of the leadership lease answered within 2s")
    store.fail(NotLeader("front end 1 is not the view manager"))
    front.clock.advance(INTERVAL * 10)
    assert len(store.attempts) == 1


def test_a_store_refused_with_not_leader_makes_the_leader_a_follower(config):
    store, front = following_past_the_grace(config)
    front.lead()
    store.fail(NotLeader("the leader key is held by 2"))
    assert not front.leadership.leading
    assert front.monitor.frontend_status()["role"] == "follower"
    front.clock.advance(INTERVAL * 10)
    front.drop("B")
    assert len(store.attempts) == 1
    store.put("catalog", view(6, "A", (), {"A"}))  # the new manager's view
    assert front.routes.views[-1] == (6, "A", [])


def test_a_store_refused_as_stale_reads_the_views_again_and_goes_past_them(config):
    store, front = following_past_the_grace(config)
    front.lead()
    store.views["catalog"] = view(9)  # stored meanwhile, unseen by the watch
    store.stores[0][2].errback(StaleView("catalog view 5 not stored: view 9 is stored"))
    store.stores.clear()
    assert store.attempts[-1] == ("catalog", view(10))


def test_a_read_begun_before_a_deposition_is_not_acted_on(config):
    store, front = following_past_the_grace(config)
    store.hold_loads = True
    front.lead()
    front.leadership.lost("the leadership lease has expired in etcd")
    store.answer_loads()
    assert store.attempts == [] and front.catalog().following


def test_an_election_whose_read_fails_reads_again(config):
    store, front = following_past_the_grace(config)
    store.hold_loads = True
    front.lead()
    store.loads.pop().errback(EtcdUnavailable("etcd did not answer /v3/kv/range"))
    assert store.attempts == []
    front.clock.advance(INTERVAL)
    store.answer_loads()
    assert store.attempts == [("catalog", view(5))]
