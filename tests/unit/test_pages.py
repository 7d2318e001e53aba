"""
The front end's pages (C{GET /}, C{GET /dashboard}, C{GET /static/<name>}) and
its timeline (C{GET /events}) through C{StubTreq}; the bounds of the
L{EventRing}; and the events the L{Monitor} records as views change, driven
with a L{Clock} and plain objects for the heartbeat connections.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from importlib.resources import files
from types import SimpleNamespace

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from pygmy.config import load
from pygmy.coordination.store import StoredView
from pygmy.frontend.events import EventRing
from pygmy.frontend.monitor import Monitor
from pygmy.frontend.pages import ASSETS, TYPES
from tests.fakes import InMemoryCluster, config_text, result

URL = "http://front.invalid"
STATIC = files("pygmy.frontend") / "static"


@pytest.fixture
def cluster(tmp_path):
    running = InMemoryCluster(tmp_path)
    yield running
    running.close()


def call(cluster, path, method="GET", headers=None):
    """One request to the front end: (status, headers, body bytes)."""
    response = result(cluster.front.request(method, URL + path, headers=headers or {}))
    return response.code, response.headers, result(response.content())


def header(headers, name: str) -> str | None:
    values = headers.getRawHeaders(name.encode("ascii"))
    return None if values is None else values[0].decode("latin-1")


# The pages and their files


@pytest.mark.parametrize(("path", "marker"), [("/", b"store.js"), ("/dashboard", b"dashboard.js")])
def test_pages_are_html_with_a_same_origin_policy(cluster, path, marker):
    status, headers, body = call(cluster, path)
    assert status == 200
    assert header(headers, "content-type") == "text/html; charset=utf-8"
    policy = header(headers, "content-security-policy")
    assert "default-src 'self'" in policy and "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe" not in policy and "*" not in policy and "http" not in policy
    assert header(headers, "x-content-type-options") == "nosniff"
    assert header(headers, "cache-control") == "no-cache"
    assert body.startswith(b"<!doctype html>") and marker in body


@pytest.mark.parametrize("name", sorted(ASSETS))
def test_every_file_with_its_type_and_an_etag(cluster, name):
    status, headers, body = call(cluster, f"/static/{name}")
    assert status == 200
    assert header(headers, "content-type") == TYPES[name].decode()
    assert header(headers, "content-security-policy").startswith("default-src 'self'")
    assert body == (STATIC / name).read_bytes()
    etag = header(headers, "etag")
    assert re.fullmatch(r'"[0-9a-f]{32}"', etag)
    again, again_headers, empty = call(cluster, f"/static/{name}", headers={"If-None-Match": etag})
    assert (again, empty, header(again_headers, "etag")) == (304, b"", etag)
    assert call(cluster, f"/static/{name}", headers={"If-None-Match": '"other"'})[0] == 200


def test_unknown_files_and_pages_by_file_name_are_json_404(cluster):
    for path in ["/static/nope.js", "/static/index.html", "/static/..%2fapp.py", "/static/", "/index.html"]:
        status, headers, body = call(cluster, path)
        assert status == 404, path
        assert header(headers, "content-type") == "application/json"
        assert json.loads(body)["error"]["code"] == "not_found"


def test_other_methods_are_405_and_head_has_no_body(cluster):
    status, headers, body = call(cluster, "/", method="POST")
    assert status == 405 and "GET" in header(headers, "allow")
    assert json.loads(body)["error"]["code"] == "method_not_allowed"
    status, headers, body = call(cluster, "/dashboard", method="HEAD")
    assert (status, body) == (200, b"")
    assert header(headers, "content-type") == "text/html; charset=utf-8"


class References(HTMLParser):
    """Collects every URL a page refers to, and any inline script or style."""

    def __init__(self):
        super().__init__()
        self.urls, self.inline = [], []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.urls += [attrs[key] for key in ("src", "href", "action") if key in attrs]
        self.inline += [key for key in attrs if key.startswith("on") or key == "style"]
        self._in_script = tag in ("script", "style")
        if tag == "script" and "src" not in attrs:
            self.inline.append("script")

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline.append(data)

    def handle_endtag(self, tag):
        self._in_script = False


@pytest.mark.parametrize("page", ["index.html", "dashboard.html"])
def test_pages_load_only_files_of_this_origin(page):
    parser = References()
    parser.feed((STATIC / page).read_text(encoding="utf-8"))
    assert parser.inline == []
    assert parser.urls
    for url in parser.urls:
        assert url.startswith("/") and not url.startswith("//"), url
        if url.startswith("/static/"):
            assert url.removeprefix("/static/") in ASSETS, url


def test_scripts_never_write_html_and_name_no_other_origin():
    for name in sorted(TYPES):
        text = (STATIC / name).read_text(encoding="utf-8")
        for forbidden in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert forbidden not in text, (name, forbidden)
        # An XML namespace names no resource; anything else like a host would load from there.
        text = re.sub(r'xmlns="[^"]*"', "", text)
        assert re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]", text) == [], name


def test_every_static_file_is_served():
    on_disk = {path.name for path in STATIC.iterdir() if path.is_file()}
    assert on_disk == set(TYPES)


def test_status_names_the_view_manager(cluster):
    status, _, body = call(cluster, "/status")
    assert status == 200
    frontend = json.loads(body)["frontend"]
    assert frontend == {
        "name": "frontend",
        "role": "leader",
        "leader": "frontend",
        "coordinator": "local",
        "views_read": True,
    }


# GET /events


def events(cluster, query=""):
    status, headers, body = call(cluster, "/events" + query)
    assert header(headers, "content-type") == "application/json"
    return status, headers, json.loads(body)


def test_events_page_by_id(cluster):
    ring = cluster.monitor.events
    for n in range(7):
        ring.add("dead", "catalog", "A", n, f"event {n}")
    status, headers, body = events(cluster)
    assert status == 200 and header(headers, "cache-control") == "no-store"
    assert [e["id"] for e in body["events"]] == [1, 2, 3, 4, 5, 6, 7]
    assert (body["next"], body["run"]) == (7, ring.run)
    _, _, page = events(cluster, "?after=3&limit=2")
    assert ([e["id"] for e in page["events"]], page["next"]) == ([4, 5], 5)
    _, _, rest = events(cluster, "?after=5")
    assert ([e["message"] for e in rest["events"]], rest["next"]) == (["event 5", "event 6"], 7)
    _, _, none = events(cluster, "?after=7")
    assert (none["events"], none["next"]) == ([], 7)
    # From before a restart: read as 0.
    _, _, restarted = events(cluster, "?after=70")
    assert [e["id"] for e in restarted["events"]] == [1, 2, 3, 4, 5, 6, 7]


def test_event_fields(cluster):
    cluster.monitor.events.add("failover", "order", "B", 4, "order:B took over.", 0.61234)
    (event,) = events(cluster)[2]["events"]
    assert set(event) == {"id", "time", "kind", "service", "replica", "view", "duration", "message"}
    assert (event["kind"], event["service"], event["replica"], event["view"]) == ("failover", "order", "B", 4)
    assert event["duration"] == 0.612
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event["time"])


@pytest.mark.parametrize(
    "query", ["?after=-1", "?after=x", "?after=1.5", "?after=01", "?after=1&after=2", "?limit=0", "?limit=1001"]
)
def test_malformed_events_queries_are_400(cluster, query):
    status, _, body = events(cluster, query)
    assert (status, body["error"]["code"]) == (400, "bad_request")


def test_events_of_an_empty_ring(cluster):
    assert events(cluster)[2]["events"] == [] and events(cluster)[2]["next"] == 0


# The ring


def test_the_ring_keeps_the_newest_events_with_increasing_ids():
    ring = EventRing(capacity=5, wall=lambda: 0.0)
    added = [ring.add("view", "catalog", "A", n, f"view {n}")["id"] for n in range(12)]
    assert added == list(range(1, 13))
    assert len(ring) == 5
    assert [e["id"] for e in ring.after(0, 100)[0]] == [8, 9, 10, 11, 12]
    assert ring.after(0, 100)[1] == 12
    # Dropped ones are simply gone: the page starts at the oldest kept.
    assert [e["id"] for e in ring.after(3, 2)[0]] == [8, 9]
    assert [e["id"] for e in ring.after(9, 2)[0]] == [10, 11]
    assert ring.after(12, 5) == ([], 12)
    assert ring.after(0, 100)[0][0]["time"] == "1970-01-01T00:00:00.000Z"


def test_two_rings_have_different_runs():
    assert EventRing().run != EventRing().run


# What the monitor records


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "config.ini"
    path.write_text(config_text())
    return load(path)


class HeldStore:
    """A views store whose stores complete when the test says."""

    def __init__(self, views=None):
        self.views = dict(views or {})
        self.pending = []

    def load(self):
        return succeed(dict(self.views))

    def store(self, service, view):
        self.pending.append(Deferred())
        return self.pending[-1]

    def complete(self):
        while self.pending:
            self.pending.pop(0).callback(None)


class Heartbeats:
    """A monitor and the catalog replicas' connections, on a L{Clock}."""

    def __init__(self, config, store=None):
        self.clock = Clock()
        self.monitor = Monitor(config, self.clock, {}, store, wall=lambda: 1_000_000.0)
        self.monitor.start()
        self.conns = {}

    def beat(self, name, seq=5, state="idle", view=0):
        if name not in self.conns:
            self.conns[name] = SimpleNamespace(
                send=lambda line: None, transport=SimpleNamespace(loseConnection=lambda: None)
            )
            self.monitor.connected("catalog", name, self.conns[name])
        self.monitor.beat("catalog", name, view, seq, 1, state)

    def drop(self, name):
        self.monitor.disconnected("catalog", name, self.conns.pop(name))

    def events(self):
        return self.monitor.events.after(0, 1000)[0]

    def kinds(self, since=0):
        return [(e["kind"], e["replica"], e["view"]) for e in self.monitor.events.after(since, 1000)[0]]


