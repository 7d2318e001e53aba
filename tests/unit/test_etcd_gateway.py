"""
The etcd JSON gateway client (L{pygmy.coordination.etcd_gateway}) against
the answers a real etcd 3.5.1 gave (L{tests.unit.fake_etcd}), with
C{StubTreq} and a C{Clock}: no sockets.
"""

import json
from base64 import b64decode

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pygmy.coordination.etcd_gateway import Gateway
from pygmy.coordination.etcd_wire import (
    EtcdError,
    EtcdUnavailable,
    b64,
    kvs,
    number,
    parse_endpoints,
    prefix_end,
    revision,
    unb64,
)
from tests.unit.fake_etcd import FakeEtcd, Unreachable, lines


class Helpers(SynchronousTestCase):
    def setUp(self):
        self.etcd = FakeEtcd()
        self.stub = StubTreq(self.etcd)
        self.clock = Clock()
        self.client = Unreachable(self.stub)
        self.gateway = Gateway("http://a:2379, http://b:2379/", self.client, self.clock, timeout=2.0)


class EncodingTests(SynchronousTestCase):
    def test_keys_and_values_are_base64(self):
        self.assertEqual(b64("/pygmy/leader"), "L3B5Z215L2xlYWRlcg==")
        self.assertEqual(unb64("MQ=="), "1")

    def test_a_prefix_ends_at_its_last_byte_plus_one(self):
        self.assertEqual(b64decode(prefix_end("/pygmy/views/")), b"/pygmy/views0")

    def test_64_bit_numbers_are_strings_and_zero_is_left_out(self):
        lease = {"ID": "7650668210811815943", "TTL": "2"}
        self.assertEqual(number(lease, "ID"), 7650668210811815943)
        self.assertEqual(number({"ID": "1"}, "TTL"), 0)
        self.assertRaises(EtcdError, number, {"TTL": "soon"}, "TTL")

    def test_endpoints(self):
        self.assertEqual(parse_endpoints("http://a:1/, http://b:2"), ["http://a:1", "http://b:2"])
        self.assertRaises(ValueError, parse_endpoints, " , ")


