"""
Prometheus metrics of every Pygmy process (C{GET /metrics}).

Each server (the front end, each replica) has its own
L{CollectorRegistry<prometheus_client.CollectorRegistry>}, so that the whole cluster in
one process (C{pygmy.tac}) still exposes each server's numbers on its own
port.  What is counted as it happens (requests, latency, view changes,
heartbeat misses) uses prometheus-client's counters and histograms; what
already exists as state (cache counters, replica states, replication lag,
applied positions) is read when scraped, by collectors, so nothing is
counted twice.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
STATES = ("primary", "backup", "recovering", "idle", "down")

#: Route labels: the first path segment of the known routes; anything else
#: is "other", so that no client can make up new label values.
ROUTES = frozenset(
    [
        "search",
        "lookup",
        "list",
        "buy",
        "orders",
        "update",
        "status",
        "health",
        "metrics",
        "books",
        "replication",
        "admin",
    ]
)


def route_of(path: bytes) -> str:
    """The route label of a request path."""
    first = path.split(b"?", 1)[0].lstrip(b"/").split(b"/", 1)[0]
    try:
        name = first.decode("ascii")
    except UnicodeDecodeError:
        return "other"
    return name if name in ROUTES else ("root" if not name else "other")


class HTTPMetrics:
    """
    Request counts and latency per route, method and status, of one server.
    """

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry
        self.requests = Counter(
            "pygmy_http_requests",
            "HTTP requests answered, by route, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "pygmy_http_request_seconds",
            "Time from a request's arrival to its answer, by route.",
            ["route"],
            registry=registry,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )

    def observe(self, path: bytes, method: bytes, status: int, seconds: float) -> None:
        """Count one answered request."""
        route = route_of(path)
        method_label = method.decode("ascii", "replace") if method in _METHODS else "other"
        self.requests.labels(route, method_label, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def render(self) -> bytes:
        """Everything in the registry, in Prometheus text format."""
        return generate_latest(self.registry)


_METHODS = frozenset([b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH"])


class FrontendCollector:
    """
    The front end's state, read at scrape time: cache counters, replica
    states, views, replication lag.

    @param monitor: the L{pygmy.frontend.monitor.Monitor}.
    @param cache: the L{pygmy.frontend.cache.ReplyCache}.
    """

    def __init__(self, monitor, cache):
        self.monitor = monitor
        self.cache = cache

    def collect(self):
        """The cache's counters and size, as Prometheus metric families."""
        c = self.cache.counters
        for name, value, doc in [
            ("hits", c.hits, "Cached replies served."),
            ("misses", c.misses, "Reads not in the cache."),
            ("evictions", c.evictions, "Entries dropped for room."),
            ("invalidations", c.invalidations, "Books invalidated by writes."),
            ("refused_fills", c.refused_fills, "Fills not stored: a write came first."),
            (
                "lease_expiries",
                c.lease_expiries,
                "Times the cache was emptied: no line from the catalog primary for heartbeat_timeout.",
            ),
        ]:
            yield CounterMetricFamily(f"pygmy_cache_{name}", doc, value=value)
        size = GaugeMetricFamily("pygmy_cache_entries", "Entries in the cache.", value=len(self.cache))
        yield size

        views = GaugeMetricFamily("pygmy_view_number", "Current view number.", labels=["service"])
        changes = CounterMetricFamily("pygmy_view_changes", "New views made.", labels=["service"])
        misses = CounterMetricFamily(
            "pygmy_heartbeat_misses", "Replicas declared dead after silence.", labels=["service", "replica"]
        )
        state = GaugeMetricFamily(
            "pygmy_replica_state", "1 for the state each replica is in.", labels=["service", "replica", "state"]
        )
        lag = GaugeMetricFamily(
            "pygmy_replication_lag",
            "Primary's seq minus the backup's, from heartbeats.",
            labels=["service", "replica"],
        )
        for service, view in self.monitor.views.items():
            views.add_metric([service], view.number)
            changes.add_metric([service], view.number)
            primary = view.members.get(view.primary) if view.primary else None
            for name, member in view.members.items():
                misses.add_metric([service, name], member.silences)
                current = member.state if member.alive else "down"
                for s in STATES:
                    state.add_metric([service, name, s], 1 if current == s else 0)
                if primary is not None and name in view.backups:
                    lag.add_metric([service, name], max(0, primary.applied_seq - member.applied_seq))
        yield from (views, changes, misses, state, lag)
        yield from self._leadership()

    def _leadership(self):
        """With several front ends: leadership changes and failed lease renewals."""
        succession = getattr(self.monitor, "succession", None)
        if succession is None:
            return
        leadership = succession.leadership
        for name, value, doc in [
            (
                "pygmy_leadership_changes",
                leadership.changes,
                "Times this front end became or stopped being the view manager.",
            ),
            (
                "pygmy_lease_renewal_failures",
                leadership.renewal_failures,
                "Renewals of the leadership lease that failed.",
            ),
        ]:
            yield CounterMetricFamily(name, doc, value=value)
        leading = GaugeMetricFamily("pygmy_view_manager", "1 while this front end manages the views.")
        leading.add_metric([], 1 if leadership.leading else 0)
        yield leading


