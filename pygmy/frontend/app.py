"""
The public HTTP API of Pygmy (DESIGN §3): search, lookup, list, buy, orders,
update, new books, status and health, as JSON.

Every route validates what it gets (L{pygmy.net.validate}), sends the work to
a replica through L{ServiceRoutes<pygmy.net.routing.ServiceRoutes>}, and leaves every
error to the handlers of L{pygmy.net.web.install_error_handlers}.

L{CachedReads} stands in front of the Klein app and answers cache hits
of C{GET /lookup/<id>} and C{GET /list} (each page of it) before any
routing: for a hit, Klein's routing and rendering cost more than everything
else together.
"""

from __future__ import annotations

import re

from klein import Klein
from twisted.internet.defer import Deferred
from twisted.web.resource import Resource

from pygmy.clock import ordered_id
from pygmy.config import Config
from pygmy.errors import BadRequest, NotFound
from pygmy.frontend.cache import ReplyCache
from pygmy.frontend.pages import install_pages
from pygmy.net.routing import ServiceRoutes
from pygmy.net.validate import (
    MAX_KEY,
    MAX_PAGE,
    parse_id,
    parse_new_book,
    parse_page,
    parse_request_id,
    parse_topic,
    parse_update,
)
from pygmy.net.web import (
    install_error_handlers,
    json_body,
    json_bytes,
    json_response,
    read_json_body,
    require_secret,
)
from pygmy.process.metrics import CONTENT_TYPE
from pygmy.replication.heartbeat import topic_token

#: The cache key of C{GET /list}, the first page of the default size.
LIST_KEY = "list"

_LOOKUP_PATH = re.compile(rb"/lookup/([1-9][0-9]{0,18})")


def lookup_key(item_id: int) -> str:
    """The cache key of C{GET /lookup/<item_id>}."""
    return f"lookup:{item_id}"


def list_key(after: int, limit: int) -> str:
    """The cache key of the page of C{GET /list} after id C{after}, C{limit} long."""
    if after == 0 and limit == MAX_PAGE:
        return LIST_KEY
    return f"list:{after}:{limit}"


def request_id_for(request, prefix: str) -> str:
    """
    The request id of a write: from the client's C{Idempotency-Key} if it
    sent one, else a new one (so our own retries stay idempotent), which
    sorts by time (L{ordered_id}: cheaper to insert into the replicas'
    indexes than a random one).
    """
    key = request.getHeader(b"idempotency-key")
    if key is None:
        return f"{prefix}:{ordered_id()}"
    return f"{prefix}:key:" + parse_request_id(key, "Idempotency-Key", MAX_KEY)


