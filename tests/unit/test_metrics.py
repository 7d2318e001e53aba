"""
Prometheus metrics: route labels of bounded cardinality, request counts and
latency from real requests, the front end's and a replica's collectors, and
the /metrics routes (front end public, replica behind the secret).
"""

from prometheus_client.parser import text_string_to_metric_families

from pygmy.frontend.cache import ReplyCache
from pygmy.frontend.monitor import Monitor
from pygmy.process.metrics import FrontendCollector, ReplicaCollector, registry_with, route_of
from tests.fakes import InMemoryCluster

URL = "http://front.invalid"


def samples(text: bytes) -> dict:
    """C{{(name, sorted label items): value}} of a Prometheus text body."""
    found = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_route_labels_are_bounded():
    assert route_of(b"/lookup/12") == "lookup"
    assert route_of(b"/search?topic=x") == "search"
    assert route_of(b"/") == "root"
    assert route_of(b"/no-such-thing/1") == "other"
    assert route_of(b"/\xff\xfe") == "other"
    assert len({route_of(f"/x{n}".encode()) for n in range(100)}) == 1


def test_http_metrics_count_route_method_status():
    _, http = registry_with()
    http.observe(b"/lookup/1", b"GET", 200, 0.002)
    http.observe(b"/lookup/2", b"GET", 200, 0.004)
    http.observe(b"/buy/1", b"POST", 409, 0.01)
    http.observe(b"/buy/1", b"BREW", 405, 0.01)
    found = samples(http.render())
    assert found[("pygmy_http_requests_total", (("method", "GET"), ("route", "lookup"), ("status", "200")))] == 2
    assert found[("pygmy_http_requests_total", (("method", "POST"), ("route", "buy"), ("status", "409")))] == 1
    assert found[("pygmy_http_requests_total", (("method", "other"), ("route", "buy"), ("status", "405")))] == 1
    assert found[("pygmy_http_request_seconds_count", (("route", "lookup"),))] == 2
    assert abs(found[("pygmy_http_request_seconds_sum", (("route", "lookup"),))] - 0.006) < 1e-9


def test_frontend_collector_reads_cache_views_and_lag(tmp_path):
    cluster = InMemoryCluster(tmp_path)
    try:
        monitor = Monitor(cluster.config, cluster.reactor, {})
        cache = ReplyCache(10)
        cache.store("lookup:1", b"{}", (1,), cache.ticket())
        cache.get("lookup:1")
        cache.get("lookup:2")
        cache.invalidate(1)

        class Connection:
            def send(self, line):
                pass

        for name, seq in [("A", 7), ("B", 7)]:
            monitor.connected("catalog", name, Connection())
            monitor.beat("catalog", name, 0, seq, 0, "idle")
        monitor.beat("catalog", "B", 1, 4, 0, "backup")
        registry, _ = registry_with(FrontendCollector(monitor, cache))
        from prometheus_client import generate_latest

        found = samples(generate_latest(registry))
        assert found[("pygmy_cache_hits_total", ())] == 1
        assert found[("pygmy_cache_misses_total", ())] == 1
        assert found[("pygmy_cache_invalidations_total", ())] == 1
        assert found[("pygmy_view_number", (("service", "catalog"),))] == 1
        assert found[("pygmy_replica_state", (("replica", "A"), ("service", "catalog"), ("state", "idle")))] == 1
        assert found[("pygmy_replica_state", (("replica", "A"), ("service", "order"), ("state", "down")))] == 1
        assert found[("pygmy_replication_lag", (("replica", "B"), ("service", "catalog")))] == 3
    finally:
        cluster.close()


def test_frontend_collector_reports_the_leadership_with_several_front_ends(tmp_path):
    cluster = InMemoryCluster(tmp_path)
    try:
        monitor = Monitor(cluster.config, cluster.reactor, {})
        registry, _ = registry_with(FrontendCollector(monitor, ReplyCache(10)))
        from prometheus_client import generate_latest

        # A lone front end has no leadership to report.
        assert not any(name.startswith("pygmy_lease") for name, _ in samples(generate_latest(registry)))

        class Leadership:
            leading, changes, renewal_failures = True, 3, 2

        class Succession:
            leadership = Leadership()

        monitor.succession = Succession()
        found = samples(generate_latest(registry))
        assert found[("pygmy_leadership_changes_total", ())] == 3
        assert found[("pygmy_lease_renewal_failures_total", ())] == 2
        assert found[("pygmy_view_manager", ())] == 1
    finally:
        cluster.close()


def test_metrics_routes(tmp_path):
    cluster = InMemoryCluster(tmp_path)
    try:
        _, http = registry_with(FrontendCollector(cluster.monitor, cluster.cache))
        cluster.frontend.metrics = http
        response = cluster.front.get(URL + "/metrics")
        got = []
        response.addCallback(lambda r: r.content().addCallback(lambda body: got.append((r, body))))
        ((reply, body),) = got
        assert reply.code == 200
        assert reply.headers.getRawHeaders(b"content-type")[0].startswith(b"text/plain")
        assert ("pygmy_cache_entries", ()) in samples(body)
    finally:
        cluster.close()


def test_replica_collector_reports_role_and_seq(tmp_path):
    from prometheus_client import generate_latest

    cluster = InMemoryCluster(tmp_path)
    try:
        registry, _ = registry_with(ReplicaCollector(cluster.catalog_node))
        before = samples(generate_latest(registry))
        cluster.front.request("POST", URL + "/buy/1")
        after = samples(generate_latest(registry))
        labels = (("replica", "A"), ("service", "catalog"))
        assert (before[("pygmy_applied_seq", labels)], after[("pygmy_applied_seq", labels)]) == (0, 1)
        assert after[("pygmy_role", tuple(sorted(labels + (("role", "primary"),))))] == 1
        assert after[("pygmy_role", tuple(sorted(labels + (("role", "backup"),))))] == 0
    finally:
        cluster.close()
