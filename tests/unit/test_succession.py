"""
Several front ends (DESIGN.md section 6, invariant 8): a front end's
L{Monitor} decides views only while it holds the leadership, and follows
the stored views otherwise (L{pygmy.frontend.succession}).  Driven without
sockets: a L{Clock}, a leadership the test elects and deposes, a views
store whose loads and stores the test answers, and plain objects for the
replicas' heartbeat connections.
"""

from __future__ import annotations

import pytest
from treq.testing import StubTreq
from twisted.internet.task import Clock

from pygmy.config import load
from pygmy.coordination.etcd_wire import EtcdUnavailable
from pygmy.coordination.store import ViewStoreError
from pygmy.frontend.monitor import Monitor
from tests.succession_fakes import INTERVAL, FakeStore, FrontEnd, front_end_1, view


@pytest.fixture
def config(tmp_path):
    return front_end_1(tmp_path)


def test_a_follower_begins_from_the_stored_views_then_watches_and_campaigns(config):
    store = FakeStore({"catalog": view(4)})
    front = FrontEnd(config, store)
    assert front.started.called
    assert front.routes.views == [(4, "A", ["B"])]
    assert (front.catalog().number, front.catalog().primary) == (4, "A")
    assert store.watchers and front.leadership.started
    assert front.monitor.frontend_status() == {
        "name": "1",
        "role": "follower",
        "leader": None,
        "coordinator": "etcd",
        "views_read": True,
    }


def test_until_the_stored_views_are_read_status_says_so(config):
    store = FakeStore({"catalog": view(4)})
    store.hold_loads = True
    front = FrontEnd(config, store)
    assert not front.started.called
    assert front.monitor.frontend_status()["views_read"] is False and front.catalog().number == 0
    store.answer_loads()
    assert front.started.called
    assert front.monitor.frontend_status()["views_read"] is True and front.catalog().number == 4


def test_a_follower_never_pushes_a_view_it_did_not_read_from_the_store(config):
    store = FakeStore({"catalog": view(4)})
    front = FrontEnd(config, store)
    front.beat("A", view=4, state="primary")
    front.beat("B", view=4, state="backup")
    assert front.lines("A") == [b"VIEW catalog 4 A B"]
    front.drop("B")  # dead: a manager would take it out of the view at once
    front.monitor.synced("catalog", "A", "B", 9)
    front.monitor.unreachable("catalog", "A", "B")
    front.beat("A", view=4, state="idle")
    front.clock.advance(10)
    front.monitor.check()
    assert store.attempts == []
    assert front.lines("A") == [b"VIEW catalog 4 A B"] and front.routes.views == [(4, "A", ["B"])]
    assert front.monitor.alive("catalog") == []  # liveness is still recorded, for its reads
    store.put("catalog", view(5, "A", ()))
    assert front.lines("A")[-1] == b"VIEW catalog 5 A -" and front.routes.views[-1] == (5, "A", [])


def test_followers_adopt_watched_views_in_number_order_and_ignore_lower_ones(config):
    store = FakeStore()
    front = FrontEnd(config, store)
    front.beat("A")
    for number in (3, 5, 4, 5, 2):
        store.put("catalog", view(number, backups=("B",) if number != 5 else ()))
    assert [v[0] for v in front.routes.views] == [3, 5]
    assert front.lines("A") == [b"VIEW catalog 3 A B", b"VIEW catalog 5 A -"]
    assert (front.catalog().number, front.catalog().backups) == (5, [])


def test_a_new_connection_is_told_the_stored_views_only(config):
    store = FakeStore({"catalog": view(7)})
    front = FrontEnd(config, store)
    front.beat("B", view=7, state="backup")
    assert front.lines("B") == [b"VIEW catalog 7 A B"]


def test_the_elected_front_end_decides_from_the_stored_view(config):
    store = FakeStore({"catalog": view(4, "A", ("B",))})
    front = FrontEnd(config, store)
    front.beat("A", view=4, state="primary")
    front.beat("B", view=4, state="backup")
    front.clock.advance(front.catalog().grace)  # it has followed for longer than the start-up grace
    front.lead()
    assert store.attempts == [("catalog", view(5, "A", ("B",)))]
    store.complete()
    assert front.routes.views[-1] == (5, "A", ["B"])
    assert front.monitor.frontend_status()["role"] == "leader"
    front.drop("B")
    assert store.attempts[-1] == ("catalog", view(6, "A", (), {"A"}))


