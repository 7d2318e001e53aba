"""
Unit tests of C{pygmy evaluate}'s report (L{pygmy.cli.evaluate_report},
L{pygmy.cli.evaluate_text}, L{pygmy.cli.evaluate_plot}) from fixed
measurements, its checks, and its options (L{pygmy.cli.evaluate_options});
no sockets, no processes.
"""

from __future__ import annotations

import argparse
import copy
import io
import json

import pytest

from pygmy.cli import evaluate, evaluate_options, evaluate_plot, evaluate_report
from pygmy.cli.client import UsageError
from pygmy.cli.evaluate_text import blocks
from pygmy.config import load
from tests.fakes import config_text


def figures(p50: float, count: int = 100, errors=None) -> dict:
    """The summary of one operation (latencies in seconds), as L{pygmy.cli.loadgen.summarise} gives it."""
    errors = errors or {}
    return {
        "count": count,
        "ok": count - sum(errors.values()),
        "errors": errors,
        "rps": count / 2.0,
        "mean": p50 * 1.1,
        "p50": p50,
        "p90": p50 * 1.8,
        "p95": p50 * 2,
        "p99": p50 * 3,
        "max": p50 * 5,
    }


#: p50 of search, lookup and buy (s) per mode of question 1, times the clients.
BASE = {"on": (0.001, 0.0008, 0.012), "bypass": (0.002, 0.0021, 0.012), "off": (0.003, 0.0034, 0.024)}


def step(clients: int, mode: str) -> dict:
    search, lookup, buy = (p50 * clients for p50 in BASE[mode])
    operations = {"buy": figures(buy, 10), "lookup": figures(lookup, 60), "search": figures(search, 30)}
    hits = 0 if mode != "on" else 40 * clients
    return {
        "clients": clients,
        "cache": mode,
        "seconds": 2.0,
        "operations": operations,
        "all": figures(lookup, 100),
        "counters": {"hits": hits, "misses": 10, "invalidations": 5, "refused_fills": 0},
        "load_average": 1.5,
    }


def fault(service: str, role: str, target: str, killed: float = 1.0) -> dict:
    before = {"view": 3, "primary": "A", "backups": ["B"]}
    after = {"view": 4, "primary": "B" if role == "primary" else "A", "backups": []}
    return {
        "service": service,
        "role": role,
        "target": target,
        "pid": 4242,
        "view_before": before,
        "view_after": after,
        "killed": killed,
        "detected": killed + 0.04,
        "restarted": killed + 3.0,
        "ready": killed + 3.9,
        "rejoined": killed + 4.0,
        "detect_seconds": 0.04,
        "start_seconds": 0.9,
        "catchup_seconds": 0.1,
        "restart_to_in_sync_seconds": 1.0,
        "requests": 900,
        "failed": 0,
        "errors": {},
        "failed_outside": 0,
        "load_seconds": 9.0,
        "rejoined_under_load": True,
        "operations": {"lookup": figures(0.002)},
        "error": "",
    }


def status(seq: int, checksum: str) -> dict:
    return {"applied_seq": seq, "checksum": checksum}


def measured() -> dict:
    """What L{pygmy.cli.evaluate.Evaluation.run} returns, fixed."""
    writes = {"buy": figures(0.011, 20), "update": figures(0.005, 20)}
    return {
        "started": 1_800_000_000.0,
        "seconds": 123.4,
        "cache_on": {"capacity": 1000, "hits": 0, "misses": 0},
        "cache_off": {"capacity": 0, "hits": 0, "misses": 0},
        "cache_off_config": "/srv/var/evaluate-cache-off.ini",
        "response_time": [step(n, mode) for n in (1, 3, 5, 9) for mode in ("on", "bypass", "off")],
        "consistency": {
            "on": {"operations": writes, "seconds": 1.0, "counters": {}, "load_average": 1.0},
            "off": {"operations": copy.deepcopy(writes), "seconds": 1.0, "counters": {}, "load_average": 1.0},
            "on_again": {"operations": copy.deepcopy(writes), "seconds": 1.0, "counters": {}, "load_average": 1.0},
            "invalidation": {
                "cycles": 20,
                "operations": {"update": figures(0.0042, 20), "miss": figures(0.002, 20), "hit": figures(0.00065, 20)},
                "counters": {"hits": 20, "misses": 20, "invalidations": 40, "refused_fills": 0},
            },
        },
        "faults": [
            fault("catalog", "primary", "catalog:A"),
            fault("order", "primary", "order:A"),
            fault("catalog", "backup", "catalog:B"),
        ],
        "checksums": {
            "catalog": {"replicas": {"A": status(50, "ab" * 32), "B": status(50, "ab" * 32)}, "agree": True},
            "order": {"replicas": {"A": status(70, "cd" * 32), "B": status(70, "cd" * 32)}, "agree": True},
        },
    }