class CallTests(Helpers):
    def test_a_range_sends_base64_and_decodes_the_answer(self):
        self.etcd.then("/v3/kv/range", "range_views")
        answer = self.successResultOf(self.gateway.range("/pygmy/views/", prefix=True))
        [(path, body)] = self.etcd.requests
        self.assertEqual(path, "/v3/kv/range")
        self.assertEqual(body, {"key": b64("/pygmy/views/"), "range_end": b64("/pygmy/views0")})
        self.assertEqual(revision(answer), 3)
        [kv] = kvs(answer)
        self.assertEqual(json.loads(unb64(kv["value"]))["number"], 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_an_empty_range_has_no_kvs(self):
        self.etcd.then("/v3/kv/range", "range_empty")
        self.assertEqual(kvs(self.successResultOf(self.gateway.range("/x"))), [])

    def test_an_error_etcd_answers_is_final(self):
        self.etcd.then("/v3/lease/revoke", "revoke_gone")
        failure = self.failureResultOf(self.gateway.revoke(7650668210811815943), EtcdError)
        self.assertNotIsInstance(failure.value, EtcdUnavailable)
        self.assertEqual(failure.value.code, 5)
        self.assertIn("requested lease not found", str(failure.value))
        self.assertEqual(len(self.etcd.requests), 1)
        self.assertEqual(self.etcd.bodies("/v3/lease/revoke"), [{"ID": "7650668210811815943"}])

    def test_a_bad_request_is_final(self):
        self.etcd.then("/v3/kv/range", "bad_request")
        failure = self.failureResultOf(self.gateway.range("/x"), EtcdError)
        self.assertEqual(failure.value.code, 3)

    def test_a_member_without_a_leader_sends_the_call_to_the_next(self):
        self.etcd.then("/v3/kv/range", "no_leader_range")
        self.etcd.then("/v3/kv/range", "range_leader")
        answer = self.successResultOf(self.gateway.range("/pygmy/leader"))
        self.assertEqual(unb64(kvs(answer)[0]["value"]), "1")
        self.assertEqual(self.client.tried, ["http://a:2379/v3/kv/range", "http://b:2379/v3/kv/range"])
        self.assertEqual(self.gateway.current, 1)

    def test_a_500_goes_to_the_next_too(self):
        self.etcd.then("/v3/kv/txn", "no_leader_put")
        self.etcd.then("/v3/kv/txn", "store_ok")
        self.assertTrue(self.successResultOf(self.gateway.txn([], [], []))["succeeded"])

    def test_an_unreachable_endpoint_sends_the_call_to_the_next_and_later_calls_begin_there(self):
        self.client.down = {"http://a:"}
        self.etcd.then("/v3/lease/grant", "grant")
        self.etcd.then("/v3/lease/keepalive", "keepalive")
        answer = self.successResultOf(self.gateway.grant(2))
        self.assertEqual((number(answer, "ID"), number(answer, "TTL")), (7650668210811815943, 2))
        self.assertEqual(self.etcd.bodies("/v3/lease/grant"), [{"TTL": "2"}])
        self.successResultOf(self.gateway.keepalive(7650668210811815943))
        self.assertEqual(self.client.tried[-1], "http://b:2379/v3/lease/keepalive")
        self.assertEqual(len(self.client.tried), 3)

    def test_when_no_endpoint_answers_the_error_names_each(self):
        self.client.down = {"http://a:", "http://b:"}
        failure = self.failureResultOf(self.gateway.range("/x"), EtcdUnavailable)
        self.assertIn("http://a:2379", str(failure.value))
        self.assertIn("http://b:2379", str(failure.value))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_a_call_without_an_answer_fails_at_its_deadline(self):
        d = self.gateway.range("/x", timeout=1.5)
        self.assertNoResult(d)
        self.clock.advance(1.4)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        failure = self.failureResultOf(d, EtcdUnavailable)
        self.assertIn("no answer within 1.5s", str(failure.value))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        # The next call begins at the next endpoint.
        self.assertEqual(self.gateway.current, 1)

    def test_an_answer_that_is_not_json(self):
        self.etcd.then("/v3/kv/range", status=200, text="<html>proxy</html>")
        self.failureResultOf(self.gateway.range("/x"), EtcdError)

    def test_a_caller_may_cancel(self):
        d = self.gateway.range("/x")
        d.cancel()
        self.failureResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class WatchTests(Helpers):
    def open(self, start=4):
        self.results = []
        stream = self.gateway.watch("/pygmy/views/", start, self.results.append)
        [request] = self.etcd.streams
        return stream, request

    def test_the_create_request(self):
        self.open(start=4)
        [body] = self.etcd.bodies("/v3/watch")
        self.assertEqual(
            body,
            {
                "create_request": {
                    "key": b64("/pygmy/views/"),
                    "range_end": b64("/pygmy/views0"),
                    "start_revision": "4",
                    "progress_notify": True,
                }
            },
        )

    def test_every_result_in_order_even_split_across_writes(self):
        stream, request = self.open()
        data = b"".join(lines("watch"))
        request.write(data[:100])
        self.stub.flush()
        request.write(data[100:])
        self.stub.flush()
        self.assertEqual(len(self.results), 4)
        self.assertTrue(self.results[0]["created"])
        self.assertEqual([number(r["events"][0]["kv"], "mod_revision") for r in self.results[1:]], [3, 5, 6])
        self.assertEqual(self.results[3]["events"][0]["type"], "DELETE")
        self.assertNoResult(stream.ended)

    def test_a_compacted_watch_is_cancelled_and_ends(self):
        stream, request = self.open(start=2)
        for line in lines("watch_compacted"):
            request.write(line)
        request.finish()
        self.stub.flush()
        self.assertEqual(number(self.results[1], "compact_revision"), 6)
        self.assertTrue(self.results[1]["canceled"])
        self.assertIsNone(self.successResultOf(stream.ended))

    def test_a_lost_stream_fails_and_moves_to_the_next_endpoint(self):
        stream, request = self.open()
        request.write(lines("watch")[0])
        self.stub.flush()
        request.channel.transport.loseConnection()
        self.stub.flush()
        self.failureResultOf(stream.ended, EtcdUnavailable)
        self.assertEqual(self.gateway.current, 1)

    def test_an_unreachable_endpoint(self):
        self.client.down = {"http://a:"}
        stream = self.gateway.watch("/pygmy/views/", 1, lambda result: None)
        self.failureResultOf(stream.ended, EtcdUnavailable)
        self.assertEqual(self.gateway.current, 1)

    def test_a_line_that_is_not_a_result_ends_the_stream(self):
        stream, request = self.open()
        request.write(b'{"error": {"grpc_code": 14, "message": "etcdserver: no leader"}}\n')
        self.stub.flush()
        failure = self.failureResultOf(stream.ended, EtcdError)
        self.assertIn("no leader", str(failure.value))

    def test_stop_closes_it_and_nothing_more_is_delivered(self):
        stream, request = self.open()
        request.write(lines("watch")[0])
        self.stub.flush()
        stream.stop()
        self.stub.flush()
        self.assertIsNone(self.successResultOf(stream.ended))
        self.assertEqual(len(self.results), 1)

    def test_stop_before_the_stream_opened(self):
        self.etcd.streams.clear()
        stream = self.gateway.watch("/pygmy/views/", 1, lambda result: None)
        stream.stop()
        self.assertIsNone(self.successResultOf(stream.ended))
