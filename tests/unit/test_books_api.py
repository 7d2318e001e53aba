"""
C{POST /books} on the front end (DESIGN §3) over in-memory HTTP to real
catalog and order apps on SQLite: the 201 and its book, the Bearer secret,
every malformed body answered 400 with a sentence that names the problem,
C{Idempotency-Key}, and the cache (invariant 6): after the answer, every
search of the book's topic, in any case, and every page of the list show
it -- through this front end, and through another one, whose cache the
catalog primary's C{INVALIDATE} line clears.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from urllib.parse import quote

from treq.testing import StubTreq
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from pygmy.catalog.books import SEED, Catalog
from pygmy.catalog.service import InvalidationPush
from pygmy.frontend.app import FrontendApp
from pygmy.frontend.cache import ReplyCache
from pygmy.frontend.monitor import Monitor
from pygmy.net.web import MAX_BODY
from pygmy.replication.heartbeat import MonitorFactory, proof
from tests.fakes import InMemoryCluster, result

URL = "http://front.invalid"
BOOK = {"title": "Les Misérables", "topic": "École", "cost": "12.5", "stock": 3}


class Front:
    """Requests to one front end's resource; answers as (status, headers, JSON)."""

    def __init__(self, test, front, secret):
        self.test, self.front, self.secret = test, front, secret

    def call(self, method, path, body=None, headers=None, raw=None, auth=True):
        headers = dict(headers or {})
        if auth:
            headers.setdefault("Authorization", f"Bearer {self.secret}")
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        response = self.test.successResultOf(self.front.request(method, URL + path, data=data, headers=headers))
        content = self.test.successResultOf(response.content())
        return response.code, response.headers, json.loads(content)

    def add(self, body=BOOK, **kwargs):
        return self.call("POST", "/books", body, **kwargs)

    def search(self, topic):
        status, _, body = self.call("GET", "/search/" + quote(topic, safe=""))
        self.test.assertEqual(status, 200, body)
        return [item["id"] for item in body["items"]]

    def list(self, query=""):
        status, _, body = self.call("GET", "/list" + query)
        self.test.assertEqual(status, 200, body)
        return [item["id"] for item in body["items"]]