MACHINE = {
    "cores": 2,
    "cpu": "Test CPU",
    "memory_gib": 8.0,
    "system": "Linux-test",
    "python": "CPython 3.11.7",
    "versions": {"pygmy": "0.1.0", "twisted": "26.1.0"},
    "load_average": [0.5, 0.4, 0.3],
}


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "config.ini"
    path.write_text(config_text())
    return load(path)


def chosen(**options) -> evaluate_options.Settings:
    return evaluate_options.Settings(config="config.ini", out="out", seed=7, argv=("--out", "out"), **options)


@pytest.fixture
def doc(config):
    return evaluate_report.document(chosen(note="Shared with other test runs."), config, MACHINE, measured())


# The document and its checks


def test_the_document_holds_the_machine_the_config_and_every_figure(doc):
    assert doc["command"] == "pygmy evaluate --out out"
    assert doc["started"] == "2027-01-15 08:00:00 UTC"
    assert doc["machine"]["cores"] == 2 and len(doc["machine"]["load_average_after"]) == 3
    assert doc["config"]["cache_size"] == 1000 and doc["config"]["replicas"] == {
        "catalog": ["A", "B"],
        "order": ["A", "B"],
    }
    assert doc["settings"]["clients"] == [1, 3, 5, 9] and doc["settings"]["kill_at_seconds"] == 1.0
    assert len(doc["response_time"]) == 12 and len(doc["faults"]) == 3
    json.dumps(doc)  # all of it is JSON


def test_the_command_line_is_quoted_and_the_note_elided():
    argv = ("--out", "my dir", "--note", "shared, busy", "--quick", "--note=again")
    assert evaluate_report.command_line(argv) == "pygmy evaluate --out 'my dir' --note ... --quick --note=..."


def test_every_check_holds_for_a_good_run(doc):
    assert [c["ok"] for c in doc["checks"]] == [True] * 6
    assert all(c["detail"] == "" for c in doc["checks"])


def failing(doc: dict) -> dict[str, str]:
    """The checks that fail, by their first words, with their detail."""
    return {" ".join(c["what"].split()[:3]): c["detail"] for c in evaluate_report.checks(doc) if not c["ok"]}


def test_an_undetected_kill_fails_two_checks(doc):
    doc["faults"][1].update(detected=None, rejoined=None, error="no new order view without A within 30 s")
    assert failing(doc) == {
        "every kill -9": "order primary: no new order view without A within 30 s",
        "every killed replica": "order:A: no new order view without A within 30 s",
    }


def test_replicas_that_disagree_fail_the_checksum_check(doc):
    doc["checksums"]["order"]["replicas"]["B"] = None
    doc["checksums"]["order"]["agree"] = False
    assert failing(doc) == {"the replicas of": "order: A 70, B no answer"}


def test_a_5xx_or_no_answer_outside_the_kills_fails_but_a_409_does_not(doc):
    doc["response_time"][4]["operations"]["buy"]["errors"] = {"409": 3}
    doc["consistency"]["on_again"]["operations"]["update"]["errors"] = {"409": 1}
    assert failing(doc) == {}
    doc["response_time"][4]["operations"]["buy"]["errors"] = {"503": 2, "no answer": 1}
    doc["faults"][2]["failed_outside"] = 4
    assert failing(doc) == {
        "no request failed": "3 clients, cache bypass: buy {'503': 2, 'no answer': 1}; catalog:B: 4 outside the kill"
    }


def test_a_failed_request_during_a_kill_is_reported_but_is_no_failed_check(doc):
    doc["faults"][0].update(failed=2, errors={"503": 2}, requests=800)
    assert failing(doc) == {}
    text = evaluate_report.markdown(blocks(doc, {}))
    assert "| catalog:A (catalog primary) | 0.040 | 2 of 800 |" in text
    assert "- catalog:A: 503 2" in text