def test_a_takeover_with_the_primary_dead_promotes_at_once_from_the_in_sync_set(config):
    """Having followed for longer than the grace, the new manager knows who is alive: no wait."""
    store = FakeStore({"catalog": view(4, "A", ("B",))})
    front = FrontEnd(config, store)
    front.beat("A", seq=10, last_view=4, view=4, state="primary")
    front.beat("B", seq=10, last_view=4, view=4, state="backup")
    front.clock.advance(front.catalog().grace)
    front.drop("A")
    front.lead()
    assert store.attempts == [("catalog", view(5, "B", (), {"B"}))]


def test_a_takeover_never_promotes_outside_the_stored_in_sync_set(config):
    store = FakeStore({"catalog": view(4, "A", (), {"A"})})
    front = FrontEnd(config, store)
    front.beat("B", seq=99, last_view=4, view=4, state="recovering")
    front.clock.advance(front.catalog().grace * 3)
    front.lead()
    front.clock.advance(front.catalog().grace * 3)
    front.beat("B", seq=99, last_view=4, view=4, state="recovering")
    assert front.catalog().primary is None
    assert all(stored.primary != "B" for _, stored in store.attempts)


def test_a_front_end_that_cannot_read_etcd_keeps_trying_and_campaigns_only_then(config):
    store = FakeStore({"catalog": view(4)})
    store.hold_loads = True
    front = FrontEnd(config, store)
    store.loads.pop().errback(EtcdUnavailable("etcd did not answer /v3/kv/range"))
    assert not front.started.called and not front.leadership.started and not store.watchers
    front.clock.advance(INTERVAL)
    store.answer_loads()
    assert front.started.called and front.leadership.started and store.watchers
    assert front.routes.views == [(4, "A", ["B"])]


def test_a_view_in_etcd_that_is_not_one_fails_the_start(config):
    store = FakeStore()
    store.hold_loads = True
    front = FrontEnd(config, store)
    store.loads.pop().errback(ViewStoreError("etcd key /pygmy/views/catalog: not a stored view"))
    assert isinstance(front.started.result.value, ViewStoreError)
    front.started.addErrback(lambda f: None)


def test_a_new_cluster_waits_for_its_replicas_then_the_manager_stores_the_first_view(config):
    front = FrontEnd(config)
    front.beat("A", seq=3)
    front.lead()
    assert front.store.attempts == []
    front.beat("B", seq=3)
    assert front.store.attempts == [("catalog", view(1))]


def test_stop_resigns_and_stops_watching(config):
    front = FrontEnd(config)
    front.lead()
    stopped = front.monitor.stop()
    assert stopped.called and front.leadership.stopped and front.store.stopped
    front.beat("A")
    front.beat("B")
    assert front.store.attempts == []


def test_the_frontend_block_of_status(config):
    from pygmy.frontend.app import FrontendApp
    from pygmy.frontend.cache import ReplyCache

    front = FrontEnd(config)
    app = FrontendApp(config, {"catalog": None, "order": None}, front.monitor, ReplyCache(10))
    client = StubTreq(app.resource())

    def block():
        reply = client.get("http://frontend/status")
        client.flush()
        body = reply.result.json()
        client.flush()
        return body.result["frontend"]

    read = {"coordinator": "etcd", "views_read": True}
    assert block() == {"name": "1", "role": "follower", "leader": None, **read}
    front.leadership.leader = "2"
    assert block() == {"name": "1", "role": "follower", "leader": "2", **read}
    front.lead()
    assert block() == {"name": "1", "role": "leader", "leader": "1", **read}


def test_a_lone_front_end_always_leads(tmp_path):
    from tests.fakes import config_text

    path = tmp_path / "config.ini"
    path.write_text(config_text())
    monitor = Monitor(load(path), Clock(), {})
    assert monitor.frontend_status() == {
        "name": "frontend",
        "role": "leader",
        "leader": "frontend",
        "coordinator": "local",
        "views_read": True,  # nothing to read: no store
    }


def test_a_front_end_just_started_reads_from_replicas_it_has_not_heard_from_yet(config):
    front = FrontEnd(config, FakeStore({"catalog": view(4)}))
    assert front.monitor.readable("catalog") == ["A", "B"]  # beginning from view 4, before any beat
    front.beat("A")
    front.drop("A")
    assert front.monitor.readable("catalog") == ["B"]  # A was heard from, and is gone
    front.clock.advance(front.monitor.timeout)
    assert front.monitor.readable("catalog") == []  # past the first heartbeat_timeout, only the live ones
    front.beat("B")
    assert front.monitor.readable("catalog") == ["B"]