class AddBookTests(SynchronousTestCase):
    """One front end over the in-memory cluster."""

    def setUp(self):
        directory = Path(tempfile.mkdtemp(prefix="pygmy-test-"))
        self.addCleanup(shutil.rmtree, directory)
        self.cluster = InMemoryCluster(directory)
        self.addCleanup(self.cluster.close)
        self.front = Front(self, self.cluster.front, self.cluster.secret)

    def assertRefused(self, reply, status, code, words=""):
        got, _, body = reply
        self.assertEqual((got, body["error"]["code"]), (status, code), body)
        self.assertIn(words, body["error"]["message"])

    def assertNothingAdded(self):
        self.assertEqual(self.front.call("GET", "/list", headers={"Cache-Control": "no-cache"})[2]["next"], None)
        self.assertEqual(len(self.front.call("GET", "/list", headers={"Cache-Control": "no-cache"})[2]["items"]), 7)

    # The answer

    def test_a_new_book_answers_201_with_its_row_and_location(self):
        status, headers, body = self.front.add()
        self.assertEqual(status, 201)
        item = {"id": 8, "title": "Les Misérables", "topic": "École", "cost": "12.50", "stock": 3}
        self.assertEqual(body, {"item": item})
        self.assertEqual(headers.getRawHeaders(b"location"), [b"/lookup/8"])
        self.assertEqual(headers.getRawHeaders(b"content-type"), [b"application/json"])
        self.assertEqual(self.front.call("GET", "/lookup/8")[2], item)
        self.assertEqual(self.front.add({**BOOK, "title": "Second"})[2]["item"]["id"], 9)

    def test_no_catalog_primary_answers_503(self):
        self.cluster.frontend.catalog.update(2, None, [])
        pending = self.cluster.front.request(
            "POST", URL + "/books", data=json.dumps(BOOK).encode(), headers={"Authorization": "Bearer s3cret"}
        )
        for _ in range(100):
            self.cluster.reactor.advance(0.1)
            self.cluster.front.flush()
        response = self.successResultOf(pending)
        self.assertEqual(response.code, 503)
        self.assertTrue(response.headers.getRawHeaders(b"retry-after"))

    # Refusals

    def test_without_the_secret_401_and_nothing_added(self):
        for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic czNjcmV0"}]:
            reply = self.front.add(headers=headers, auth=False)
            self.assertRefused(reply, 401, "unauthorized", "Bearer")
            self.assertEqual(reply[1].getRawHeaders(b"www-authenticate"), [b'Bearer realm="pygmy"'])
        # The secret is checked before the body.
        self.assertRefused(self.front.add(raw=b"{", auth=False), 401, "unauthorized")
        self.assertNothingAdded()

    def test_every_bad_body_is_a_400_that_says_why(self):
        cases = [
            (b"", "must be a JSON object"),
            (b"[]", "must be a JSON object"),
            (b'"book"', "must be a JSON object"),
            (b"{", "not valid JSON"),
            (b"\xff", "not valid JSON"),
            (b'{"title": NaN}', "not valid JSON"),
            (b"{}", "Missing field(s): title, topic, cost, stock."),
            (json.dumps({**BOOK, "isbn": "x"}).encode(), "Unknown field(s): isbn"),
            (json.dumps({k: v for k, v in BOOK.items() if k != "cost"}).encode(), "Missing field(s): cost."),
            (json.dumps({**BOOK, "title": ""}).encode(), "title must not be empty"),
            (json.dumps({**BOOK, "title": "   "}).encode(), "title must not be empty"),
            (json.dumps({**BOOK, "title": "t" * 301}).encode(), "at most 300 characters"),
            (json.dumps({**BOOK, "title": 7}).encode(), "title must be a string"),
            (b'{"title": "\\ud800", "topic": "x", "cost": "1", "stock": 1}', "lone surrogate"),
            (json.dumps({**BOOK, "topic": "x" * 201}).encode(), "at most 200 characters"),
            (json.dumps({**BOOK, "topic": None}).encode(), "topic must be a string"),
            (json.dumps({**BOOK, "cost": 12.5}).encode(), "cost must be a decimal string"),
            (json.dumps({**BOOK, "cost": "1.999"}).encode(), "cost must be a decimal string"),
            (json.dumps({**BOOK, "cost": "-1.00"}).encode(), "cost must be a decimal string"),
            (json.dumps({**BOOK, "stock": -1}).encode(), "stock must be from 0"),
            (json.dumps({**BOOK, "stock": 10**20}).encode(), "stock must be from 0"),
            (json.dumps({**BOOK, "stock": True}).encode(), "stock must be a JSON integer"),
            (json.dumps({**BOOK, "stock": 2.0}).encode(), "stock must be a JSON integer"),
            (json.dumps({**BOOK, "stock": "2"}).encode(), "stock must be a JSON integer"),
        ]
        for raw, words in cases:
            with self.subTest(raw=raw[:40]):
                self.assertRefused(self.front.add(raw=raw), 400, "bad_request", words)
        self.assertNothingAdded()

    def test_a_body_over_64_kib_is_413(self):
        raw = json.dumps({**BOOK, "title": "x" * MAX_BODY}).encode()
        self.assertRefused(self.front.add(raw=raw), 413, "payload_too_large")
        self.assertNothingAdded()

    def test_other_methods_are_405(self):
        status, headers, body = self.front.call("GET", "/books")
        self.assertEqual((status, body["error"]["code"]), (405, "method_not_allowed"))
        self.assertEqual(headers.getRawHeaders(b"allow"), [b"POST"])

    # Idempotency-Key

    def test_the_same_key_and_book_answer_the_first_answer(self):
        key = {"Idempotency-Key": "import-line-1"}
        first = self.front.add(headers=key)
        self.assertEqual(first[0], 201)
        # The same book, the cost written another way: the same request.
        again = self.front.add({**BOOK, "cost": "12.50"}, headers=key)
        self.assertEqual((again[0], again[2]), (201, first[2]))
        self.assertEqual(again[1].getRawHeaders(b"location"), [b"/lookup/8"])
        self.assertEqual(self.front.list(), list(range(1, 9)))

    def test_the_same_key_for_another_book_is_409(self):
        key = {"Idempotency-Key": "k"}
        self.front.add(headers=key)
        self.assertRefused(self.front.add({**BOOK, "stock": 4}, headers=key), 409, "conflict")
        self.assertEqual(self.front.list(), list(range(1, 9)))

    def test_a_key_of_a_buy_is_not_a_key_of_an_add(self):
        key = {"Idempotency-Key": "shared"}
        self.assertEqual(self.front.call("POST", "/buy/1", headers=key)[0], 200)
        self.assertEqual(self.front.add(headers=key)[0], 201)

    def test_without_a_key_each_post_adds_a_book(self):
        ids = [self.front.add()[2]["item"]["id"] for _ in range(3)]
        self.assertEqual(ids, [8, 9, 10])

    def test_a_bad_key_is_a_400(self):
        for key in ["x" * 129, "with space", "é"]:
            self.assertRefused(self.front.add(headers={"Idempotency-Key": key}), 400, "bad_request", "Idempotency-Key")
        self.assertNothingAdded()

    # Search and the cache (invariant 6)

    def test_search_finds_the_book_in_any_case(self):
        self.front.add()
        for spelling in ["École", "école", "ÉCOLE", "E\u0301COLE", "e\u0301cole"]:
            self.assertEqual(self.front.search(spelling), [8], spelling)
        self.assertEqual(self.front.search("ECOLE"), [])

    def test_cached_searches_of_the_topic_and_the_list_show_the_new_book(self):
        cache = self.cluster.cache
        for spelling in ["école", "ÉCOLE"]:
            self.assertEqual(self.front.search(spelling), [])
        self.assertEqual(self.front.list(), list(range(1, 8)))
        self.assertEqual(self.front.list("?after=5&limit=5"), [6, 7])
        self.assertEqual(self.front.search("travel"), [7])
        hits = cache.counters.hits
        self.assertEqual(self.front.search("école"), [])
        self.assertEqual(cache.counters.hits, hits + 1, "the empty search was not cached")

        self.assertEqual(self.front.add()[0], 201)
        self.assertEqual(self.front.search("école"), [8])
        self.assertEqual(self.front.search("ÉCOLE"), [8])
        self.assertEqual(self.front.list(), list(range(1, 9)))
        self.assertEqual(self.front.list("?after=5&limit=5"), [6, 7, 8])
        self.assertIn("search:travel", cache._entries, "a search of another topic was dropped")

    def test_a_failed_add_still_drops_the_searches_of_its_topic(self):
        """Whatever the outcome (here a conflict), the topic's searches go."""
        self.front.add(headers={"Idempotency-Key": "k"})
        self.front.search("école")
        self.assertIn("search:école", self.cluster.cache._entries)
        self.front.add({**BOOK, "stock": 9}, headers={"Idempotency-Key": "k"})
        self.assertNotIn("search:école", self.cluster.cache._entries)


