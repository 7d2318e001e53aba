"""
What every replica serves, whatever its service, and how it is assembled.

L{ReplicaApp} answers C{GET /status} to anyone.  Every other request goes
through one door, L{Door} (the site's resource, L{ReplicaApp.resource}),
which checks the shared secret and then hands the request to
L{InternalRoutes} (C{/metrics}, C{/admin/...}, C{/replication/...}) or to the
service's own Klein app (books or orders) for every other path.  No
internal route checks the secret itself, so none can forget it.  The door
is a plain resource that picks the app by the path's first segment: each
request is routed by one Klein app, not by one app leading to the next
(each extra level of Klein matching costs some 40 µs of a request):

==================================  ==========================================
C{GET  /admin/dump}                C{{"applied_seq", "rows": [...]}} and
                                    every other table under its name,
                                    written a page at a time (chunked)
C{GET  /admin/verify}              C{{"checksum", "recounted", "match"}}
C{GET  /metrics}                   Prometheus text
C{GET  /replication/log}           C{?after=S&view=V&limit=N} ->
                                    C{{"entries": [...] | null, "head": n}}
                                    (C{null}: the caller needs a snapshot)
C{GET  /replication/snapshot}      the snapshot stream: JSON records, one
                                    per line (C{snapshot}, C{page}...,
                                    C{requests}..., C{log}, C{entries}...,
                                    C{end}), a page at a time at the
                                    reader's pace; see
                                    L{pygmy.replication.snapshot}
C{POST /replication/apply}         C{{"view", "entries", "resync"?}} ->
                                    C{{"applied_seq", "last_view"}}
C{POST /replication/join}          C{{"replica", "after", "view"}} ->
                                    C{{"joined": bool}}
==================================  ==========================================

L{replica_service} composes the twistd service of one replica: its
store, an HTTP client, the node with its heartbeat connections (one to every
front end: L{pygmy.replication.frontends}), and the HTTP listener.
"""

from __future__ import annotations

from functools import partial

from klein import Klein
from twisted.application.service import MultiService
from twisted.web.resource import Resource

from pygmy.config import SERVICES, Config, ReplicaConfig
from pygmy.errors import BadRequest, NotFound, Unauthorized
from pygmy.net.listener import Listener
from pygmy.net.remote import HTTPClientService
from pygmy.net.routing import routes_for
from pygmy.net.stream import stream_reply
from pygmy.net.validate import parse_request_id
from pygmy.net.web import (
    error_response,
    install_error_handlers,
    json_response,
    make_site,
    read_json_body,
    require_secret,
)
from pygmy.process.metrics import CONTENT_TYPE, ReplicaCollector, registry_with
from pygmy.replication import snapshot as paged
from pygmy.replication.frontends import connect_to_frontends
from pygmy.replication.node import Node, NodeService

MAX_LOG_BATCH = 10_000

#: Seconds the log after a complete snapshot stays pinned on the primary,
#: for the rebuilt replica's catch-up from there (L{pygmy.replication.snapshot.copy}).
SNAPSHOT_LINGER = 30.0

#: The largest request body a replica takes: a replication batch
#: (L{pygmy.replication.primary.BATCH} entries of at most ~1 KB each) must fit.
#: The public API's limit (64 KiB) would refuse a batch to a backup that is
#: a few hundred entries behind, again and again.
MAX_REPLICA_BODY = 1024 * 1024


def _count(request, name: str, default: int | None = None) -> int:
    """A non-negative integer query parameter."""
    values = request.args.get(name.encode())
    if not values:
        if default is None:
            raise BadRequest(f"{name} is required.")
        return default
    text = values[0].decode("ascii", "replace")
    if not text.isdigit() or len(text) > 18:
        raise BadRequest(f"{name} must be a non-negative integer.")
    return int(text)


def _integer(body: dict, name: str) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadRequest(f"{name} must be a non-negative integer.")
    return value


class ReplicaApp:
    """
    The HTTP app of one replica: C{GET /status} for anyone, and one door,
    L{Door} (L{resource}), to every other route.

    @param service_app: the service's own Klein app instance (it provides
        C{app}); its routes are served behind the door.
    @ivar internal: the L{InternalRoutes} behind the door.
    """

    #: Its own routes (C{GET /status}); every other one is behind L{Door}.
    public = Klein()

    def __init__(self, replica: ReplicaConfig, node: Node, secret: str, service_app, metrics=None):
        self.replica = replica
        self.node = node
        self.store = node.store
        self._secret = secret
        self.internal = InternalRoutes(node, service_app, metrics)
        self._inside = self.internal.app.resource()

    @public.route("/status", methods=["GET"])
    async def status(self, request):
        """Who this replica is, its role and view, and how far it has applied."""
        applied_seq, _, checksum = await self.store.status()
        return json_response(
            request,
            {
                "service": self.replica.service,
                "replica": self.replica.name,
                "role": self.node.role,
                "view": self.node.view,
                "applied_seq": applied_seq,
                "checksum": checksum,
            },
        )

    def resource(self) -> Door:
        """The replica's site resource: the door, in front of every route."""
        return Door(self.public.resource(), self._inside, self.internal.service, self._secret)

    install_error_handlers(public)


