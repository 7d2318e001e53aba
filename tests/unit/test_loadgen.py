"""
Unit tests of the load generator (L{pygmy.cli.loadgen}: percentiles,
L{drive}) and of C{pygmy load}'s parts that need no cluster
(L{pygmy.cli.load}: the mix, the plan, the settings, the missing-extra
error, the crash's target).  The summaries, time slices, table, JSON
document, progress bar and plot are in C{tests/unit/test_loadgen_report.py};
the runs against real processes are in
C{tests/integration/test_client_commands.py}.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.task import Clock
from twisted.web.resource import Resource

from pygmy import cli
from pygmy.cli import crash, load, load_report, loadgen
from pygmy.cli.client import Frontend, UsageError
from pygmy.cli.loadgen import Request, percentile, summarise


def result_of(coroutine):
    """The result of a coroutine that finishes without the reactor."""
    found = []
    ensureDeferred(coroutine).addBoth(found.append)
    assert found, "the coroutine did not finish"
    if hasattr(found[0], "raiseException"):
        found[0].raiseException()
    return found[0]


# Percentiles


@pytest.mark.parametrize(
    "values, p, expected",
    [
        ([1, 2, 3, 4], 0, 1.0),
        ([1, 2, 3, 4], 50, 2.5),
        ([1, 2, 3, 4], 90, 3.7),
        ([1, 2, 3, 4], 99, 3.97),
        ([1, 2, 3, 4], 100, 4.0),
        ([15, 20, 35, 40, 50], 40, 29.0),
        ([15, 20, 35, 40, 50], 90, 46.0),
        ([15, 20, 35, 40, 50], 25, 20.0),
        ([10, 20], 25, 12.5),
        ([7], 99, 7.0),
        ([1, 1, 1, 100], 99, 97.03),
    ],
)
def test_percentile_is_numpy_linear_interpolation(values, p, expected):
    # numpy.percentile(values, p) (method="linear") gives the same numbers.
    assert percentile(values, p) == pytest.approx(expected)


@hypothesis_settings(deadline=None)
@given(st.lists(st.floats(0, 1e6), min_size=1, max_size=50), st.floats(0, 100))
def test_percentile_matches_numpy(values, p):
    numpy = pytest.importorskip("numpy")
    ordered = sorted(values)
    assert percentile(ordered, p) == pytest.approx(float(numpy.percentile(ordered, p)), rel=1e-9, abs=1e-9)


def test_percentile_refuses_no_samples_and_bad_p():
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 50)
    for p in (-1, 100.5):
        with pytest.raises(ValueError, match="outside 0-100"):
            percentile([1.0], p)


# drive


class Recorder(Resource):
    """Answers every request with 200 (or C{status}) and keeps what it got."""

    isLeaf = True

    def __init__(self, status=200):
        super().__init__()
        self.status = status
        self.seen = []

    def render(self, request):
        self.seen.append((request.method.decode(), request.uri.decode(), request.getHeader("cache-control")))
        request.setResponseCode(self.status)
        return b"{}"


def test_drive_sends_count_requests_with_their_headers():
    recorder = Recorder()
    http = StubTreq(recorder)
    noted = []

    def plan(n):
        return Request("lookup", "GET", f"http://front/lookup/{n}", {"Cache-Control": "no-cache"})

    found = result_of(loadgen.drive(Clock(), http, plan, clients=3, count=7, on_sample=noted.append))
    assert len(found) == 7 and noted == found
    assert sorted(uri for _, uri, _ in recorder.seen) == sorted(f"/lookup/{n}" for n in range(7))
    assert {header for _, _, header in recorder.seen} == {"no-cache"}
    assert all(s.status == 200 and s.operation == "lookup" for s in found)


def test_drive_records_error_statuses_and_failures():
    found = result_of(
        loadgen.drive(Clock(), StubTreq(Recorder(503)), lambda n: Request("buy", "POST", "http://f/buy/1"), 2, count=4)
    )
    assert [s.status for s in found] == [503] * 4

    class Refusing:
        def request(self, *args, **kwargs):
            from twisted.internet.defer import fail
            from twisted.internet.error import ConnectionRefusedError

            return fail(ConnectionRefusedError())

    found = result_of(loadgen.drive(Clock(), Refusing(), lambda n: Request("x", "GET", "http://f/"), 2, count=3))
    assert [s.status for s in found] == [0, 0, 0]
    assert summarise(found, 1.0)["x"]["errors"] == {"no answer": 3}


class SlowHTTP:
    """Answers each request 0.125 s later on C{clock}; records the keyword arguments."""

    def __init__(self, clock):
        self.clock = clock
        self.kwargs = []

    def request(self, method, url, **kwargs):
        self.kwargs.append(kwargs)
        response = Namespace(code=200, content=lambda: succeed(b"{}"))
        answer = Deferred()
        self.clock.callLater(0.125, answer.callback, response)
        return answer


def test_drive_stops_after_the_duration():
    clock = Clock()
    http = SlowHTTP(clock)
    done = ensureDeferred(loadgen.drive(clock, http, lambda n: Request("x", "GET", "u"), 2, duration=1.0, timeout=3))
    for _ in range(30):
        clock.advance(0.125)
    found = []
    done.addCallback(found.append)
    samples = found[0]
    assert len(samples) == 16  # 2 clients, one request each 0.125 s, for 1 s
    assert all(s.seconds == 0.125 for s in samples)
    assert max(s.at for s in samples) == 0.875
    assert http.kwargs[0] == {"headers": {}, "timeout": 3}


def test_drive_needs_a_bound():
    with pytest.raises(ValueError):
        result_of(loadgen.drive(Clock(), None, lambda n: None, 1))


# The load command's parts


def test_parse_mix():
    assert load.parse_mix("lookup=6,search=3,buy=1") == {"lookup": 6.0, "search": 3.0, "buy": 1.0}
    assert load.parse_mix(" buy = 0.5 , list") == {"buy": 0.5, "list": 1.0}
    assert load_report.describe_mix({"lookup": 6.0, "buy": 0.5}) == "lookup=6 buy=0.5"
    for bad, message in [
        ("fly=1", "unknown operation 'fly'"),
        ("buy=1,buy=2", "buy appears twice"),
        ("buy=x", "not a number"),
        ("buy=-1", "0 or more"),
        ("buy=nan", "0 or more"),
        ("buy=0,lookup=0", "no operation has a weight above 0"),
    ]:
        with pytest.raises(ValueError, match=message):
            load.parse_mix(bad)


def test_plan_follows_the_mix_and_sends_no_cache_on_reads_only():
    import random

    plan = load.Plan(
        "http://f", {"lookup": 3, "buy": 1, "search": 0}, [1, 2], ["graduate school"], random.Random(3), True
    )
    requests = [plan(n) for n in range(2000)]
    names = [r.operation for r in requests]
    assert set(names) == {"lookup", "buy"}
    assert 0.70 < names.count("lookup") / len(names) < 0.80
    lookup = next(r for r in requests if r.operation == "lookup")
    buy = next(r for r in requests if r.operation == "buy")
    assert lookup.method == "GET" and lookup.url in ("http://f/lookup/1", "http://f/lookup/2")
    assert lookup.headers == {"Cache-Control": "no-cache"}
    assert buy.method == "POST" and buy.url.startswith("http://f/buy/") and buy.headers == {}
    search = load.Plan("http://f", {"search": 1, "list": 1}, [1], ["graduate school"], random.Random(1))
    urls = {search(n).url for n in range(50)}
    assert urls == {"http://f/search?topic=graduate%20school", "http://f/list"}
    assert search(0).headers == {}


def load_args(*argv):
    return cli.build_parser().parse_args(["load", *argv])


def test_load_arguments_and_settings(tmp_path):
    args = load_args()
    chosen = load.settings(args, "http://f")
    assert (chosen.clients, chosen.duration, chosen.count, chosen.no_cache) == (10, 10.0, None, False)
    assert chosen.mix == {"lookup": 6.0, "search": 3.0, "buy": 1.0} and chosen.json is None
    args = load_args("-n", "4", "--count", "50", "--no-cache", "--json", "--seed", "9", "--mix", "buy=1")
    chosen = load.settings(args, "http://f")
    assert (chosen.clients, chosen.duration, chosen.count, chosen.no_cache, chosen.json, chosen.seed) == (
        4,
        None,
        50,
        True,
        "-",
        9,
    )
    chosen = load.settings(load_args("--duration", "9", "--crash", "order", "--json", str(tmp_path / "x.json")), "u")
    assert (chosen.crash, chosen.crash_at, chosen.down, chosen.json) == ("order", 3.0, 2.0, str(tmp_path / "x.json"))
    for argv, message in [
        (["--count", "5", "--crash", "catalog"], "--crash needs --duration"),
        (["--duration", "5", "--crash", "catalog", "--crash-at", "6"], "not within the --duration"),
        (["--plot", "x.svg"], "must end in .png"),
        (["--plot", str(tmp_path / "no" / "x.png")], "no such directory"),
    ]:
        with pytest.raises(UsageError, match=message):
            load.settings(load_args(*argv), "u")


@pytest.mark.parametrize("argv", [["--clients", "0"], ["--mix", "buy=x"], ["--crash", "frontend"], ["--duration", "0"]])
def test_bad_load_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(["load", *argv])
    assert exit.value.code == 2
    assert "usage: pygmy load" in capsys.readouterr().err


def test_missing_extra_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "rich", None)
    with pytest.raises(UsageError) as error:
        load.require("rich", "pygmy load")
    assert str(error.value) == "pygmy load needs rich, which is not installed: pip install 'pygmy[load]'"
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    args = load_args("--plot", "x.png")
    err = io.StringIO()
    monkeypatch.delitem(sys.modules, "rich")
    assert load.main(args, err=err) == 2
    assert (
        err.getvalue()
        == "pygmy load: pygmy load --plot needs matplotlib, which is not installed: pip install 'pygmy[load]'\n"
    )


def test_the_commands_do_not_import_rich_or_matplotlib():
    code = (
        "import sys; import pygmy.cli, pygmy.cli.client, pygmy.cli.load, pygmy.cli.plot, pygmy.cli.loadgen; "
        "pygmy.cli.build_parser(); "
        "print(sorted(m for m in ('rich', 'matplotlib') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_crash_needs_a_primary_started_by_pygmy_up(tmp_path):
    from pygmy.config import load as load_config

    class Status(Resource):
        isLeaf = True

        def render_GET(self, request):
            return json.dumps({"services": {"catalog": {"primary": "A", "backups": ["B"]}}}).encode()

    (tmp_path / "config.ini").write_text(
        "[cluster]\n[frontend]\nport = 8080\nheartbeat_port = 8090\n"
        + "".join(
            f"[{s}:{n}]\nport = {p}\n"
            for (s, n), p in zip(
                [("catalog", "A"), ("catalog", "B"), ("order", "A"), ("order", "B")], range(8081, 8085), strict=True
            )
        )
    )
    config = load_config(tmp_path / "config.ini")
    crashing = crash.Crash(Clock(), Frontend(StubTreq(Status()), "http://f", None), config, "catalog", print)
    with pytest.raises(crash.LoadError, match=r"catalog:A \(the primary\) has no live pid file in .*pygmy up"):
        result_of(crashing.target())
