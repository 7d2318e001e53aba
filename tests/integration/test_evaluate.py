"""
C{pygmy evaluate --quick} end to end: refused while the cluster is down,
then run against a cluster that C{pygmy up} started in a temporary
directory (kills and restarts included), its report, plots and JSON read
back; then C{pygmy down}, with every pid gone.

Every process is stopped by its pid even if a step fails: C{pygmy down}
first, then SIGKILL for any pid still alive that any pid file ever named.
"""

from __future__ import annotations

import json

import pytest

from pygmy.cli import launcher
from pygmy.testing import get_json, run_pygmy
from tests.integration import test_cli

pytestmark = pytest.mark.integration
#: The fixture of test_cli.py: a config.ini on free ports, and a certain stop of what runs from it.
started = test_cli.started
PNG = b"\x89PNG\r\n\x1a\n"


def sane(figures: dict) -> bool:
    """Latencies of an operation that can be true: above 0, ordered, under the request timeout."""
    return figures["count"] > 0 and 0 < figures["p50"] <= figures["p95"] <= figures["p99"] < 10


def test_evaluate_quick_against_a_cluster_of_pygmy_up(started, tmp_path):
    config, out = str(started.path), tmp_path / "report"
    refused = run_pygmy("evaluate", "--config", config, "--out", str(out), "--quick")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "not running" in refused.stderr and f"pygmy up --config {config}" in refused.stderr
    assert not out.exists()

    done = run_pygmy("up", "--config", config)
    assert done.returncode == 0, done.stdout + done.stderr
    started.note()
    done = run_pygmy("evaluate", "--config", config, "--out", str(out), "--quick", "--json", "--seed", "5", timeout=240)
    started.note()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[1/19] (1) response time: 1 client, cache on" in done.stderr
    assert done.stderr.count("s] kill -9 ") == 3 and done.stderr.count("back in the in-sync set") == 3

    names = sorted(p.name for p in out.iterdir())
    plots = ["consistency.png", "fault-catalog-backup.png", "fault-catalog-primary.png", "fault-order-primary.png"]
    assert names == sorted([*plots, "latency.png", "report.json", "report.md", "report.rst"])
    for name in plots + ["latency.png"]:
        assert (out / name).read_bytes()[:8] == PNG
    report = (out / "report.md").read_text()
    assert report.startswith("# Pygmy evaluation") and "FAILED" not in report
    for line in done.stdout.splitlines():
        assert line.startswith("wrote ")

    doc = json.loads((out / "report.json").read_text())
    assert all(check["ok"] for check in doc["checks"]), doc["checks"]
    assert [(s["clients"], s["cache"]) for s in doc["response_time"]] == [
        *((n, mode) for n in (1, 3, 5, 9) for mode in ("on", "bypass")),
        *((n, "off") for n in (1, 3, 5, 9)),
    ]
    for step in doc["response_time"]:
        assert set(step["operations"]) == {"search", "lookup", "buy"} and all(map(sane, step["operations"].values()))
    assert doc["cache_off"]["capacity"] == 0 and doc["cache_on"]["capacity"] == started.config.frontend.cache_size
    for run in ("on", "off", "on_again"):
        assert all(map(sane, doc["consistency"][run]["operations"].values()))
    invalidation = doc["consistency"]["invalidation"]
    assert invalidation["counters"]["misses"] >= invalidation["cycles"] == 20
    assert invalidation["counters"]["hits"] > 0

    timeout = started.config.cluster.heartbeat_timeout
    assert [(f["service"], f["role"]) for f in doc["faults"]] == [
        ("catalog", "primary"),
        ("order", "primary"),
        ("catalog", "backup"),
    ]
    for fault in doc["faults"]:
        assert fault["error"] == "" and fault["requests"] > 0
        assert 0 < fault["detect_seconds"] < 3 * timeout + 1, fault
        assert fault["view_after"]["view"] > fault["view_before"]["view"]
        assert fault["target"].split(":")[1] not in [fault["view_after"]["primary"], *fault["view_after"]["backups"]]
        assert 0 < fault["start_seconds"] and 0 <= fault["catchup_seconds"] < 10
    for service, seen in doc["checksums"].items():
        states = {(r["applied_seq"], r["checksum"]) for r in seen["replicas"].values()}
        assert seen["agree"] and len(states) == 1 and len(seen["replicas"]) == 2, service

    # Left as found: the front end back on its own config, every process up.
    status, body = get_json(started.url + "/status")
    assert status == 200 and body["cache"]["capacity"] == started.config.frontend.cache_size
    for process in launcher.processes(started.config):
        assert launcher.running_pid(process) is not None, process.name

    done = run_pygmy("down", "--config", config)
    assert done.returncode == 0, done.stderr
    for pid, process in started.pids.items():
        assert not launcher.runs(process, pid), f"{process.name} (pid {pid}) still runs"
    assert not list(started.config.cluster.data_dir.glob("*.pid"))