class TwoFrontEndsTests(SynchronousTestCase):
    """
    A second front end with its own cache, which hears the catalog primary
    the way a real one does: the primary's C{INVALIDATE} lines go through a
    L{MonitorProtocol<pygmy.replication.heartbeat.MonitorProtocol>} to its
    monitor and cache.
    """

    def setUp(self):
        directory = Path(tempfile.mkdtemp(prefix="pygmy-test-"))
        self.addCleanup(shutil.rmtree, directory)
        self.cluster = cluster = InMemoryCluster(directory)
        self.addCleanup(cluster.close)
        self.first = Front(self, cluster.front, cluster.secret)
        reactor = cluster.reactor
        self.monitor = Monitor(cluster.config, reactor, {})
        self.cache = ReplyCache(100)
        self.monitor.invalidated = self.cache.invalidate
        app = FrontendApp(
            cluster.config,
            {"catalog": cluster.frontend.catalog, "order": cluster.frontend.orders},
            self.monitor,
            self.cache,
        )
        self.second = Front(self, StubTreq(app.resource()), cluster.secret)
        protocol = MonitorFactory(self.monitor, cluster.secret, reactor, 1.0).buildProtocol(None)
        protocol.makeConnection(StringTransport())
        protocol.dataReceived(f"HELLO catalog A {proof(cluster.secret, 'catalog', 'A', protocol.nonce)}\n".encode())
        self.protocol = protocol
        node = cluster.catalog_node
        node.heartbeat_connected(LineTap(protocol))
        node.observe_writes(InvalidationPush(node, timeout=1.0))

    def test_an_add_through_one_front_end_shows_in_the_other(self):
        self.assertEqual(self.second.search("ÉCOLE"), [])
        self.assertEqual(self.second.list("?after=7"), [])
        self.assertEqual(len(self.cache), 2)
        self.assertEqual(self.first.add()[0], 201)
        self.assertFalse(self.protocol.transport.disconnecting)
        self.assertEqual(len(self.cache), 0)
        self.assertEqual(self.second.search("ÉCOLE"), [8])
        self.assertEqual(self.second.list("?after=7"), [8])

    def test_an_add_by_the_catalog_itself_shows_in_both(self):
        for front in (self.first, self.second):
            self.assertEqual(front.search("école"), [])
            self.assertEqual(front.search("travel"), [7])
        catalog = Catalog(self.cluster.catalog_store, self.cluster.catalog_node)
        write = result(catalog.add({**BOOK, "cost": "12.50"}, "by-hand"))
        self.assertEqual(write.row["id"], 8)
        self.assertEqual(self.second.search("école"), [8])
        self.assertIn("search:travel", self.cache._entries)
        # The first front end has no heartbeat here: without the line its
        # cache would still hold the empty search (the test has teeth).
        self.assertEqual(self.first.search("école"), [])

    def test_a_buy_drops_the_book_in_the_other_front_end(self):
        self.assertEqual(self.second.call("GET", "/lookup/1")[2]["stock"], SEED[0][4])
        self.assertEqual(self.first.call("POST", "/buy/1")[0], 200)
        self.assertEqual(self.second.call("GET", "/lookup/1")[2]["stock"], SEED[0][4] - 1)


class LineTap:
    """
    The catalog node's heartbeat connection, read at once by a front end's
    protocol, whose INVALIDATED answers come back at once.
    """

    invalidations = None

    def __init__(self, protocol):
        self.protocol = protocol

    def send(self, line: bytes) -> None:
        transport = self.protocol.transport
        transport.clear()
        self.protocol.dataReceived(line + b"\n")
        for answer in transport.value().splitlines():
            if answer.startswith(b"INVALIDATED ") and self.invalidations is not None:
                self.invalidations.acknowledged(int(answer.split()[1]))

    def beat(self) -> None:
        pass