def test_the_cache_checks(doc):
    for one in doc["response_time"]:
        if one["cache"] == "on":
            one["counters"]["hits"] = 0
    doc["cache_off"]["capacity"] = 1000
    doc["response_time"][2]["counters"]["hits"] = 5  # an "off" step
    assert failing(doc) == {
        "the cache answered": "no hit counted with the cache on; with cache_size = 0: capacity 1000, 5 hits"
    }


def test_a_lookup_after_an_invalidation_must_be_a_miss(doc):
    doc["consistency"]["invalidation"]["counters"].update(misses=17, hits=23)
    assert failing(doc) == {"every lookup after": "17 misses counted for 20 lookups after an invalidation"}


# The report


def test_the_markdown_report_states_every_figure_with_its_unit(doc):
    text = evaluate_report.markdown(blocks(doc, {"latency": "latency.png", "catalog-primary": "fault-c.png"}))
    assert text.startswith("# Pygmy evaluation\n")
    for heading in ("## The machine", "## The cluster", "## Checks", "## 1. Response time", "## 2. The cost", "## 3."):
        assert f"\n{heading}" in text
    assert "| CPU | Test CPU, 2 cores |" in text and "CPython 3.11.7" in text and "twisted 26.1.0" in text
    assert "Shared with other test runs." in text and "[0.5, 0.4, 0.3] before the run" in text
    # lookup at 3 clients: p50 / p95 / p99 per mode, in ms
    assert "| 3 | 2.40 / 4.80 / 7.20 | 6.30 / 12.60 / 18.90 | 10.20 / 20.40 / 30.60 |" in text
    assert "### lookup: latency p50 / p95 / p99 (ms)" in text
    assert "| 9 | 50 | 50 | 50 | 97 % | 1.5 / 1.5 / 1.5 |" in text  # req/s, hit ratio, load average
    assert "9 clients, lookup: median 7.20 ms with the cache, 30.60 ms without (4.25 times)" in text
    assert "| buy | cache off (`cache_size = 0`) | 20 | 11.00 | 22.00 | 33.00 | 12.10 |" in text
    assert "| the same lookup again (a hit) | 20 | 0.65 | 1.30 | 1.95 | 0.72 |" in text
    assert "20 hits, 20 misses, 40 invalidations and 0 refused fills" in text
    assert "| order:A (order primary) | 0.040 | 0 of 900 | 0.90 | 0.10 | 1.00 | 3 (A) -> 4 (B) |" in text
    assert "| catalog | B | 50 | `abababababababab` | yes |" in text
    assert "![latency against clients, cache on and off](latency.png)" in text
    assert "(fault-c.png)" in text and "consistency.png" not in text  # only the plots that exist
    assert "- ok: every kill -9 was detected" in text


def test_the_restructuredtext_report_has_the_same_blocks(doc):
    found = blocks(doc, {"latency": "latency.png"})
    text = evaluate_report.restructuredtext(found, images="images/evaluation/")
    assert text.startswith("================\nPygmy evaluation\n================\n")
    assert "\nThe machine\n===========\n" in text and "\nlookup: latency p50 / p95 / p99 (ms)\n----" in text
    assert ".. image:: images/evaluation/latency.png\n   :alt: latency against clients, cache on and off" in text
    assert "   * - clients\n     - cache on\n     - bypass (``Cache-Control: no-cache``)\n" in text
    assert "`" not in text.replace("``", "")  # every inline literal doubled
    separators = [line for line in evaluate_report.markdown(found).splitlines() if line.startswith("| --- |")]
    assert text.count(".. list-table::") == len(separators) == 9


def test_the_writers_on_small_blocks():
    small = [("h2", "Title"), ("p", "a `b` c"), ("list", ["x", "y"]), ("table", ["h", "i"], [[1, ""]])]
    assert evaluate_report.markdown(small) == "## Title\n\na `b` c\n\n- x\n- y\n\n| h | i |\n| --- | --- |\n| 1 |  |\n"
    assert evaluate_report.restructuredtext(small) == (
        "Title\n=====\n\na ``b`` c\n\n* x\n* y\n\n.. list-table::\n   :header-rows: 1\n\n"
        "   * - h\n     - i\n   * - 1\n     - \\\n"
    )


