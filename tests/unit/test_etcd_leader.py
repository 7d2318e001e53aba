"""
The view manager's leadership in etcd (L{pygmy.coordination.etcd_leader})
against a real etcd's recorded answers, on a C{Clock}: the campaign, the
renewals, the lapse, the fence, the resignation.
"""

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from pygmy.coordination.etcd_gateway import Gateway
from pygmy.coordination.etcd_leader import Leadership, NotLeader
from pygmy.coordination.etcd_wire import b64
from tests.unit.fake_etcd import FakeEtcd

#: The lease and create revision of the recorded campaign that was won.
LEASE, WON = "7650668210811815943", "2"


class Helpers(SynchronousTestCase):
    ttl = 2.0

    def setUp(self):
        self.etcd = FakeEtcd()
        self.stub = StubTreq(self.etcd)
        self.clock = Clock()
        self.gateway = Gateway("http://a:2379", self.stub, self.clock, timeout=1.0)
        self.leadership = Leadership(self.gateway, "/pygmy/", "1", self.ttl, self.clock)
        self.events = []
        self.leadership.elected = lambda: self.events.append("elected")
        self.leadership.deposed = lambda reason: self.events.append(("deposed", reason))

    def win(self):
        self.etcd.then("/v3/kv/range", "range_empty")
        self.etcd.then("/v3/lease/grant", "grant")
        self.etcd.then("/v3/kv/txn", "campaign_won")
        self.leadership.start()
        self.assertTrue(self.leadership.leading)

    def tearDown(self):
        self.etcd.queues["/v3/lease/revoke"].append((200, "{}"))
        self.leadership.stop()


