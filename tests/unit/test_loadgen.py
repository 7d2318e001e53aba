"""
Unit tests of the load generator (L{pygmy.cli.loadgen}: percentiles,
summaries, time slices, L{drive}) and of C{pygmy load}'s parts that
need no cluster (L{pygmy.cli.load}: the mix, the plan, the settings, the
table, the JSON document, the progress bar, the missing-extra error) and
of L{pygmy.cli.plot} (a valid PNG).  The runs against real processes are in
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
from pygmy.cli import crash, load, load_progress, load_report, loadgen, plot
from pygmy.cli.client import Frontend, UsageError
from pygmy.cli.loadgen import Request, Sample, percentile, summarise, timeline

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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


# Summaries


def samples_of(operation, statuses_and_seconds):
    return [Sample(operation, status, seconds, float(i)) for i, (status, seconds) in enumerate(statuses_and_seconds)]


def test_summarise_counts_errors_by_status_and_latency():
    buys = samples_of("buy", [(200, 0.010), (200, 0.020), (409, 0.030), (503, 0.040), (0, 0.100)])
    lookups = samples_of("lookup", [(200, 0.001), (200, 0.002), (200, 0.003), (200, 0.004)])
    summary = summarise(buys + lookups, seconds=2.0)
    assert list(summary) == ["buy", "lookup"]
    buy = summary["buy"]
    assert (buy["count"], buy["ok"], buy["errors"]) == (5, 2, {"409": 1, "503": 1, "no answer": 1})
    assert buy["rps"] == pytest.approx(2.5)
    assert buy["mean"] == pytest.approx(0.040)
    assert buy["p50"] == pytest.approx(0.030)
    assert buy["p90"] == pytest.approx(0.076)  # rank 3.6: 0.040 + 0.6 * 0.060
    assert buy["p99"] == pytest.approx(0.0976)  # rank 3.96
    assert buy["max"] == pytest.approx(0.100)
    lookup = summary["lookup"]
    assert (lookup["count"], lookup["ok"], lookup["errors"], lookup["rps"]) == (4, 4, {}, 2.0)
    assert (lookup["p50"], lookup["p90"], lookup["p99"]) == pytest.approx((0.0025, 0.0037, 0.00397))


def test_overall_and_empty_runs():
    every = samples_of("buy", [(200, 0.010), (503, 0.030)]) + samples_of("lookup", [(200, 0.002)])
    total = loadgen.overall(every, 1.0)
    assert (total["count"], total["ok"], total["errors"], total["max"]) == (3, 2, {"503": 1}, 0.030)
    assert total["p50"] == pytest.approx(0.010)
    assert loadgen.overall([], 1.0) is None
    assert summarise([], 1.0) == {}
    assert summarise(every, 0)["buy"]["rps"] == 0.0


def test_timeline_slices_by_send_time():
    found = [Sample("x", 200, 0.01, 0.1), Sample("x", 503, 0.02, 0.2), Sample("x", 200, 0.05, 1.1)]
    rows = timeline(found, 0.5, until=1.5)
    assert [r["start"] for r in rows] == [0.0, 0.5, 1.0, 1.5]
    assert [(r["count"], r["errors"]) for r in rows] == [(2, 1), (0, 0), (1, 0), (0, 0)]
    assert rows[0]["rps"] == 4.0 and rows[0]["p50"] == pytest.approx(0.015) and rows[0]["max"] == 0.02
    assert rows[1]["p50"] is None
    assert timeline([], 1.0) == [{"start": 0.0, "count": 0, "errors": 0, "rps": 0.0, "p50": None, "max": None}]
    with pytest.raises(ValueError):
        timeline(found, 0)


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


SAMPLES = samples_of("buy", [(200, 0.050), (200, 0.060), (409, 0.010), (0, 10.0)]) + samples_of(
    "lookup", [(200, 0.002), (200, 0.003), (200, 0.004), (503, 0.5)]
)


def render(renderable, width=120) -> str:
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(renderable)
    return out.getvalue()


def test_summary_table_has_a_row_per_operation_errors_by_status_and_a_total():
    text = render(load_report.summary_table(summarise(SAMPLES, 2.0), loadgen.overall(SAMPLES, 2.0)))
    lines = [line.split() for line in text.splitlines() if line.strip()]
    assert lines[0] == [
        "operation",
        "requests",
        "ok",
        "409",
        "503",
        "no",
        "answer",
        "req/s",
        "mean",
        "p50",
        "p90",
        "p99",
        "max",
    ]
    rows = {line[0]: line[1:] for line in lines if line[0] in ("buy", "lookup", "all")}
    assert rows["buy"] == ["4", "2", "1", "0", "1", "2.0", "2530.00", "55.00", "7018.00", "9701.80", "10000.00"]
    assert rows["lookup"][:6] == ["4", "3", "0", "1", "0", "2.0"]
    assert rows["all"][:5] == ["8", "5", "1", "1", "1"]


def test_summary_table_without_errors_has_one_errors_column():
    found = samples_of("lookup", [(200, 0.001), (200, 0.003)])
    text = render(load_report.summary_table(summarise(found, 1.0), loadgen.overall(found, 1.0)))
    assert text.split()[:4] == ["operation", "requests", "ok", "errors"]
    assert "all" not in text.split()  # no total row for a single operation


def test_json_document_is_the_raw_summary():
    chosen = load.Settings(url="http://f", clients=3, crash="catalog", crash_at=1.0, seed=5)
    events = [crash.Event(1.0, "kill -9 catalog:A (primary, pid 9)"), crash.Event(1.2, "catalog: new primary B")]
    found = json.loads(json.dumps(load_report.document(chosen, 2.0, SAMPLES, events, None)))
    assert (found["url"], found["clients"], found["seconds"], found["cache"], found["seed"]) == (
        "http://f",
        3,
        2.0,
        True,
        5,
    )
    assert found["operations"]["buy"]["errors"] == {"409": 1, "no answer": 1}
    assert found["operations"]["lookup"]["p50"] == pytest.approx(0.0035)
    assert found["all"]["count"] == 8
    assert found["crash"]["events"][0] == {"at": 1.0, "what": "kill -9 catalog:A (primary, pid 9)"}
    assert found["crash"]["error"] is None and len(found["crash"]["timeline"]) == 9
    assert "crash" not in load_report.document(load.Settings(url="u"), 1.0, SAMPLES, [], None)


def test_report_prints_headline_table_and_timeline():
    from rich.console import Console

    chosen = load.Settings(url="http://f", clients=2, duration=1.0, no_cache=True, seed=4)
    out = io.StringIO()
    load_report.report(Console(file=out, width=120), chosen, 1.0, SAMPLES, [crash.Event(0.5, "kill -9 catalog:A")])
    text = out.getvalue()
    assert text.splitlines()[0] == (
        "pygmy load: http://f, 2 clients, 1.0 s, mix lookup=6 search=3 buy=1, "
        "cache bypassed (Cache-Control: no-cache), seed 4"
    )
    assert "failover timeline:" in text and "0.50s  kill -9 catalog:A" in text
    assert load_report.NOTE + "\n" in text
    assert "1 client, " in load_report.headline(load.Settings(url="u", clients=1), 1.0)


def test_progress_bar_shows_requests_rate_and_errors():
    from rich.console import Console

    out = io.StringIO()
    clock = Clock()
    tally = load_progress.Tally()
    bar = load_progress.ProgressBar(
        Console(file=out, force_terminal=True, width=120), load.Settings(url="u", duration=4.0), tally, clock
    )
    bar.start()
    for sample in SAMPLES:
        tally(sample)
    clock.advance(2.0)
    bar.tick()
    bar.stop()
    text = out.getvalue()
    assert "8 requests" in text and "4 req/s" in text and "3 errors" in text and "50%" in text
    quiet = io.StringIO()
    bar = load_progress.ProgressBar(
        Console(file=quiet, force_terminal=False), load.Settings(url="u", duration=4.0), tally, clock
    )
    bar.start()
    bar.stop()
    assert quiet.getvalue() == ""  # no bar when stderr is not a terminal


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


# The plot


def check_png(path: Path, smallest=5_000, largest=200_000) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert smallest < len(data) < largest, len(data)


def test_plot_writes_a_png_of_the_distributions(tmp_path):
    path = tmp_path / "load.png"
    plot.draw(path, SAMPLES, "pygmy load: a title, long enough, to be wrapped " * 3)
    check_png(path)


def test_plot_with_a_crash_adds_the_timeline(tmp_path):
    import random

    rng = random.Random(1)
    many = [
        Sample(rng.choice(["lookup", "search", "buy"]), 503 if 2.0 < at < 2.3 else 200, rng.uniform(0.001, 0.08), at)
        for at in (i / 200 for i in range(1200))
    ]
    events = [
        (2.0, "kill -9 catalog:A (primary, pid 1)"),
        (2.3, "catalog: new primary B"),
        (4.0, "restart catalog:A"),
        (5.5, "catalog:A back in the view (backup of B)"),
    ]
    path = tmp_path / "crash.png"
    plot.draw(path, many, "pygmy load --crash catalog", events, 6.0)
    check_png(path)
    plain = tmp_path / "plain.png"
    plot.draw(plain, many, "pygmy load", (), 6.0)
    assert path.stat().st_size > plain.stat().st_size  # the timeline panels are there
    assert plot._wrap("a, b, c", width=3) == "a,\nb,\nc"
