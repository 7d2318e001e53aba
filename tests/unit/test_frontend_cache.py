"""
The front end with its reply cache (DESIGN §7, invariant 6), through
C{StubTreq} on L{FrontendApp}'s resource.

Most tests use a fake catalog whose answers the test holds and fires by
hand, to stage the race between a fill and a write; the last ones use the
in-memory cluster of real apps for buys and updates.
"""

import json
import shutil
import tempfile
from pathlib import Path

from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pygmy import config as configuration
from pygmy.coordination.store import StoredView
from pygmy.frontend.app import FrontendApp
from pygmy.frontend.cache import ReplyCache
from pygmy.frontend.monitor import Monitor
from pygmy.net.routing import ServiceRoutes
from tests.fakes import InMemoryCluster

URL = "http://front.invalid"
SECRET = "s3cret"
REPO = Path(__file__).resolve().parents[2]


class FakeCatalog:
    """
    A catalog replica with the interface of L{pygmy.net.remote.Remote}.  Reads
    answer at once from C{books}, or, while C{hold} is set, wait until
    the test calls L{release}.
    """

    def __init__(self):
        self.name, self.replica = "catalog:A", "A"
        self.books = {
            1: {"id": 1, "title": "One", "topic": "t", "cost": "1.00", "stock": 5},
            2: {"id": 2, "title": "Two", "topic": "t", "cost": "2.00", "stock": 7},
        }
        self.hold = False
        self.gets = []
        self.held = []

    async def get(self, path, params=None):
        self.gets.append(path if not params else f"{path}?after={params['after']}&limit={params['limit']}")
        if path == "/books":
            after, limit = int(params["after"]), int(params["limit"])
            following = [dict(book) for id, book in sorted(self.books.items()) if id > after]
            answer = {
                "items": following[:limit],
                "next": following[limit - 1]["id"] if len(following) > limit else None,
            }
        else:
            answer = dict(self.books[int(path.rsplit("/", 1)[1])])
        if not self.hold:
            return answer
        waiting = Deferred()
        self.held.append((waiting, answer))
        return await waiting

    def release(self):
        """Answer every held read with what it read when it arrived."""
        held, self.held = self.held, []
        for waiting, answer in held:
            waiting.callback(answer)

    async def post(self, path, body):
        item = self.books[int(path.split("/")[2])]
        item["stock"] += body.get("stock_delta", 0)
        return {"item": dict(item)}