class ReplicaCollector:
    """
    A replica's state, read at scrape time.

    @param node: the replica's L{pygmy.replication.node.Node}.
    """

    def __init__(self, node):
        self.node = node

    def collect(self):
        """The replica's position, view and role, as Prometheus metric families."""
        node = self.node
        labels = ["service", "replica"]
        values = [node.service, node.name]
        for name, value, doc in [
            ("pygmy_applied_seq", node.applied_seq, "Last log entry applied."),
            ("pygmy_view", node.view, "View this replica follows."),
        ]:
            gauge = GaugeMetricFamily(name, doc, labels=labels)
            gauge.add_metric(values, value)
            yield gauge
        role = GaugeMetricFamily("pygmy_role", "1 for this replica's role.", labels=labels + ["role"])
        for r in STATES[:-1]:
            role.add_metric(values + [r], 1 if node.role == r else 0)
        yield role
        if node.replicator is not None:
            lag = GaugeMetricFamily(
                "pygmy_backup_lag", "Entries a backup has yet to acknowledge.", labels=labels + ["backup"]
            )
            for name, link in node.replicator.links.items():
                lag.add_metric(values + [name], max(0, node.applied_seq - (link.acked or 0)))
            yield lag
        for observer in node.write_observers:
            # A write observer may keep metrics of its own (the catalog's push).
            metrics = getattr(observer, "metrics", None)
            if isinstance(metrics, InvalidationMetrics):
                yield from metrics.collect()


class InvalidationMetrics:
    """
    What a catalog primary measures of its cache invalidations
    (L{pygmy.catalog.coherence}): how long each write waited for the front
    ends' C{INVALIDATED}, and how many connections it dropped for want of
    one.  Exposed with the replica's metrics by L{ReplicaCollector}.
    """

    def __init__(self):
        self.waits = Histogram(
            "pygmy_invalidation_wait_seconds",
            "Time a catalog write waited, once replicated, for every front end's INVALIDATED.",
            registry=None,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.silent_closes = Counter(
            "pygmy_invalidation_silent_closes",
            "Front-end connections dropped: no INVALIDATED within heartbeat_timeout.",
            registry=None,
        )

    def collect(self):
        """The histogram and the counter, as Prometheus metric families."""
        yield from self.waits.collect()
        yield from self.silent_closes.collect()


def registry_with(*collectors) -> tuple[CollectorRegistry, HTTPMetrics]:
    """A new registry with HTTP metrics and the given collectors."""
    registry = CollectorRegistry()
    http = HTTPMetrics(registry)
    for collector in collectors:
        registry.register(collector)
    return registry, http