class CampaignTests(Helpers):
    def test_a_held_key_is_left_alone(self):
        self.leadership.name = "2"
        self.etcd.then("/v3/kv/range", "range_leader")
        self.leadership.start()
        self.assertFalse(self.leadership.leading)
        self.assertEqual(self.leadership.leader, "1")
        self.assertEqual(self.etcd.bodies("/v3/lease/grant"), [])
        self.assertEqual(self.etcd.bodies("/v3/kv/range"), [{"key": b64("/pygmy/leader")}])
        self.assertRaises(NotLeader, self.leadership.fence)
        # It reads the key again a poll later.
        self.clock.advance(self.leadership.poll_every)
        self.assertEqual(len(self.etcd.bodies("/v3/kv/range")), 2)

    def test_a_key_held_by_its_own_previous_run_names_no_leader(self):
        # Front end "1" restarted after a kill -9: the key still names "1",
        # with the lease of its previous run, which leads nothing.
        with capturedLogs() as events:
            self.etcd.then("/v3/kv/range", "range_leader")
            self.leadership.start()
            self.etcd.then("/v3/kv/range", "range_leader")
            self.clock.advance(self.leadership.poll_every)
        self.assertFalse(self.leadership.leading)
        self.assertIsNone(self.leadership.leader)
        self.assertEqual(self.etcd.bodies("/v3/lease/grant"), [])
        self.assertRaises(NotLeader, self.leadership.fence)
        said = [e for e in events if "which it does not hold" in e.get("log_format", "")]
        self.assertEqual(len(said), 1)  # once for that lease, not once a poll
        self.assertEqual(said[0]["lease"], LEASE)
        # Once that lease lapses and the key is gone, it campaigns and wins.
        self.etcd.then("/v3/kv/range", "range_empty")
        self.etcd.then("/v3/lease/grant", "grant")
        self.etcd.then("/v3/kv/txn", "campaign_won")
        self.clock.advance(self.leadership.poll_every)
        self.assertTrue(self.leadership.leading)
        self.assertEqual(self.leadership.leader, "1")

    def test_nobody_holds_it_so_it_wins(self):
        self.win()
        self.assertEqual(self.events, ["elected"])
        self.assertEqual(self.leadership.leader, "1")
        self.assertEqual(self.etcd.bodies("/v3/lease/grant"), [{"TTL": "2"}])
        key = b64("/pygmy/leader")
        [txn] = self.etcd.bodies("/v3/kv/txn")
        self.assertEqual(
            txn,
            {
                "compare": [{"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
                "success": [{"request_put": {"key": key, "value": b64("1"), "lease": LEASE}}],
                "failure": [{"request_range": {"key": key}}],
            },
        )
        self.assertEqual(
            self.leadership.fence(),
            [
                {"key": key, "target": "VALUE", "result": "EQUAL", "value": b64("1")},
                {"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": WON},
                {"key": key, "target": "LEASE", "result": "EQUAL", "lease": LEASE},
            ],
        )
        # No more polls while it leads.
        self.clock.advance(self.leadership.poll_every * 3)
        self.assertEqual(len(self.etcd.bodies("/v3/kv/range")), 1)

    def test_another_won_the_race_so_it_resigns_its_own_lease(self):
        self.leadership.name = "2"
        self.etcd.then("/v3/kv/range", "range_empty")
        self.etcd.then("/v3/lease/grant", "grant_other")
        self.etcd.then("/v3/kv/txn", "campaign_lost")
        self.etcd.then("/v3/lease/revoke", "revoke")
        self.leadership.start()
        self.assertFalse(self.leadership.leading)
        self.assertEqual(self.leadership.leader, "1")
        self.assertEqual(self.etcd.bodies("/v3/lease/revoke"), [{"ID": "7650668210811815946"}])
        self.assertEqual(self.events, [])

    def test_its_own_earlier_try_was_applied(self):
        # The failure branch shows the key held with this very lease.
        self.etcd.then("/v3/kv/range", "range_empty")
        self.etcd.then("/v3/lease/grant", "grant")
        self.etcd.then("/v3/kv/txn", "campaign_lost")
        self.leadership.start()
        self.assertTrue(self.leadership.leading)
        self.assertEqual(self.leadership.fence()[1]["create_revision"], WON)

    def test_etcd_unreachable_is_logged_and_tried_again(self):
        self.leadership.start()
        self.clock.advance(1.0)  # the range's deadline
        self.assertFalse(self.leadership.leading)
        self.assertIsNone(self.leadership.leader)
        self.etcd.then("/v3/kv/range", "range_leader")
        self.leadership.name = "2"
        self.clock.advance(self.leadership.poll_every)
        self.assertEqual(self.leadership.leader, "1")
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def test_the_lease_asked_for_is_whole_seconds(self):
        for ttl, asked in ((2.5, "2"), (0.5, "1"), (3.0, "3")):
            self.leadership.ttl = ttl
            self.etcd.then("/v3/kv/range", "range_leader")
            self.etcd.then("/v3/kv/range", "range_empty")
            self.etcd.then("/v3/lease/grant", "grant_other")
            self.etcd.then("/v3/kv/txn", "campaign_lost")
            self.etcd.then("/v3/lease/revoke", "revoke")
            self.leadership.start()
            self.clock.advance(self.leadership.poll_every)
            self.assertEqual(self.etcd.bodies("/v3/lease/grant")[-1], {"TTL": asked})
            self.leadership.stop()


class RenewalTests(Helpers):
    def test_renewals_every_third_keep_it(self):
        self.win()
        for n in range(1, 7):
            self.etcd.then("/v3/lease/keepalive", "keepalive")
            self.clock.advance(self.ttl / 3)
            self.assertEqual(len(self.etcd.bodies("/v3/lease/keepalive")), n)
        self.assertEqual(self.etcd.bodies("/v3/lease/keepalive")[0], {"ID": LEASE})
        self.assertTrue(self.leadership.leading)
        self.leadership.fence()
        self.assertEqual(self.events, ["elected"])
        self.assertEqual((self.leadership.changes, self.leadership.renewal_failures), (1, 0))

    def test_a_renewal_answered_with_ttl_0_ends_it_at_once(self):
        self.win()
        self.etcd.then("/v3/lease/keepalive", "keepalive_gone")
        self.etcd.then("/v3/lease/revoke", "revoke_gone")
        self.clock.advance(self.ttl / 3)
        self.assertFalse(self.leadership.leading)
        self.assertEqual(self.events, ["elected", ("deposed", "the leadership lease has expired in etcd")])
        self.assertRaises(NotLeader, self.leadership.fence)
        # Won and lost: two changes; the renewal that found the lease gone failed.
        self.assertEqual((self.leadership.changes, self.leadership.renewal_failures), (2, 1))
        # It campaigns again.
        self.etcd.then("/v3/kv/range", "range_leader")
        self.clock.advance(self.leadership.poll_every)
        self.assertEqual(len(self.etcd.bodies("/v3/kv/range")), 2)

    def test_no_answered_renewal_lapses_ttl_after_the_last_one_sent(self):
        self.win()  # the grant was sent at 0: it leads until 2.0 at most
        self.etcd.then("/v3/lease/keepalive", "keepalive")
        self.clock.advance(self.ttl / 3)  # renewed, sent at 0.667: until 2.667
        self.clock.advance(self.ttl - 0.01)  # the next renewals get no answer
        self.assertTrue(self.leadership.leading)
        self.leadership.fence()
        self.clock.advance(0.02)
        self.assertFalse(self.leadership.leading)
        self.assertEqual(self.events[-1][0], "deposed")
        self.assertIn("within 2s", self.events[-1][1])
        self.assertRaises(NotLeader, self.leadership.fence)
        # It resigned the lease it lost (a revoke is on its way).
        self.assertEqual(self.etcd.bodies("/v3/lease/revoke"), [{"ID": LEASE}])

    def test_a_lease_ttl_below_etcds_grant_lapses_at_lease_ttl(self):
        self.leadership.ttl = 1.5  # asks for 1 s; etcd grants its minimum, 2 s
        self.win()
        self.clock.advance(1.49)
        self.assertTrue(self.leadership.leading)
        self.clock.advance(0.01)
        self.assertFalse(self.leadership.leading)

    def test_lost_is_final_until_won_again(self):
        self.win()
        self.etcd.then("/v3/lease/revoke", "revoke")
        self.leadership.lost("the leader key is held by 2")
        self.leadership.lost("again")
        self.assertEqual(self.events, ["elected", ("deposed", "the leader key is held by 2")])
        self.assertIsNone(self.leadership.leader)

    def test_holds(self):
        self.win()
        kv = {"key": b64("/pygmy/leader"), "value": b64("1"), "create_revision": WON, "lease": LEASE}
        self.assertTrue(self.leadership.holds(kv))
        self.assertFalse(self.leadership.holds({**kv, "value": b64("2")}))
        self.assertFalse(self.leadership.holds({**kv, "create_revision": "9"}))
        self.assertFalse(self.leadership.holds({**kv, "lease": "1"}))
        self.assertFalse(self.leadership.holds(None))


class StopTests(Helpers):
    def test_a_clean_stop_resigns(self):
        self.win()
        self.etcd.then("/v3/lease/revoke", "revoke")
        d = self.leadership.stop()
        self.successResultOf(d)
        self.assertEqual(self.etcd.bodies("/v3/lease/revoke"), [{"ID": LEASE}])
        self.assertFalse(self.leadership.leading)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.events, ["elected"])

    def test_a_stop_while_following_sends_nothing(self):
        self.etcd.then("/v3/kv/range", "range_leader")
        self.leadership.name = "2"
        self.leadership.start()
        self.successResultOf(self.leadership.stop())
        self.assertEqual(self.etcd.bodies("/v3/lease/revoke"), [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_a_failed_revoke_is_not_an_error_of_stop(self):
        self.win()
        d = self.leadership.stop()
        self.clock.advance(1.0)
        self.successResultOf(d)


class WatchTests(Helpers):
    """A follower watches the key between polls: its deletion starts a campaign at once."""

    KEY = b64("/pygmy/leader")
    HEADER = '"header":{"cluster_id":"14165293047771572487","member_id":"7257773868089076268","revision":"%s"}'

    def follow(self):
        self.leadership.name = "2"
        self.etcd.then("/v3/kv/range", "range_leader")
        self.leadership.start()
        self.assertEqual(self.leadership.leader, "1")

    def send(self, line: str):
        self.etcd.streams[-1].write(line.encode() + b"\n")
        self.stub.flush()

    def test_a_follower_watches_the_key_from_after_its_read(self):
        self.follow()
        [body] = self.etcd.bodies("/v3/watch")
        self.assertEqual(body["create_request"]["key"], self.KEY)
        self.assertEqual(body["create_request"]["start_revision"], "3")  # range_leader was read at revision 2
        self.assertNotIn("range_end", body["create_request"])
        # The next poll, finding the key still held, opens no second watch.
        self.etcd.then("/v3/kv/range", "range_leader")
        self.clock.advance(self.leadership.poll_every)
        self.assertEqual(len(self.etcd.bodies("/v3/watch")), 1)

    def test_the_deletion_of_the_key_starts_a_campaign_before_the_next_poll(self):
        self.follow()
        self.etcd.then("/v3/kv/range", "range_empty")
        self.etcd.then("/v3/lease/grant", "grant_other")
        self.etcd.then("/v3/kv/txn", "campaign_won")
        header = self.HEADER % "3"
        self.send(
            '{"result":{%s,"events":[{"type":"DELETE","kv":{"key":"%s","mod_revision":"3"}}]}}' % (header, self.KEY)
        )
        self.assertEqual(len(self.etcd.bodies("/v3/kv/range")), 2)
        self.assertEqual(len(self.etcd.bodies("/v3/lease/grant")), 1)
        self.assertTrue(self.leadership.leading)
        self.assertEqual(self.events, ["elected"])

    def test_a_new_holder_seen_on_the_watch_is_the_leader(self):
        self.follow()
        self.send(self.holder("3"))
        self.assertEqual(self.leadership.leader, "3")
        self.assertEqual(self.etcd.bodies("/v3/lease/grant"), [])

    def test_a_campaign_under_way_is_not_started_twice(self):
        self.follow()
        header = self.HEADER % "3"
        deletion = '{"result":{%s,"events":[{"type":"DELETE","kv":{"key":"%s","mod_revision":"3"}}]}}' % (
            header,
            self.KEY,
        )
        self.send(deletion)  # its range is held: no answer queued
        self.send(deletion)
        self.clock.advance(self.leadership.poll_every)
        self.assertEqual(len(self.etcd.bodies("/v3/kv/range")), 2)

    def holder(self, name: str, revision: str = "4") -> str:
        kv = '{"key":"%s","create_revision":"%s","mod_revision":"%s","value":"%s"}' % (
            self.KEY,
            revision,
            revision,
            b64(name),
        )
        return '{"result":{%s,"events":[{"kv":%s}]}}' % (self.HEADER % revision, kv)

    def test_its_own_name_seen_on_the_watch_is_no_leader(self):
        self.follow()  # as front end "2"
        self.send(self.holder("2"))  # a previous run of "2" took the key meanwhile
        self.assertIsNone(self.leadership.leader)
        self.assertFalse(self.leadership.leading)

    def test_the_watch_stops_when_it_wins(self):
        self.follow()
        self.etcd.then("/v3/kv/range", "range_empty")
        self.etcd.then("/v3/lease/grant", "grant")
        self.etcd.then("/v3/kv/txn", "campaign_won")
        self.clock.advance(self.leadership.poll_every)
        self.assertTrue(self.leadership.leading)
        self.send(self.holder("3"))  # on the old stream: not heard any more
        self.assertEqual(self.leadership.leader, "2")

    def test_the_watch_stops_when_it_stops(self):
        self.follow()
        self.successResultOf(self.leadership.stop())
        self.send(self.holder("3"))
        self.assertEqual(self.leadership.leader, "1")
        self.assertEqual(self.clock.getDelayedCalls(), [])