class FrontendApp:
    """
    The front end's Klein app.

    @param routes: the catalog's and the order service's L{ServiceRoutes}.
    @param monitor: the heartbeat monitor, for C{/status}.
    @param cache: the reply cache of lookups, searches and the list.
    @param metrics: the L{pygmy.process.metrics.HTTPMetrics} served at C{/metrics}.
    """

    app = Klein()

    def __init__(self, config: Config, routes: dict[str, ServiceRoutes], monitor, cache: ReplyCache, metrics=None):
        self.config = config
        self.monitor = monitor
        self.cache = cache
        self.metrics = metrics
        self.catalog = routes["catalog"]
        self.orders = routes["order"]

    def resource(self) -> Resource:
        """The HTTP resource to serve: the app behind L{CachedReads}."""
        return CachedReads(self.cache, self.app.resource())

    @app.route("/search", methods=["GET"])
    @app.route("/search/", methods=["GET"])
    def search_query(self, request):
        """C{GET /search?topic=T}."""
        topics = request.args.get(b"topic")
        if not topics:
            raise BadRequest("Give a topic: /search/<topic> or /search?topic=<topic>.")
        try:
            topic = topics[0].decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("topic must be UTF-8.") from None
        return self._search(request, topic)

    @app.route("/search/<path:topic>", methods=["GET"])
    def search(self, request, topic):
        """C{GET /search/<topic>}: the books of a topic, any case."""
        return self._search(request, topic)

    def _search(self, request, topic):
        topic = parse_topic(topic)

        async def fetch():
            reply, member = await self.catalog.read_from(lambda r: r.get("/books", {"topic": topic}))
            items = reply["items"]
            # Tagged with its topic too: a new book of it is in no list of ids yet.
            tags = [item["id"] for item in items] + [topic_token(topic)]
            return {"topic": topic, "items": items}, tags, member

        return self._cached(request, "search:" + topic, fetch)

    @app.route("/lookup/<item_id>", methods=["GET"])
    def lookup(self, request, item_id):
        """C{GET /lookup/<id>}: one book with cost and stock."""
        item_id = parse_id(item_id)

        async def fetch():
            reply, member = await self.catalog.read_from(lambda r: r.get(f"/books/{item_id}"))
            return reply, (item_id,), member

        return self._cached(request, lookup_key(item_id), fetch)

    @app.route("/list", methods=["GET"])
    def list(self, request):
        """C{GET /list?after=A&limit=N}: a page of the books, by id."""
        after, limit = parse_page(request.args)

        async def fetch():
            params = {"after": str(after), "limit": str(limit)}
            reply, member = await self.catalog.read_from(lambda r: r.get("/books", params))
            # A page shows every book of its range, those added later too:
            # any write drops it (items None).
            return {"items": reply["items"], "next": reply.get("next")}, None, member

        return self._cached(request, list_key(after, limit), fetch)

    def _cached(self, request, key: str, fetch):
        """
        The reply for C{key} from the cache, or else from C{fetch()}
        (which returns the body, its cache tags -- the ids of the books it
        shows, a search's topic token -- and whether a member of the current
        view answered), stored only if one did and no write invalidated one
        of those tags meanwhile.
        C{Cache-Control: no-cache} bypasses the cache both ways.
        """
        use_cache = not _no_cache(request)
        if use_cache:
            body = self.cache.get(key)
            if body is not None:
                return json_body(request, body)
        ticket = self.cache.ticket()

        async def fill():
            reply, items, member = await fetch()
            body = json_bytes(reply)
            if use_cache and member:
                self.cache.store(key, body, items, ticket)
            return json_body(request, body)

        return Deferred.fromCoroutine(fill())

    @app.route("/buy/<item_id>", methods=["POST"])
    async def buy(self, request, item_id):
        """C{POST /buy/<id>}: buy one copy; idempotent per C{Idempotency-Key}."""
        item_id = parse_id(item_id)
        body = {"item_id": item_id, "request_id": request_id_for(request, "buy")}
        try:
            reply = await self.orders.write(lambda r: r.batched("/orders/buy", body))
        finally:
            # Whatever the outcome, the stock may have changed.
            self.cache.invalidate(item_id)
        return json_response(request, {"order": reply["order"]})

    @app.route("/orders/<order_id>", methods=["GET"])
    async def order(self, request, order_id):
        """C{GET /orders/<order_id>}: one order."""
        order_id = parse_id(order_id, "order id")
        reply = await self.orders.read(lambda r: r.get(f"/orders/{order_id}"))
        return json_response(request, {"order": reply["order"]})

    @app.route("/update/<item_id>", methods=["POST"])
    async def update(self, request, item_id):
        """C{POST /update/<id>}: set the cost and/or change the stock."""
        require_secret(request, self.config.cluster.secret)
        item_id = parse_id(item_id)
        body = parse_update(read_json_body(request))
        body["request_id"] = request_id_for(request, "update")
        try:
            reply = await self.catalog.write(lambda r: r.post(f"/books/{item_id}/update", body))
        finally:
            self.cache.invalidate(item_id)
        return json_response(request, {"item": reply["item"]})

    @app.route("/books", methods=["POST"])
    async def add(self, request):
        """
        C{POST /books}: a new book under the next id, 201; idempotent per
        C{Idempotency-Key}.  Every search of its topic and every page of the
        list are dropped from the cache before the answer (the catalog
        primary has pushed the same before it acknowledged).
        """
        require_secret(request, self.config.cluster.secret)
        book = parse_new_book(read_json_body(request))
        body = {"request_id": request_id_for(request, "books"), **book}
        try:
            reply = await self.catalog.write(lambda r: r.batched("/books/add", body))
        finally:
            self.cache.invalidate(topic_token(book["topic"]))
        item = reply["item"]
        self.cache.invalidate(item["id"])
        request.setHeader(b"location", f"/lookup/{item['id']}".encode("ascii"))
        return json_response(request, {"item": item}, code=201)

    @app.route("/status", methods=["GET"])
    def status(self, request):
        """C{GET /status}: the cluster as the front end sees it."""
        return json_response(
            request,
            {
                "services": self.monitor.status(),
                "cache": self.cache.status(),
                "balancer": self.config.frontend.balancer,
                "frontend": self.monitor.frontend_status(),
            },
        )

    @app.route("/metrics", methods=["GET"])
    def metrics_text(self, request):
        """C{GET /metrics}: Prometheus text format."""
        if self.metrics is None:
            raise NotFound("This front end keeps no metrics.")
        request.setHeader(b"content-type", CONTENT_TYPE)
        return self.metrics.render()

    @app.route("/health", methods=["GET"])
    def health(self, request):
        """C{GET /health}: the front end is up."""
        return json_response(request, {"status": "ok"})

    install_pages(app)
    install_error_handlers(app)


def _no_cache(request) -> bool:
    """Whether the request says C{Cache-Control: no-cache} (any case)."""
    header = request.getHeader(b"cache-control")
    if not header:
        return False
    return any(d.strip().lower() == b"no-cache" for d in header.split(b","))


class CachedReads(Resource):
    """
    The front end's HTTP resource: answers a cache hit of C{GET
    /lookup/<id>} or of a page of C{GET /list} at once and hands every other request
    to the Klein app.

    Only hits are answered here, and only for keys the app itself stores, so
    the app's rules hold: a miss, C{Cache-Control: no-cache}, a malformed
    id or another method all go to the app, which validates, fetches, fills
    and answers errors as before.
    """

    isLeaf = True

    def __init__(self, cache: ReplyCache, app: Resource):
        super().__init__()
        self._cache = cache
        self._app = app

    def render(self, request):
        """Answer a cache hit at once; hand anything else to the Klein app."""
        if request.method == b"GET":
            key = _hit_key(request.path, request.args)
            if key is not None and not _no_cache(request):
                body = self._cache.get(key, count_miss=False)
                if body is not None:
                    return json_body(request, body)
        return self._app.render(request)


def _hit_key(path: bytes, args: dict) -> str | None:
    """
    The cache key a path and query may be answered from, if any: none for
    a query the app would refuse, so that it answers the 400.
    """
    if path == b"/list":
        try:
            return list_key(*parse_page(args))
        except BadRequest:
            return None
    match = _LOOKUP_PATH.fullmatch(path)
    return None if match is None else lookup_key(int(match.group(1)))
