"""
The public API of the front end (DESIGN §3), over in-memory HTTP to real
catalog and order apps on real SQLite: every route's success and error
shapes.
"""

import json
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from twisted.trial.unittest import SynchronousTestCase

from pygmy.catalog.books import SEED
from pygmy.net.web import MAX_BODY
from tests.fakes import InMemoryCluster

URL = "http://front.invalid"


class FrontendTests(SynchronousTestCase):
    """Requests to the front end's Klein resource with C{StubTreq}."""

    def setUp(self):
        directory = Path(tempfile.mkdtemp(prefix="pygmy-test-"))
        self.addCleanup(shutil.rmtree, directory)
        self.cluster = InMemoryCluster(directory)
        self.addCleanup(self.cluster.close)
        self.auth = {"Authorization": f"Bearer {self.cluster.secret}"}

    def call(self, method, path, body=None, headers=None, raw=None):
        """Make one request; return (status, headers, decoded JSON body)."""
        front = self.cluster.front
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        response = self.successResultOf(front.request(method, URL + path, data=data, headers=headers or {}))
        content = self.successResultOf(response.content())
        self.assertEqual(response.headers.getRawHeaders(b"content-type"), [b"application/json"], content)
        return response.code, response.headers, json.loads(content)

    def assertError(self, reply, status, code):
        got_status, _, body = reply
        self.assertEqual((got_status, body["error"]["code"]), (status, code), body)
        self.assertIsInstance(body["error"]["message"], str)
        self.assertEqual(set(body), {"error"})

    # Reads

    def test_lookup(self):
        status, _, body = self.call("GET", "/lookup/1")
        self.assertEqual(status, 200)
        self.assertEqual(
            body,
            {"id": 1, "title": SEED[0][1], "topic": SEED[0][2], "cost": SEED[0][3], "stock": SEED[0][4]},
        )

    def test_lookup_errors(self):
        for bad in ["0", "-1", "abc", "1.5", "01", "99999999999999999999"]:
            self.assertError(self.call("GET", f"/lookup/{bad}"), 400, "bad_request")
        self.assertError(self.call("GET", "/lookup/8"), 404, "not_found")

    def test_search_by_path_and_query_any_case(self):
        status, _, body = self.call("GET", "/search/distributed%20systems")
        self.assertEqual(status, 200)
        self.assertEqual(body["topic"], "distributed systems")
        self.assertEqual(body["items"], [{"id": 1, "title": SEED[0][1]}, {"id": 2, "title": SEED[1][1]}])
        _, _, by_query = self.call("GET", "/search?topic=Graduate%20SCHOOL")
        self.assertEqual([item["id"] for item in by_query["items"]], [3, 4])

    def test_search_nothing_matches(self):
        status, _, body = self.call("GET", "/search/cooking")
        self.assertEqual((status, body), (200, {"topic": "cooking", "items": []}))

    def test_search_errors(self):
        self.assertError(self.call("GET", "/search?topic="), 400, "bad_request")
        self.assertError(self.call("GET", "/search"), 400, "bad_request")
        self.assertError(self.call("GET", "/search/%20%20"), 400, "bad_request")
        self.assertError(self.call("GET", "/search/" + "x" * 201), 400, "bad_request")
        self.assertEqual(self.call("GET", "/search/" + "x" * 200)[0], 200)

    def test_list(self):
        status, _, body = self.call("GET", "/list")
        self.assertEqual(status, 200)
        self.assertEqual([item["id"] for item in body["items"]], [1, 2, 3, 4, 5, 6, 7])
        self.assertEqual(set(body["items"][0]), {"id", "title", "topic", "cost", "stock"})
        self.assertEqual(body["next"], None)
        columns = ("id", "title", "topic", "cost", "stock")
        self.assertEqual(body, {"items": [dict(zip(columns, row, strict=True)) for row in SEED], "next": None})

    def test_list_pages(self):
        pages = []
        after = 0
        while after is not None:
            status, _, body = self.call("GET", f"/list?after={after}&limit=3")
            self.assertEqual(status, 200)
            pages.append([item["id"] for item in body["items"]])
            after = body["next"]
        self.assertEqual(pages, [[1, 2, 3], [4, 5, 6], [7]])
        self.assertEqual(self.call("GET", "/list?limit=7")[2]["next"], None)
        self.assertEqual(self.call("GET", "/list?limit=6")[2]["next"], 6)
        self.assertEqual(
            self.call("GET", "/list?after=6&limit=1")[2], {"items": [self.call("GET", "/lookup/7")[2]], "next": None}
        )
        self.assertEqual(self.call("GET", "/list?after=7")[2], {"items": [], "next": None})
        self.assertEqual(self.call("GET", "/list?after=9223372036854775807&limit=1000")[2], {"items": [], "next": None})
        self.assertEqual([i["id"] for i in self.call("GET", "/list?after=2&unknown=x")[2]["items"]], [3, 4, 5, 6, 7])
        # A name without "=" is no parameter at all, as Twisted reads a query.
        self.assertEqual(self.call("GET", "/list?limit")[2], self.call("GET", "/list")[2])

    def test_list_errors(self):
        for query in [
            "limit=0",
            "limit=1001",
            "limit=-1",
            "limit=1.0",
            "limit=",
            "limit=3&limit=3",
            "limit=" + "9" * 100,
            "after=-1",
            "after=1.0",
            "after=x",
            "after=%FF",
            "after=9223372036854775808",
            "after=1&after=2",
        ]:
            self.assertError(self.call("GET", f"/list?{query}"), 400, "bad_request")

    # Buy and orders

    def test_buy_then_get_order(self):
        status, _, body = self.call("POST", "/buy/2")
        self.assertEqual(status, 200)
        order = body["order"]
        self.assertEqual(set(order), {"id", "item_id", "created"})
        self.assertEqual(order["item_id"], 2)
        self.assertRegex(order["created"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual(self.call("GET", "/lookup/2")[2]["stock"], SEED[1][4] - 1)
        self.assertEqual(self.call("GET", f"/orders/{order['id']}")[2], {"order": order})

    def test_order_ids_increase(self):
        ids = [self.call("POST", "/buy/1")[2]["order"]["id"] for _ in range(3)]
        self.assertEqual(ids, sorted(set(ids)))

    def test_buys_without_a_key_get_ids_in_the_order_they_came(self):
        for n in range(10):  # random ids would come out sorted once in 10! runs
            self.call("POST", f"/buy/{n % 7 + 1}")
        query = "SELECT request_id FROM buys ORDER BY rowid"
        ids = [
            row[0] for row in self.successResultOf(self.cluster.order_store.read(lambda t: t.execute(query).fetchall()))
        ]
        self.assertEqual(len(ids), 10)
        self.assertEqual(ids, sorted(ids))
        for request_id in ids:
            self.assertRegex(request_id, r"^buy:[0-9a-f]{32}$")

    def test_idempotency_key_buys_once(self):
        headers = {"Idempotency-Key": "k-123"}
        first = self.call("POST", "/buy/3", headers=headers)
        again = self.call("POST", "/buy/3", headers=headers)
        self.assertEqual(first[2], again[2])
        self.assertEqual(self.call("GET", "/lookup/3")[2]["stock"], SEED[2][4] - 1)
        self.assertError(self.call("POST", "/buy/4", headers=headers), 409, "conflict")
        self.assertEqual(self.call("GET", "/lookup/4")[2]["stock"], SEED[3][4])

    def test_bad_idempotency_key(self):
        self.assertError(self.call("POST", "/buy/3", headers={"Idempotency-Key": "x" * 129}), 400, "bad_request")

    def test_buy_errors(self):
        self.assertError(self.call("POST", "/buy/abc"), 400, "bad_request")
        self.assertError(self.call("POST", "/buy/42"), 404, "not_found")
        self.call("POST", "/update/6", {"stock_delta": -SEED[5][4]}, headers=self.auth)
        self.assertError(self.call("POST", "/buy/6"), 409, "out_of_stock")
        self.assertEqual(self.call("GET", "/lookup/6")[2]["stock"], 0)

    def test_order_errors(self):
        self.assertError(self.call("GET", "/orders/0"), 400, "bad_request")
        self.assertError(self.call("GET", "/orders/x"), 400, "bad_request")
        self.assertError(self.call("GET", "/orders/5"), 404, "not_found")

    # Update

    def test_update_cost_and_stock(self):
        status, _, body = self.call("POST", "/update/7", {"cost": "12.5", "stock_delta": 5}, headers=self.auth)
        self.assertEqual(status, 200)
        self.assertEqual(body["item"]["cost"], "12.50")
        self.assertEqual(body["item"]["stock"], SEED[6][4] + 5)
        self.assertEqual(self.call("GET", "/lookup/7")[2], body["item"])

    def test_update_needs_the_secret(self):
        self.assertError(self.call("POST", "/update/7", {"stock_delta": 1}), 401, "unauthorized")
        wrong = {"Authorization": "Bearer nope"}
        self.assertError(self.call("POST", "/update/7", {"stock_delta": 1}, headers=wrong), 401, "unauthorized")
        self.assertEqual(self.call("GET", "/lookup/7")[2]["stock"], SEED[6][4])

    def test_update_bad_bodies(self):
        bodies = [
            {},
            {"colour": "red"},
            {"stock_delta": True},
            {"stock_delta": "5"},
            {"stock_delta": 1.5},
            {"cost": 12.5},
            {"cost": "1.234"},
            {"cost": "-1"},
            {"cost": "NaN"},
            {"stock_delta": -(SEED[0][4] + 1)},
            [1, 2],
        ]
        for body in bodies:
            reply = self.call("POST", "/update/1", body, headers=self.auth)
            self.assertError(reply, 400, "bad_request")
        for raw in [b"", b"{", b"null", b'{"stock_delta": NaN}', b"\xff\xfe"]:
            self.assertError(self.call("POST", "/update/1", raw=raw, headers=self.auth), 400, "bad_request")
        self.assertEqual(self.call("GET", "/lookup/1")[2]["stock"], SEED[0][4])
        self.assertError(self.call("POST", "/update/99", {"stock_delta": 1}, headers=self.auth), 404, "not_found")

    def test_deeply_nested_body(self):
        raw = b'{"cost":' + b"[" * 5000 + b"]" * 5000 + b"}"
        self.assertError(self.call("POST", "/update/1", raw=raw, headers=self.auth), 400, "bad_request")

    # Protocol errors

    def test_unknown_path_is_json_404(self):
        self.assertError(self.call("GET", "/nope"), 404, "not_found")
        self.assertError(self.call("GET", "/lookup"), 404, "not_found")

    def test_wrong_method_is_405_with_allow(self):
        status, headers, body = self.call("GET", "/buy/1")
        self.assertEqual((status, body["error"]["code"]), (405, "method_not_allowed"))
        self.assertEqual(headers.getRawHeaders(b"allow"), [b"POST"])
        status, headers, _ = self.call("DELETE", "/lookup/1")
        self.assertEqual(status, 405)
        self.assertIn(b"GET", headers.getRawHeaders(b"allow")[0])

    # Status and health

    def test_health(self):
        self.assertEqual(self.call("GET", "/health")[:3:2], (200, {"status": "ok"}))

    def test_status(self):
        monitor = self.cluster.monitor
        sent = []
        for name, seq in [("A", 3), ("B", 3)]:
            monitor.connected("catalog", name, SimpleNamespace(send=sent.append))
            monitor.beat("catalog", name, 0, seq, 0, "idle")
        status, _, body = self.call("GET", "/status")
        self.assertEqual(status, 200)
        self.assertEqual(body["balancer"], "round_robin")
        catalog = body["services"]["catalog"]
        self.assertEqual((catalog["view"], catalog["primary"], catalog["backups"]), (1, "A", ["B"]))
        self.assertEqual(
            catalog["replicas"]["A"],
            {"alive": True, "state": "idle", "applied_seq": 3, "promotable": True, "promotion": "primary"},
        )
        self.assertEqual(catalog["replicas"]["B"]["promotion"], "in the in-sync set")
        order = body["services"]["order"]
        self.assertEqual((order["view"], order["primary"]), (0, None))
        self.assertEqual(order["replicas"]["B"]["alive"], False)
        self.assertIn(b"VIEW catalog 1 A B", sent)


def test_body_limit_constant():
    """The contract's limit: 64 KiB."""
    assert MAX_BODY == 64 * 1024


@pytest.mark.parametrize("path", ["/status", "/admin/dump", "/books/1"])
def test_replica_routes(tmp_path, path):
    """Replica /status is public; everything else needs the secret."""
    cluster = InMemoryCluster(tmp_path)
    try:

        def get(headers):
            outcome = []
            cluster.catalog.get("http://catalog.invalid" + path, headers=headers).addBoth(outcome.append)
            return outcome[0]

        anonymous = get({})
        authorised = get({"Authorization": f"Bearer {cluster.secret}"})
        assert authorised.code == 200
        assert anonymous.code == (200 if path == "/status" else 401)
    finally:
        cluster.close()