class Door(Resource):
    """
    The one door of a replica: C{GET /status} (and its C{HEAD}) goes to
    the public app; every other request, whatever its path or method, is
    refused with 401 unless it carries the shared secret, then goes to the
    internal routes if its first segment names one of theirs, else to the
    service's own app (which answers 404 or 405 for what it does not serve).

    @param public: the resource of L{ReplicaApp}'s own routes.
    @param internal: the resource of L{InternalRoutes}.
    @param service: the resource of the service's app.
    """

    isLeaf = True

    #: First path segments of L{InternalRoutes}.
    INTERNAL = frozenset({b"admin", b"metrics", b"replication"})

    def __init__(self, public, internal, service, secret: str):
        super().__init__()
        self._public, self._internal, self._service = public, internal, service
        self._secret = secret

    def render(self, request):
        """Pick the app for C{request}, after the secret check, and let it answer."""
        path = request.postpath
        if path == [b"status"] and request.method in (b"GET", b"HEAD"):
            return self._public.render(request)
        try:
            require_secret(request, self._secret)
        except Unauthorized as refused:
            return error_response(request, refused)
        inner = self._internal if path and path[0] in self.INTERNAL else self._service
        return inner.render(request)


class InternalRoutes:
    """
    The routes behind the shared secret (only L{Door} leads here):
    metrics, the dump and verification, replication.  L{Door} sends every
    other path to the service's own app (L{service}).

    @param service_app: the service's own Klein app instance (it provides
        C{app}).
    @param metrics: the replica's metrics registry, or L{None}.
    """

    app = Klein()

    def __init__(self, node: Node, service_app, metrics=None):
        self.node = node
        self.store = node.store
        self.metrics = metrics
        #: The resource of the service's own app, which L{Door} leads to
        #: for every path not under one of these routes.
        self.service = service_app.app.resource()

    @app.route("/metrics", methods=["GET"])
    def metrics_text(self, request):
        """Prometheus text format."""
        if self.metrics is None:
            raise NotFound("This replica keeps no metrics.")
        request.setHeader(b"content-type", CONTENT_TYPE)
        return self.metrics.render()

    @app.route("/admin/dump", methods=["GET"])
    async def dump(self, request):
        """
        The whole replicated table, by id, with the applied sequence number,
        written a page at a time (L{pygmy.replication.snapshot.dump}).
        """
        await stream_reply(request, lambda send: paged.dump(self.store, send), b"application/json")

    @app.route("/admin/verify", methods=["GET"])
    async def verify(self, request):
        """The kept checksum beside one recounted from every row, and whether they match."""
        return json_response(request, await self.store.verify())

    @app.route("/replication/log", methods=["GET"])
    async def log(self, request):
        """Log entries after C{after}, if the caller's log matches ours."""
        after, view = _count(request, "after"), _count(request, "view")
        limit = min(_count(request, "limit", 1000), MAX_LOG_BATCH)
        entries, head = await self.store.entries_after(after, view, limit)
        return json_response(request, {"entries": entries, "head": head})

    @app.route("/replication/snapshot", methods=["GET"])
    async def snapshot(self, request):
        """
        Every table, the requests, and the log since the copy began, a page
        at a time (L{pygmy.replication.snapshot.copy}).
        """
        copy = partial(paged.copy, self.store, clock=self.node.clock, linger=SNAPSHOT_LINGER)
        await stream_reply(request, copy, paged.NDJSON)

    @app.route("/replication/apply", methods=["POST"])
    async def apply(self, request):
        """Entries from the primary, applied in order."""
        body = read_json_body(request)
        entries = body.get("entries")
        if not isinstance(entries, list):
            raise BadRequest("entries must be a list.")
        applied, last_view = await self.node.apply(_integer(body, "view"), entries, resync=body.get("resync") is True)
        return json_response(request, {"applied_seq": applied, "last_view": last_view})

    @app.route("/replication/join", methods=["POST"])
    async def join(self, request):
        """A recovering replica that has caught up asks to join."""
        body = read_json_body(request)
        name = parse_request_id(body.get("replica"), "replica")
        joined = await self.node.join(name, _integer(body, "after"), _integer(body, "view"))
        return json_response(request, {"joined": joined})

    install_error_handlers(app)


class ReplicaParts:
    """
    The pieces of one replica that its service's own app needs.

    @ivar node: writes go through C{node.write}.
    @ivar routes: the L{ServiceRoutes} of every service.
    """

    def __init__(self, config: Config, replica: ReplicaConfig, store, reactor):
        cluster = config.cluster
        self.http = HTTPClientService(reactor)
        self.routes = {service: routes_for(config, service, self.http) for service in SERVICES}
        self.node = Node(
            replica,
            store,
            self.routes,
            reactor,
            interval=cluster.heartbeat_interval,
            log_keep=cluster.log_keep,
            idempotency_keep=cluster.idempotency_keep,
        )
        self.store = store


def replica_service(config: Config, replica: ReplicaConfig, parts: ReplicaParts, service_app, reactor):
    """
    The twistd service of one replica.

    Children start in order (store, HTTP client, node, listener) and stop in
    reverse, so the port closes before the store.
    """
    cluster = config.cluster
    top = MultiService()
    top.setName(replica.label)
    parts.store.setServiceParent(top)
    parts.http.setServiceParent(top)

    def connect():
        return connect_to_frontends(config, parts.node, reactor)

    NodeService(parts.node, connect, compact_every=cluster.compact_interval).setServiceParent(top)
    _, metrics = registry_with(ReplicaCollector(parts.node))
    app = ReplicaApp(replica, parts.node, cluster.secret, service_app, metrics)
    site = make_site(app.resource(), cluster.access_log, metrics, max_body=MAX_REPLICA_BODY)
    Listener(reactor, replica.endpoint, site, f"{replica.label} HTTP", replica.where).setServiceParent(top)
    return top
