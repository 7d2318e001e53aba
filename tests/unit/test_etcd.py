"""
The views store in etcd (L{pygmy.coordination.etcd.EtcdViewStore}) against
a real etcd's recorded answers, on a C{Clock}: load, fenced stores that never
take a view number back, and the watch (from the loaded revision, after a
drop, after a compaction, after silence).
"""

import json

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pygmy.coordination.etcd import EtcdViewStore, NotLeader, StaleView
from pygmy.coordination.etcd_gateway import Gateway
from pygmy.coordination.etcd_leader import Leadership
from pygmy.coordination.etcd_wire import EtcdUnavailable, b64, unb64
from pygmy.coordination.store import StoredView, ViewStoreError
from tests.unit.fake_etcd import FakeEtcd, edited, lines, recorded

LEASE = "7650668210811815943"
#: The view of the recordings (catalog, at mod_revision 3).
RECORDED_VIEW = StoredView(1, "A", ("B",), frozenset("AB"))
#: The recorded view's value, and another view's.
VALUE = b64(json.dumps(RECORDED_VIEW.to_json(), sort_keys=True))


def value_of(view: StoredView) -> str:
    return b64(json.dumps(view.to_json(), sort_keys=True))


def view(number, primary="A"):
    other = "B" if primary == "A" else "A"
    return StoredView(number, primary, (other,), frozenset("AB"))


class Helpers(SynchronousTestCase):
    def setUp(self):
        self.etcd = FakeEtcd()
        self.stub = StubTreq(self.etcd)
        self.clock = Clock()
        self.gateway = Gateway("http://a:2379", self.stub, self.clock, timeout=1.0)
        self.leadership = Leadership(self.gateway, "/pygmy", "1", 2.0, self.clock)
        self.deposed = []
        self.leadership.deposed = self.deposed.append
        self.store = EtcdViewStore(self.gateway, "/pygmy", self.leadership, self.clock, idle=30.0)
        self.seen = []

    def tearDown(self):
        self.store.stop()
        self.etcd.queues["/v3/lease/revoke"].append((200, "{}"))
        self.leadership.stop()

    def lead(self):
        self.etcd.then("/v3/kv/range", "range_empty")
        self.etcd.then("/v3/lease/grant", "grant")
        self.etcd.then("/v3/kv/txn", "campaign_won")
        self.leadership.start()
        self.assertTrue(self.leadership.leading)
        del self.etcd.requests[:]

    def txns(self):
        return self.etcd.bodies("/v3/kv/txn")


class LoadTests(Helpers):
    def test_nothing_stored(self):
        self.etcd.then("/v3/kv/range", "range_empty")
        self.assertEqual(self.successResultOf(self.store.load()), {})
        self.assertEqual(
            self.etcd.bodies("/v3/kv/range"), [{"key": b64("/pygmy/views/"), "range_end": b64("/pygmy/views0")}]
        )

    def test_the_stored_views(self):
        self.etcd.then("/v3/kv/range", "range_views")
        self.assertEqual(self.successResultOf(self.store.load()), {"catalog": RECORDED_VIEW})

    def test_a_value_that_is_not_a_view(self):
        self.etcd.then("/v3/kv/range", text=edited("range_views", (VALUE, b64('{"number": -1}'))))
        self.failureResultOf(self.store.load(), ViewStoreError)

    def test_etcd_unreachable(self):
        d = self.store.load()
        self.clock.advance(1.0)
        self.failureResultOf(d, EtcdUnavailable)


