"""
Checks of docs/haproxy.cfg without running it: HAProxy accepts it
(C{haproxy -c}); it listens on 127.0.0.1 only; it checks each front end's
C{GET /health}; it retries a request that never reached a front end on
another one, and only reads once one may have reached it; its timeouts fit
the default C{[cluster]} and C{[coordinator]} settings as its comments say;
and L{tests.haproxy.render} changes only the addresses.  The real thing
under C{kill -9} is C{tests/integration/test_haproxy.py}.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from pygmy.config import load
from tests.fakes import REPLICA_SECTIONS
from tests.haproxy import TEMPLATE, haproxy_binary, render

TEXT = TEMPLATE.read_text(encoding="utf-8")


def sections(text: str) -> dict[str, list[list[str]]]:
    """Each section (C{"defaults"}, C{"backend frontends"} ...) -> its lines, as words, comments dropped."""
    found: dict[str, list[list[str]]] = {}
    current = None
    for line in text.splitlines():
        words = line.split("#")[0].split()
        if not words:
            continue
        if not line[0].isspace():
            current = " ".join(words)
            found[current] = []
        else:
            found[current].append(words)
    return found


def lines_of(section: str, keyword: str) -> list[list[str]]:
    return [words for words in sections(TEXT)[section] if words[0] == keyword]


def seconds(value: str) -> float:
    """An HAProxy time (C{500ms}, C{10s}, C{1m}) in seconds."""
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)?", value).groups()
    return float(number) * {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, None: 1e-3}[unit]


def timeout(name: str) -> float:
    [words] = [w for w in lines_of("defaults", "timeout") if w[1] == name]
    return seconds(words[2])


@pytest.fixture(scope="module")
def defaults(tmp_path_factory):
    """The settings the timeouts are sized for: a config with every default, and [coordinator]."""
    path = tmp_path_factory.mktemp("defaults") / "config.ini"
    path.write_text(
        "[cluster]\n[frontend:1]\nport = 8080\nheartbeat_port = 8090\n"
        "[frontend:2]\nport = 8180\nheartbeat_port = 8190\n"
        "[coordinator]\netcd = http://127.0.0.1:2379\n" + REPLICA_SECTIONS
    )
    return load(path)


def test_haproxy_accepts_it():
    binary = haproxy_binary()
    if binary is None:
        pytest.skip("no haproxy: apt-get install haproxy (.ci/run installs it)")
    checked = subprocess.run([binary, "-c", "-f", str(TEMPLATE)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_it_listens_on_the_loopback_only():
    assert lines_of("frontend pygmy", "bind") == [["bind", "127.0.0.1:8000"]]
    assert lines_of("frontend pygmy", "default_backend") == [["default_backend", "frontends"]]


def test_every_front_end_is_checked_on_get_health():
    backend = sections(TEXT)["backend frontends"]
    assert ["option", "httpchk"] in backend
    assert ["http-check", "send", "meth", "GET", "uri", "/health"] in backend
    assert ["http-check", "expect", "status", "200"] in backend
    servers = lines_of("backend frontends", "server")
    assert [s[1] for s in servers] == ["frontend-1", "frontend-2", "frontend-3"]
    assert all(s[2].endswith(":8080") and s[3:] == ["check"] for s in servers)


def test_only_reads_are_sent_again_once_they_may_have_reached_a_front_end():
    defaults = sections(TEXT)["defaults"]
    assert ["retry-on", "conn-failure", "empty-response", "response-timeout"] in defaults
    assert ["option", "redispatch", "1"] in defaults
    [retries] = [w for w in defaults if w[0] == "retries"]
    assert int(retries[1]) >= 2
    # Any other status is the front end's answer: never retried (no 503, no 5xx in retry-on).
    [retry_on] = [w for w in defaults if w[0] == "retry-on"]
    assert not any(re.fullmatch(r"\d{3}|.*-5xx|all-retryable-errors", word) for word in retry_on[1:])
    assert lines_of("backend frontends", "http-request") == [
        ["http-request", "disable-l7-retry", "if", "!METH_GET", "!METH_HEAD"]
    ]


def test_the_timeouts_fit_the_default_settings(defaults):
    cluster, lease = defaults.cluster, defaults.coordinator.lease_ttl
    [server] = lines_of("backend frontends", "default-server")
    options = dict(zip(server[1::2], server[2::2], strict=True))
    inter, fall = seconds(options["inter"]), int(options["fall"])
    # A dead front end is out of rotation within heartbeat_timeout.
    assert inter <= cluster.heartbeat_interval and inter * fall <= cluster.heartbeat_timeout
    assert int(options["rise"]) >= 2
    # A request is given time for a new view manager and a replica's request_timeout.
    assert timeout("server") > lease + cluster.heartbeat_timeout + cluster.request_timeout
    # A front end that does not accept a connection within a beat is on a host that is down.
    assert timeout("connect") <= cluster.heartbeat_interval
    assert timeout("check") <= cluster.heartbeat_timeout
    assert timeout("client") >= timeout("server")


def test_render_changes_the_addresses_and_nothing_else():
    rendered = render(TEXT, "127.0.0.1:9000", {"a": "127.0.0.1:9001", "b": "127.0.0.1:9002"})
    assert sections(rendered)["frontend pygmy"][0] == ["bind", "127.0.0.1:9000"]
    servers = [w for w in sections(rendered)["backend frontends"] if w[0] == "server"]
    assert servers == [["server", "a", "127.0.0.1:9001", "check"], ["server", "b", "127.0.0.1:9002", "check"]]
    kept = [line for line in TEXT.splitlines() if not re.match(r"\s+(bind|server) ", line)]
    assert [line for line in rendered.splitlines() if not re.match(r"\s+(bind|server) ", line)] == kept
    with pytest.raises(ValueError):
        render("defaults\n    mode http\n", ":1", {"a": "b:1"})