def test_start_up_records_replicas_up_and_the_first_view(config):
    beats = Heartbeats(config)
    beats.beat("A")
    beats.beat("B")
    assert beats.kinds() == [("back", "A", 0), ("back", "B", 0), ("view", "A", 1)]
    up, _, view = beats.events()
    assert up["message"] == "catalog:A is up (idle, applied seq 5)."
    assert view["message"] == "catalog view 1: primary A, backups B (start-up)."
    assert all(e["duration"] is None for e in beats.events())


def test_a_silent_primary_is_a_failover_timed_from_its_last_beat(config):
    beats = Heartbeats(config)
    beats.beat("A")
    beats.beat("B")
    seen = beats.monitor.events.last_id
    beats.clock.advance(1.0)
    beats.beat("B")
    beats.clock.advance(1.0)  # A last beat 2.0 s ago, B 1.0 s ago: only A is past the 1.5 s timeout.
    beats.monitor.check()
    assert beats.kinds(seen) == [("dead", "A", 1), ("view", "B", 2), ("failover", "B", 2)]
    dead, view, failover = beats.monitor.events.after(seen, 10)[0]
    assert dead["message"] == "catalog:A, the primary, declared dead: silent for 2.00s."
    assert view["message"] == "catalog view 2: primary B, backups none (B promoted)."
    assert failover["duration"] == 2.0
    assert failover["message"] == "catalog:B took over as primary in view 2, 2.000 s after catalog:A died."