class FakeCatalogTests(SynchronousTestCase):
    """The front end over a catalog whose answers the test controls."""

    def setUp(self):
        config = configuration.load(REPO / "config.ini", environ={"PYGMY_SECRET": SECRET})
        clock = Clock()
        self.catalog = FakeCatalog()
        routes = {
            "catalog": ServiceRoutes("catalog", [self.catalog], clock, deadline=1.0),
            "order": ServiceRoutes("order", [FakeCatalog()], clock, deadline=1.0),
        }
        for service in routes.values():
            service.update(1, "A", [])
        self.monitor = Monitor(config, clock, {})
        self.cache = ReplyCache(10)
        self.monitor.invalidated = self.cache.invalidate  # as pygmy.frontend.service wires it
        self.front = StubTreq(FrontendApp(config, routes, self.monitor, self.cache).resource())

    def start(self, method, path, body=None, headers=None):
        """Send a request; return the Deferred of its response."""
        data = None if body is None else json.dumps(body).encode()
        return self.front.request(method, URL + path, data=data, headers=headers or {})

    def finish(self, pending):
        """Let a started request complete; return (status, decoded body)."""
        self.front.flush()
        response = self.successResultOf(pending)
        return response.code, json.loads(self.successResultOf(response.content()))

    def call(self, method, path, body=None, headers=None):
        """One request that completes at once."""
        return self.finish(self.start(method, path, body, headers))

    # (a) hits and Cache-Control: no-cache

    def test_second_lookup_is_a_hit(self):
        first = self.call("GET", "/lookup/1")
        second = self.call("GET", "/lookup/1")
        self.assertEqual(first, (200, self.catalog.books[1]))
        self.assertEqual(second, first)
        self.assertEqual(self.catalog.gets, ["/books/1"])
        self.assertEqual((self.cache.counters.hits, self.cache.counters.misses), (1, 1))

    def test_no_cache_always_asks_and_stores_nothing(self):
        no_cache = {"Cache-Control": "no-cache"}
        for _ in range(2):
            self.assertEqual(self.call("GET", "/lookup/1", headers=no_cache), (200, self.catalog.books[1]))
        self.assertEqual(len(self.cache), 0)
        self.call("GET", "/lookup/1")
        self.call("GET", "/lookup/1", headers=no_cache)
        self.assertEqual(self.catalog.gets, ["/books/1"] * 4)
        self.assertEqual((self.cache.counters.hits, self.cache.counters.misses), (0, 1))

    def test_no_cache_directive_is_case_insensitive(self):
        """RFC 9111 §5.2: cache directives are compared case-insensitively."""
        self.call("GET", "/lookup/1")
        for spelling in ["No-Cache", "NO-CACHE", "max-age=0, No-Cache"]:
            self.call("GET", "/lookup/1", headers={"Cache-Control": spelling})
        self.assertEqual(self.catalog.gets, ["/books/1"] * 4)
        self.assertEqual(self.cache.counters.hits, 0)

    # (b) a fill racing with a write

    def assertStaleFillRefused(self, path, invalidate):
        """
        A read of C{path} held by the catalog, C{invalidate()} while it
        waits, then the old answer: the client gets it, the cache keeps
        nothing, and the next read asks the catalog again.
        """
        self.catalog.hold = True
        pending = self.start("GET", path)
        self.assertNoResult(pending)
        old_stock = self.catalog.books[1]["stock"]
        invalidate()
        self.catalog.release()
        status, body = self.finish(pending)
        self.assertEqual(status, 200)
        self.assertIn(old_stock, [book["stock"] for book in body.get("items", [body])])
        self.assertEqual(len(self.cache), 0)
        self.assertEqual(self.cache.counters.refused_fills, 1)

        self.catalog.hold = False
        asked = len(self.catalog.gets)
        status, body = self.call("GET", path)
        self.assertEqual(len(self.catalog.gets), asked + 1)
        self.assertIn(self.catalog.books[1]["stock"], [book["stock"] for book in body.get("items", [body])])
        self.assertNotEqual(self.catalog.books[1]["stock"], old_stock)

    def heartbeat_write(self):
        """A write to book 1 made elsewhere, pushed as INVALIDATE 1 <seq>."""
        self.catalog.books[1]["stock"] -= 1
        self.monitor.invalidate("A", 1, 42)

    def test_invalidate_during_lookup_fill(self):
        self.assertStaleFillRefused("/lookup/1", self.heartbeat_write)

    def test_invalidate_during_list_fill(self):
        self.assertStaleFillRefused("/list", self.heartbeat_write)

    def test_invalidate_during_a_page_fill(self):
        self.assertStaleFillRefused("/list?after=0&limit=1", self.heartbeat_write)

    # (a') pages of the list

    def test_each_page_is_its_own_entry(self):
        first, second = self.call("GET", "/list?limit=1"), self.call("GET", "/list?after=1&limit=1")
        self.assertEqual(first, (200, {"items": [self.catalog.books[1]], "next": 1}))
        self.assertEqual(second, (200, {"items": [self.catalog.books[2]], "next": None}))
        self.assertEqual(self.call("GET", "/list?limit=1"), first)
        self.assertEqual(self.call("GET", "/list?after=1&limit=1&other=x"), second)
        self.call("GET", "/list")
        self.call("GET", "/list?after=0&limit=1000")
        self.assertEqual(
            self.catalog.gets,
            ["/books?after=0&limit=1", "/books?after=1&limit=1", "/books?after=0&limit=1000"],
        )
        self.assertEqual((self.cache.counters.hits, self.cache.counters.misses), (3, 3))

    def test_any_write_drops_every_page(self):
        """Book 2 changes: the page showing only book 1 goes too (a page shows all of its range)."""
        for path in ("/list?limit=1", "/list?after=1&limit=1", "/list"):
            self.call("GET", path)
        self.assertEqual(len(self.cache), 3)
        self.monitor.invalidate("A", 2, 42)
        self.assertEqual(len(self.cache), 0)
        self.call("GET", "/list?limit=1")
        self.assertEqual(self.catalog.gets[-1], "/books?after=0&limit=1")

    def test_update_through_the_front_end_during_lookup_fill(self):
        def update():
            reply = self.call("POST", "/update/1", {"stock_delta": 3}, {"Authorization": f"Bearer {SECRET}"})
            self.assertEqual(reply, (200, {"item": self.catalog.books[1]}))

        self.assertStaleFillRefused("/lookup/1", update)

    def test_unrelated_invalidation_does_not_refuse_a_lookup(self):
        self.catalog.hold = True
        pending = self.start("GET", "/lookup/1")
        self.monitor.invalidate("A", 2, 42)
        self.catalog.release()
        self.assertEqual(self.finish(pending), (200, self.catalog.books[1]))
        self.catalog.hold = False
        self.call("GET", "/lookup/1")
        self.assertEqual(self.catalog.gets, ["/books/1"])

    def test_invalidation_drops_a_cached_lookup(self):
        self.call("GET", "/lookup/1")
        self.call("GET", "/lookup/2")
        self.heartbeat_write()
        self.assertEqual(self.call("GET", "/lookup/1")[1], self.catalog.books[1])
        self.call("GET", "/lookup/2")
        self.assertEqual(self.catalog.gets, ["/books/1", "/books/2", "/books/1"])

    # (d) /status

    def test_status_shows_the_cache(self):
        self.call("GET", "/lookup/1")
        self.call("GET", "/lookup/1")
        self.heartbeat_write()
        status, body = self.call("GET", "/status")
        self.assertEqual(status, 200)
        cache = body["cache"]
        self.assertEqual(
            {key: cache[key] for key in ["size", "capacity", "hits", "misses", "invalidations", "evictions"]},
            {"size": 0, "capacity": 10, "hits": 1, "misses": 1, "invalidations": 1, "evictions": 0},
        )