class StoreTests(Helpers):
    def test_a_store_is_a_txn_fenced_by_the_leadership_and_the_last_revision(self):
        self.lead()
        self.etcd.then("/v3/kv/txn", "store_ok")
        self.successResultOf(self.store.store("catalog", RECORDED_VIEW))
        leader, key = b64("/pygmy/leader"), b64("/pygmy/views/catalog")
        [txn] = self.txns()
        self.assertEqual(
            txn["compare"],
            [
                {"key": leader, "target": "VALUE", "result": "EQUAL", "value": b64("1")},
                {"key": leader, "target": "CREATE", "result": "EQUAL", "create_revision": "2"},
                {"key": leader, "target": "LEASE", "result": "EQUAL", "lease": LEASE},
                {"key": key, "target": "MOD", "result": "EQUAL", "mod_revision": "0"},
            ],
        )
        self.assertEqual(txn["success"], [{"request_put": {"key": key, "value": VALUE}}])
        self.assertEqual(txn["failure"], [{"request_range": {"key": leader}}, {"request_range": {"key": key}}])
        # The next store compares the revision this one was stored at.
        self.etcd.then("/v3/kv/txn", "store_ok")
        self.successResultOf(self.store.store("catalog", view(2)))
        self.assertEqual(self.txns()[1]["compare"][3]["mod_revision"], "3")
        self.assertEqual(json.loads(unb64(self.txns()[1]["success"][0]["request_put"]["value"]))["number"], 2)

    def test_only_the_leader_stores(self):
        failure = self.failureResultOf(self.store.store("catalog", view(1)), NotLeader)
        self.assertIn("not the view manager", str(failure.value))
        self.assertEqual(self.etcd.requests, [])

    def test_a_fenced_store_deposes_and_stores_nothing(self):
        self.lead()
        self.etcd.then("/v3/kv/txn", "store_fenced")  # the leader key is gone
        self.etcd.then("/v3/lease/revoke", "revoke_gone")
        failure = self.failureResultOf(self.store.store("catalog", view(2)), NotLeader)
        self.assertIn("held by nobody", str(failure.value))
        self.assertFalse(self.leadership.leading)
        self.assertEqual(len(self.deposed), 1)
        self.assertEqual(len(self.txns()), 1)

    def test_a_store_whose_answer_was_lost_is_not_stored_twice(self):
        # The txn met the very view it stores: an earlier try was applied.
        self.lead()
        self.etcd.then("/v3/kv/txn", "store_stale")
        self.successResultOf(self.store.store("catalog", RECORDED_VIEW))
        self.assertEqual(len(self.txns()), 1)

    def test_a_view_of_the_stored_number_but_another_content_is_stale(self):
        self.lead()
        self.etcd.then("/v3/kv/txn", "store_stale")
        self.failureResultOf(self.store.store("catalog", view(1, "B")), StaleView)

    def test_a_newer_view_is_tried_again_on_the_revision_it_met(self):
        self.lead()
        self.etcd.then("/v3/kv/txn", "store_stale")
        self.etcd.then("/v3/kv/txn", "store_ok")
        self.successResultOf(self.store.store("catalog", view(2)))
        self.assertEqual([t["compare"][3]["mod_revision"] for t in self.txns()], ["0", "3"])

    def test_a_view_older_than_the_known_one_is_refused_before_sending(self):
        self.lead()
        self.etcd.then("/v3/kv/range", text=edited("range_views", (VALUE, value_of(view(7)))))
        self.successResultOf(self.store.load())
        self.failureResultOf(self.store.store("catalog", view(6)), StaleView)
        self.assertEqual(self.txns(), [])

    def test_a_view_that_keeps_changing_gives_up(self):
        self.lead()
        for _ in range(3):
            self.etcd.then("/v3/kv/txn", "store_stale")
        failure = self.failureResultOf(self.store.store("catalog", view(5)), ViewStoreError)
        self.assertIn("kept changing", str(failure.value))
        self.assertEqual(len(self.txns()), 3)

    def test_etcd_unreachable_fails_within_the_timeout(self):
        self.lead()
        d = self.store.store("catalog", view(2))
        self.clock.advance(0.99)
        self.assertNoResult(d)
        self.clock.advance(0.01)
        self.failureResultOf(d, EtcdUnavailable)

    def test_stores_of_one_service_go_one_at_a_time(self):
        self.lead()
        first = self.store.store("catalog", view(1))
        second = self.store.store("catalog", view(2))
        other = self.store.store("order", view(1))
        self.assertEqual(len(self.txns()), 2)  # catalog's first, and order's
        self.etcd.answer_held("store_ok")
        self.stub.flush()
        self.successResultOf(first)
        self.assertNoResult(second)
        self.assertEqual(len(self.txns()), 3)
        self.assertEqual(self.txns()[2]["compare"][3]["mod_revision"], "3")
        self.assertNoResult(other)