def test_a_quick_run_says_so_and_a_late_rejoin_is_noted(config):
    found = measured()
    found["faults"][2].update(rejoined_under_load=False)
    doc = evaluate_report.document(chosen(quick=True), config, MACHINE, found)
    text = evaluate_report.markdown(blocks(doc, {}))
    assert "(a `--quick` run: too short for figures to rely on)" in text
    assert "- catalog:B: rejoined after the load of its step had ended" in text


def test_the_plots_are_pngs(doc, tmp_path):
    names = evaluate_plot.draw_all(tmp_path, doc, {})
    assert names == {"latency": "latency.png", "consistency": "consistency.png"}
    for name in names.values():
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_write_puts_the_report_and_its_plots_in_the_directory(doc, tmp_path):
    from pygmy.cli.loadgen import Sample

    samples = [Sample("lookup", 200, 0.002, i / 100) for i in range(300)] + [Sample("buy", 503, 0.5, 1.2)]
    out = tmp_path / "new" / "report"
    written = evaluate_report.write(out, doc, {"order-primary": (samples, 3.0, [(1.0, "kill -9 order:A")])})
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["report.md", "report.rst", "latency.png", "consistency.png", "fault-order-primary.png"]
    )
    assert written[:2] == [str(out / "report.md"), str(out / "report.rst")]
    assert (
        "![kill -9 of the order primary: each request and the events](fault-order-primary.png)"
        in (out / "report.md").read_text()
    )


# The options


def parse(*argv: str):
    parser = argparse.ArgumentParser()
    evaluate_options.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_the_full_budget_by_default_and_the_quick_one_with_quick(tmp_path):
    full = evaluate_options.settings(parse("--out", str(tmp_path), "--seed", "3"), ("--out", "x"))
    assert (full.step, full.requests, full.down, full.clients, full.kill_at) == (6.0, 200, 3.0, (1, 3, 5, 9), 1.0)
    assert full.seed == 3 and full.json is None and full.argv == ("--out", "x")
    quick = evaluate_options.settings(parse("--out", str(tmp_path), "--quick", "--json"))
    assert (quick.step, quick.requests, quick.down, quick.kill_at) == (0.6, 20, 1.0, 0.5)
    assert quick.json == str(tmp_path / "report.json")
    given = evaluate_options.settings(
        parse("-o", "o", "--quick", "--step", "2", "--requests", "5", "--clients", "4,2,2")
    )
    assert (given.step, given.requests, given.clients, given.down) == (2.0, 5, (2, 4), 1.0)
    assert evaluate_options.settings(parse("-o", "o", "--json", "-")).json == "-"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--clients", "0,3"], "--clients 0,3: every number must be 1 or more"),
        (["--clients", "1,x"], "--clients 1,x: not a list of whole numbers such as 1,3,5,9"),
        (["--step", "0"], "--step 0: must be a number of seconds above 0"),
        (["--down", "-1"], "--down -1: must be a number of seconds above 0"),
        (["--requests", "2"], "--requests 2: must be 3 or more"),
        (["--mix", "lookup=1,fly=2"], "--mix: unknown operation 'fly'"),
        (["--json", "/no/such/dir/x.json"], "--json /no/such/dir/x.json: no such directory"),
    ],
)
def test_option_errors(argv, message):
    with pytest.raises(UsageError) as caught:
        evaluate_options.settings(parse("--out", "out", *argv))
    assert str(caught.value).startswith(message)


def test_out_must_be_a_directory(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(UsageError, match="exists and is not a directory"):
        evaluate_options.settings(parse("--out", str(tmp_path / "file")))


def test_out_is_required():
    with pytest.raises(SystemExit):
        parse("--quick")


def test_main_refuses_a_bad_config_before_anything_runs(tmp_path):
    err = io.StringIO()
    args = parse("--out", str(tmp_path / "out"), "--config", str(tmp_path / "missing.ini"))
    assert evaluate.main(args, err=err) == 2
    assert err.getvalue().startswith(f"pygmy evaluate: {tmp_path / 'missing.ini'}: cannot read")
    assert not (tmp_path / "out").exists()


def test_main_refuses_bad_options_with_one_line(tmp_path):
    err = io.StringIO()
    assert evaluate.main(parse("--out", str(tmp_path), "--step", "0"), err=err) == 2
    assert err.getvalue() == "pygmy evaluate: --step 0: must be a number of seconds above 0\n"
