"""
C{pygmy up}, C{pygmy chaos} and C{pygmy down} end to end: a cluster of
daemonised twistd processes on free ports, crashed and restarted under load,
with the invariants checked; then stopped, with every pid gone.

Every process is stopped by its pid even if a step fails: C{pygmy down}
first, then SIGKILL for any pid still alive that any pid file ever named.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pygmy.cli import launcher
from pygmy.testing import UP_LINE, UpCluster, run_pygmy, write_config

pytestmark = pytest.mark.integration


@pytest.fixture
def started(tmp_path):
    """A config.ini on free ports, and a guaranteed stop of what runs from it."""
    started = UpCluster(write_config(tmp_path))
    try:
        yield started
    finally:
        started.stop_everything()


def test_up_chaos_down(started):
    config = str(started.path)
    done = run_pygmy("up", "--config", config)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [UP_LINE.match(line) for line in done.stdout.splitlines()]
    assert all(lines) and [m[1] for m in lines] == ["catalog:A", "catalog:B", "order:A", "order:B", "frontend"]
    pids = started.note()
    for match, process in zip(lines, launcher.processes(started.config), strict=True):
        assert int(match[2]) == pids[process.name] and match[3] == process.url
        assert Path(match[4]) == process.logfile and process.logfile.exists()
        assert process.pidfile.parent == started.config.cluster.data_dir
        assert launcher.runs(process, pids[process.name])
        assert launcher.answers(process.ready_url)

    again = run_pygmy("up", "--config", config)
    assert again.returncode != 0 and "already running" in again.stderr

    done = run_pygmy("chaos", "--config", config, "--duration", "6", "--clients", "6", "--seed", "7", timeout=120)
    started.note()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "result: all invariants hold" in done.stdout
    assert done.stdout.count("kill -9 ") >= 6  # progress line and report line per kill

    before = started.note()
    done = run_pygmy("down", "--config", config)
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines()] == [
        "frontend",
        "order:B",
        "order:A",
        "catalog:B",
        "catalog:A",
    ]
    for pid, process in started.pids.items():
        assert not launcher.runs(process, pid), f"{process.name} (pid {pid}) still runs"
    assert before and not list(started.config.cluster.data_dir.glob("*.pid"))


def test_up_fails_cleanly_when_a_port_is_taken(started):
    taken = socket.socket()
    taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    taken.bind(("127.0.0.1", started.config.frontend.port))
    taken.listen()
    try:
        done = run_pygmy("up", "--config", str(started.path))
    finally:
        taken.close()
    started.note()
    assert done.returncode == 1
    first = done.stderr.splitlines()[0]
    assert first.startswith("pygmy up: frontend failed to start: front end HTTP: cannot listen on"), done.stderr
    assert "stopped again: catalog:A, catalog:B, order:A, order:B" in done.stderr
    assert not list(started.config.cluster.data_dir.glob("*.pid"))
    for pid, process in started.pids.items():
        assert not launcher.runs(process, pid)