def test_a_failover_is_recorded_when_its_view_is_pushed(config):
    store = HeldStore()
    beats = Heartbeats(config, store)
    beats.beat("A")
    beats.beat("B")
    store.complete()
    seen = beats.monitor.events.last_id
    beats.clock.advance(0.25)
    beats.drop("A")  # The connection drops: dead now.
    assert beats.kinds(seen) == [("dead", "A", 1)]
    beats.clock.advance(0.5)  # The store takes half a second.
    store.complete()
    assert beats.kinds(seen) == [("dead", "A", 1), ("view", "B", 2), ("failover", "B", 2)]
    assert beats.events()[-1]["duration"] == 0.5


def test_a_catch_up_is_timed_from_the_return_to_the_view_with_it_in_sync(config):
    beats = Heartbeats(config)
    beats.beat("A")
    beats.beat("B")
    beats.drop("B")
    seen = beats.monitor.events.last_id
    beats.clock.advance(3.0)
    beats.beat("B", seq=2, state="recovering", view=2)
    beats.clock.advance(1.25)
    beats.monitor.synced("catalog", "A", "B", 9)
    assert beats.kinds(seen) == [("back", "B", 2), ("view", "A", 3), ("catch_up", "B", 3)]
    back, view, caught_up = beats.monitor.events.after(seen, 10)[0]
    assert back["message"] == "catalog:B is back (recovering, applied seq 2)."
    assert view["message"] == "catalog view 3: primary A, backups B (B caught up to seq 9)."
    assert caught_up["duration"] == 1.25
    assert caught_up["message"] == (
        "catalog:B caught up to seq 9 and joined the in-sync set in view 3, 1.250 s after it came back."
    )


def test_a_primary_that_returns_alone_is_primary_again(config):
    beats = Heartbeats(config)
    beats.beat("A")
    beats.beat("B")
    beats.drop("B")
    beats.drop("A")
    seen = beats.monitor.events.last_id
    beats.clock.advance(4.0)
    beats.beat("A", view=3)
    failover = beats.events()[-1]
    assert beats.kinds(seen)[-1] == ("failover", "A", 4)
    assert failover["message"] == "catalog:A is primary again in view 4, 4.000 s after catalog:A died."
    assert failover["duration"] == 4.0


def test_a_restart_of_the_view_manager_is_no_failover(config):
    stored = {"catalog": StoredView(6, "B", ("A",), frozenset({"A", "B"}))}
    beats = Heartbeats(config, HeldStore(stored))
    beats.beat("B", view=6, state="primary")
    beats.beat("A", view=6, state="backup")
    beats.monitor.store.complete()
    assert [kind for kind, _, _ in beats.kinds()] == ["back", "back", "view"]
    assert beats.events()[-1]["message"] == "catalog view 7: primary B, backups A (B promoted)."


def test_a_broken_timeline_never_stops_the_views(config):
    beats = Heartbeats(config)
    beats.monitor.events.add = None  # Every record now fails.
    beats.beat("A")
    beats.beat("B")
    beats.drop("A")
    assert beats.monitor.views["catalog"].primary == "B"
    assert beats.monitor.published["catalog"].number == 2