class ClusterTests(SynchronousTestCase):
    """(c) Buys and updates through the front end over the real apps."""

    def setUp(self):
        directory = Path(tempfile.mkdtemp(prefix="pygmy-test-"))
        self.addCleanup(shutil.rmtree, directory)
        self.cluster = InMemoryCluster(directory)
        self.addCleanup(self.cluster.close)
        self.cache = self.cluster.cache

    def call(self, method, path, body=None, headers=None):
        data = None if body is None else json.dumps(body).encode()
        response = self.successResultOf(
            self.cluster.front.request(method, URL + path, data=data, headers=headers or {})
        )
        return response.code, json.loads(self.successResultOf(response.content()))

    def cached_lookup(self, item):
        """Look C{item} up twice, the second time from the cache."""
        _, body = self.call("GET", f"/lookup/{item}")
        hits = self.cache.counters.hits
        self.assertEqual(self.call("GET", f"/lookup/{item}"), (200, body))
        self.assertEqual(self.cache.counters.hits, hits + 1)
        return body

    def assertNextLookupAsks(self, item):
        """The next lookup of C{item} is a miss; return its body."""
        misses = self.cache.counters.misses
        status, body = self.call("GET", f"/lookup/{item}")
        self.assertEqual((status, self.cache.counters.misses), (200, misses + 1))
        return body

    def test_buy_drops_the_cached_lookup(self):
        before = self.cached_lookup(2)
        self.assertEqual(self.call("POST", "/buy/2")[0], 200)
        self.assertEqual(self.assertNextLookupAsks(2)["stock"], before["stock"] - 1)

    def test_update_drops_the_cached_lookup(self):
        before = self.cached_lookup(5)
        auth = {"Authorization": f"Bearer {self.cluster.secret}"}
        status, reply = self.call("POST", "/update/5", {"cost": "99.99", "stock_delta": 2}, auth)
        self.assertEqual(status, 200)
        after = self.assertNextLookupAsks(5)
        self.assertEqual(after, reply["item"])
        self.assertEqual((after["cost"], after["stock"]), ("99.99", before["stock"] + 2))

    def test_failed_buy_still_invalidates(self):
        auth = {"Authorization": f"Bearer {self.cluster.secret}"}
        stock = self.cached_lookup(6)["stock"]
        self.call("POST", "/update/6", {"stock_delta": -stock}, auth)
        self.cached_lookup(6)
        self.assertEqual(self.call("POST", "/buy/6")[0], 409)
        self.assertEqual(self.assertNextLookupAsks(6)["stock"], 0)

    # Only replies from members of the current catalog view are cached.

    def test_a_reply_from_outside_the_view_is_served_but_not_cached(self):
        catalog = self.cluster.frontend.catalog
        catalog.update(2, None, [])
        self.assertEqual(self.call("GET", "/lookup/3")[0], 200)
        self.assertEqual(len(self.cache), 0)
        self.assertNextLookupAsks(3)
        catalog.update(3, "A", [])
        self.cached_lookup(3)

    def test_a_new_catalog_view_empties_the_cache(self):
        self.cached_lookup(4)
        self.cluster.monitor.view_pushed = lambda service: self.cache.clear() if service == "catalog" else None
        self.cluster.monitor._push("order", StoredView(5, "A", (), frozenset({"A"})))
        self.assertEqual(len(self.cache), 1)
        self.cluster.monitor._push("catalog", StoredView(5, "A", (), frozenset({"A"})))
        self.assertEqual(len(self.cache), 0)