class WatchTests(Helpers):
    def stream(self, index=-1):
        return self.etcd.streams[index]

    def send(self, *chunks, index=-1):
        for chunk in chunks:
            self.stream(index).write(chunk)
        self.stub.flush()

    def test_the_watch_begins_after_the_loaded_revision_and_skips_what_load_returned(self):
        self.etcd.then("/v3/kv/range", "range_views")
        self.successResultOf(self.store.load())
        self.store.watch(lambda service, v: self.seen.append((service, v.number)))
        [body] = self.etcd.bodies("/v3/watch")
        self.assertEqual(body["create_request"]["start_revision"], "4")
        self.send(*lines("watch"))
        # The event at revision 3 is the loaded view; the delete is ignored.
        self.assertEqual(self.seen, [("catalog", 2)])

    def test_without_a_load_it_reads_first_and_reports_only_later_views(self):
        self.etcd.then("/v3/kv/range", "range_views")
        self.store.watch(lambda service, v: self.seen.append((service, v.number)))
        self.assertEqual(self.etcd.bodies("/v3/watch")[0]["create_request"]["start_revision"], "4")
        self.send(*lines("watch"))
        self.assertEqual(self.seen, [("catalog", 2)])

    def test_a_dropped_stream_is_opened_again_from_the_last_event(self):
        self.etcd.then("/v3/kv/range", "range_empty")
        self.successResultOf(self.store.load())
        self.store.watch(lambda service, v: self.seen.append((service, v.number)))
        self.send(*lines("watch")[:3])
        self.stream().channel.transport.loseConnection()
        self.stub.flush()
        self.assertEqual(len(self.etcd.streams), 1)
        self.clock.advance(0.1)
        self.assertEqual(len(self.etcd.streams), 2)
        self.assertEqual(self.etcd.bodies("/v3/watch")[1]["create_request"]["start_revision"], "6")
        self.assertEqual(self.seen, [("catalog", 1), ("catalog", 2)])
        # Repeats of events already seen are not reported twice.
        self.send(*lines("watch")[1:3])
        self.assertEqual(self.seen, [("catalog", 1), ("catalog", 2)])

    def test_drops_in_a_row_back_off_up_to_two_seconds(self):
        self.etcd.then("/v3/kv/range", "range_empty")
        self.successResultOf(self.store.load())
        self.store.watch(lambda service, v: None)
        delays = []
        for _ in range(7):
            self.stream().channel.transport.loseConnection()
            self.stub.flush()
            [call] = self.clock.getDelayedCalls()
            delays.append(round(call.getTime() - self.clock.seconds(), 3))
            self.clock.advance(delays[-1])
        self.assertEqual(delays, [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0])

    def test_a_compacted_revision_is_replaced_by_a_reload(self):
        self.etcd.then("/v3/kv/range", "range_empty")
        self.successResultOf(self.store.load())
        self.store.watch(lambda service, v: self.seen.append((service, v.number)))
        newer = edited(
            "range_views",
            (VALUE, value_of(view(3))),
            ('"mod_revision":"3"', '"mod_revision":"7"'),
            ('"revision":"3"', '"revision":"8"'),
        )
        self.etcd.then("/v3/kv/range", text=newer)
        self.send(*lines("watch_compacted"))
        self.assertEqual(self.seen, [("catalog", 3)])
        self.assertEqual(self.etcd.bodies("/v3/watch")[-1]["create_request"]["start_revision"], "9")

    def test_a_silent_stream_is_opened_again(self):
        self.etcd.then("/v3/kv/range", "range_empty")
        self.successResultOf(self.store.load())
        self.store.watch(lambda service, v: None)
        self.send(lines("watch")[0])
        self.clock.advance(29.9)
        self.assertEqual(len(self.etcd.streams), 1)
        self.clock.advance(0.1)
        self.stub.flush()
        self.clock.advance(0.1)
        self.assertEqual(len(self.etcd.streams), 2)

    def test_a_failing_watcher_does_not_stop_the_others(self):
        self.etcd.then("/v3/kv/range", "range_empty")
        self.successResultOf(self.store.load())
        self.store.watch(lambda service, v: 1 / 0)
        self.store.watch(lambda service, v: self.seen.append(v.number))
        self.send(*lines("watch"))
        self.assertEqual(self.seen, [1, 2])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 2)

    def test_stop_leaves_nothing_scheduled(self):
        self.etcd.then("/v3/kv/range", "range_empty")
        self.successResultOf(self.store.load())
        self.store.watch(lambda service, v: None)
        self.store.stop()
        self.stub.flush()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(len(self.etcd.streams), 1)

    def test_the_recording_is_what_the_tests_assume(self):
        self.assertEqual(recorded("store_ok")[0], 200)
        self.assertNotIn("succeeded", json.loads(recorded("store_stale")[1]))
