"""
Unit tests of what a run of the load generator becomes: the summaries and
time slices of its samples (L{pygmy.cli.loadgen}), C{pygmy load}'s table,
JSON document, report and progress bar (L{pygmy.cli.load_report},
L{pygmy.cli.load_progress}), and L{pygmy.cli.plot} (a valid PNG, with and
without a crash's timeline).  The percentiles, L{drive} and the rest of
C{pygmy load} are in C{tests/unit/test_loadgen.py}.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from twisted.internet.task import Clock

from pygmy.cli import crash, load, load_progress, load_report, loadgen, plot
from pygmy.cli.loadgen import Sample, summarise, timeline

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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


# The report


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