class RecordingApp:
    """Stands for the Klein app behind L{CachedReads}: records what reaches it."""

    def __init__(self):
        self.paths = []

    def render(self, request):
        self.paths.append((request.method, request.path))
        return b'{"from": "app"}'


class CachedReadsTests(SynchronousTestCase):
    """Hits are answered before routing; everything else reaches the app."""

    def setUp(self):
        from pygmy.frontend.app import LIST_KEY, CachedReads, list_key, lookup_key

        self.cache = ReplyCache(10)
        self.cache.store(lookup_key(1), b'{"id": 1}', [1], self.cache.ticket())
        self.cache.store(LIST_KEY, b'{"items": []}', None, self.cache.ticket())
        self.cache.store(list_key(5, 2), b'{"items": [6, 7]}', None, self.cache.ticket())
        self.app = RecordingApp()
        self.front = StubTreq(CachedReads(self.cache, self.app))

    def body(self, method, path, headers=None):
        response = self.successResultOf(self.front.request(method, URL + path, headers=headers or {}))
        return self.successResultOf(response.content())

    def test_hits_never_reach_the_app(self):
        self.assertEqual(self.body("GET", "/lookup/1"), b'{"id": 1}')
        self.assertEqual(self.body("GET", "/lookup/1?ignored=1"), b'{"id": 1}')
        self.assertEqual(self.body("GET", "/list"), b'{"items": []}')
        self.assertEqual(self.body("GET", "/list?after=0&limit=1000"), b'{"items": []}')
        self.assertEqual(self.body("GET", "/list?after=5&limit=2"), b'{"items": [6, 7]}')
        self.assertEqual(self.body("GET", "/list?limit=2&after=5&x=1"), b'{"items": [6, 7]}')
        self.assertEqual(self.app.paths, [])
        self.assertEqual((self.cache.counters.hits, self.cache.counters.misses), (6, 0))

    def test_other_pages_and_bad_queries_reach_the_app(self):
        for query in [
            "after=5",
            "after=5&limit=3",
            "limit=2",
            "after=5&limit=2&limit=2",
            "limit=0",
            "after=-1",
            "after=x",
        ]:
            self.assertEqual(self.body("GET", "/list?" + query), b'{"from": "app"}')
        self.assertEqual(len(self.app.paths), 7)
        self.assertEqual((self.cache.counters.hits, self.cache.counters.misses), (0, 0))

    def test_everything_else_reaches_the_app_uncounted(self):
        for method, path, headers in [
            ("GET", "/lookup/2", None),  # a miss: the app fetches and counts it
            ("GET", "/lookup/01", None),
            ("GET", "/lookup/1/", None),
            ("GET", "/lookup/1", {"Cache-Control": "no-cache"}),
            ("POST", "/lookup/1", None),
            ("GET", "/search/t", None),
        ]:
            self.assertEqual(self.body(method, path, headers), b'{"from": "app"}')
        self.assertEqual(len(self.app.paths), 6)
        self.assertEqual((self.cache.counters.hits, self.cache.counters.misses), (0, 0))

    def test_an_invalidated_entry_goes_to_the_app(self):
        self.cache.invalidate(1)
        self.assertEqual(self.body("GET", "/lookup/1"), b'{"from": "app"}')
        self.assertEqual(self.body("GET", "/list"), b'{"from": "app"}')
