"""
Unit tests of L{pygmy.cli.lifecycle}, the one way to kill and restart a
process under load: real short-lived child processes killed by pid (each
test stops every child it starts), a L{Clock} for the waits, and a fake
HTTP client for the readiness probes.  Then C{pygmy load --crash}
(L{pygmy.cli.crash}) and C{pygmy chaos} (L{pygmy.cli.chaos_faults}) are
checked to go through it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from random import Random

import pytest
from treq.testing import StubTreq
from twisted.internet.defer import ensureDeferred, succeed
from twisted.internet.task import Clock
from twisted.web.resource import Resource

from pygmy.cli import chaos_faults, crash, launcher, lifecycle
from pygmy.cli.chaos_cluster import Abort, Context
from pygmy.cli.client import Frontend
from pygmy.cli.invariants import Fault
from pygmy.config import load
from tests.fakes import config_text


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "config.ini"
    path.write_text(config_text(data_dir="state"))
    found = load(path)
    found.cluster.data_dir.mkdir()
    return found


@pytest.fixture
def children():
    """Start children whose command line looks like a replica's twistd; all are killed and reaped after."""
    started = []

    def start(role="catalog", replica="A", seconds=30):
        code = f"import time; time.sleep({seconds})"
        child = subprocess.Popen([sys.executable, "-c", code, f"pygmy-{role}", "--replica", replica])
        started.append(child)
        # Popen returns once the exec has begun, which may be before the
        # kernel shows the new command line in /proc: wait for it.
        cmdline = Path(f"/proc/{child.pid}/cmdline")
        deadline = time.monotonic() + 5
        while f"pygmy-{role}".encode() not in cmdline.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.005)
        return child

    yield start
    for child in started:
        if child.poll() is None:
            child.kill()
        child.wait()


def process_of(config, name="catalog:A") -> launcher.Process:
    return launcher.processes(config, [name])[0]


def run_until_fired(clock: Clock, deferred, step=0.05, limit=10.0):
    """Advance C{clock} (and let real time pass) until C{deferred} fires; its result or failure."""
    results = []
    deferred.addBoth(results.append)
    deadline = time.monotonic() + limit
    while not results:
        assert time.monotonic() < deadline, "the Deferred never fired"
        clock.advance(step)
        time.sleep(0.005)
    return results[0]


class FakeResponse:
    def __init__(self, code):
        self.code = code

    def content(self):
        return succeed(b"{}")


class FakeHTTP:
    """A treq-like client answering every request with C{code}; records the URLs."""

    def __init__(self, code=200):
        self.code, self.urls = code, []

    def request(self, method, url, **kwargs):
        self.urls.append(url)
        return succeed(FakeResponse(self.code))


# kill and gone


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_kill_signals_the_pid_of_the_pid_file_and_gone_waits_for_its_exit(config, children, sig):
    child = children()
    process = process_of(config)
    process.pidfile.write_text(str(child.pid))
    assert lifecycle.kill(process, sig) == child.pid
    clock = Clock()
    assert run_until_fired(clock, ensureDeferred(lifecycle.gone(clock, child.pid))) is None
    assert child.wait(5) == -sig


def test_kill_refuses_a_pid_that_is_not_the_process(config, children):
    child = children(replica="A")
    catalog_b = process_of(config, "catalog:B")
    catalog_b.pidfile.write_text(str(child.pid))  # alive, but not catalog:B's twistd
    with pytest.raises(lifecycle.NotRunning, match=rf"no live pid in {catalog_b.pidfile}"):
        lifecycle.kill(catalog_b)
    with pytest.raises(lifecycle.NotRunning):
        lifecycle.kill(process_of(config, "catalog:A"))  # no pid file at all
    assert child.poll() is None


def test_gone_gives_up_on_a_pid_that_lives_on(children):
    child = children()
    clock = Clock()
    failure = run_until_fired(clock, ensureDeferred(lifecycle.gone(clock, child.pid, timeout=1.0)), step=0.5)
    assert failure.check(lifecycle.Timeout)
    assert str(failure.value) == f"pid {child.pid} did not exit within 1s"
    assert child.poll() is None and clock.getDelayedCalls() == []


def test_poll_takes_functions_and_coroutine_functions():
    clock = Clock()
    answers = iter([0, 0, "yes"])
    assert run_until_fired(clock, ensureDeferred(lifecycle.poll(clock, lambda: next(answers), 5.0))) == "yes"

    async def never():
        return None

    assert run_until_fired(clock, ensureDeferred(lifecycle.poll(clock, never, 0.2)), step=0.1) is None


# restart and ready


def test_ready_waits_for_a_200_of_the_ready_url(config):
    process, clock, http = process_of(config), Clock(), FakeHTTP(503)
    waiting = ensureDeferred(lifecycle.ready(clock, process, os.getpid(), http, 0, 1.0))
    failure = run_until_fired(clock, waiting, step=0.25)
    assert failure.check(lifecycle.Timeout)
    assert str(failure.value) == f"{process.ready_url} did not answer within 1s"
    assert set(http.urls) == {"http://127.0.0.1:8081/status"}
    ok = ensureDeferred(lifecycle.ready(clock, process, os.getpid(), FakeHTTP(200), 0, 1.0))
    assert run_until_fired(clock, ok) is None


def test_ready_stops_at_an_exit_or_a_listen_failure(config):
    process, clock = process_of(config), Clock()
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    failure = run_until_fired(clock, ensureDeferred(lifecycle.ready(clock, process, finished.pid, FakeHTTP(), 0, 5)))
    assert failure.check(lifecycle.StartError)
    assert str(failure.value) == f"catalog:A (pid {finished.pid}) exited while starting"
    process.logfile.write_text("old line: cannot listen on 1\n")
    offset = process.logfile.stat().st_size
    with process.logfile.open("a") as log:
        log.write("2024 [-#critical] catalog A: cannot listen on 127.0.0.1:8081: in use\n")
    waiting = ensureDeferred(lifecycle.ready(clock, process, os.getpid(), FakeHTTP(), offset, 5))
    failure = run_until_fired(clock, waiting)
    assert str(failure.value) == "catalog:A failed to start: catalog A: cannot listen on 127.0.0.1:8081: in use"


def test_restart_runs_pygmy_ups_command_then_waits_until_it_answers(config, children, monkeypatch):
    process, clock, http = process_of(config), Clock(), FakeHTTP(200)
    process.pidfile.write_text("999999999")  # stale: removed before the start
    ran = []

    def twistd(executable, args, env, path, reactor):
        ran.append([executable, *args])
        assert not process.pidfile.exists() and path == str(process.data_dir)
        process.pidfile.write_text(str(children().pid))  # what the daemonised twistd leaves
        return succeed((b"", b"", 0))

    monkeypatch.setattr("twisted.internet.utils.getProcessOutputAndValue", twistd)
    pid = run_until_fired(clock, ensureDeferred(lifecycle.restart(clock, config, process, http)))
    assert ran == [launcher.command(config, process)]
    assert pid == launcher.read_pid(process) and http.urls[-1] == process.ready_url


def test_restart_reports_a_failing_twistd(config, monkeypatch):
    fails = lambda *args, **kwargs: succeed((b"", b"Another twistd server is running\nmore\n", 1))  # noqa: E731
    monkeypatch.setattr("twisted.internet.utils.getProcessOutputAndValue", fails)
    clock = Clock()
    failure = run_until_fired(clock, ensureDeferred(lifecycle.restart(clock, config, process_of(config), FakeHTTP())))
    assert failure.check(lifecycle.StartError)
    assert str(failure.value) == "twistd exited with 1: Another twistd server is running"


# load --crash and chaos go through it


@pytest.fixture
def recorded(monkeypatch):
    """lifecycle's kill, gone and restart replaced by recorders; C{on} runs hooks by call."""
    calls, on = [], {}

    def kill(process, sig=signal.SIGKILL):
        calls.append(("kill", process.name, sig))
        on.get("kill", lambda: None)()
        return 4242

    async def gone(clock, pid, timeout=lifecycle.GONE_TIMEOUT):
        calls.append(("gone", pid))

    async def restart(reactor, config, process, http, timeout=lifecycle.READY_TIMEOUT):
        calls.append(("restart", process.name))
        on.get("restart", lambda: None)()
        return 4343

    monkeypatch.setattr(lifecycle, "kill", kill)
    monkeypatch.setattr(lifecycle, "gone", gone)
    monkeypatch.setattr(lifecycle, "restart", restart)
    monkeypatch.setattr(launcher, "running_pid", lambda process: 4242)
    return calls, on


class Status(Resource):
    """A front end's C{GET /status} of the catalog, from a dict the test changes."""

    isLeaf = True

    def __init__(self, view):
        super().__init__()
        self.view = view

    def render_GET(self, request):
        return json.dumps({"services": {"catalog": self.view}}).encode()


def test_load_crash_kills_and_restarts_through_lifecycle(config, recorded):
    calls, on = recorded
    view = {"primary": "A", "backups": ["B"]}
    on["kill"] = lambda: view.update(primary="B", backups=[])
    on["restart"] = lambda: view.update(backups=["A"])
    clock = Clock()
    api = Frontend(StubTreq(Status(view)), "http://f", None)
    crashing = crash.Crash(clock, api, config, "catalog", lambda line: None)
    assert run_until_fired(clock, ensureDeferred(crashing.run(1.0, 2.0)), step=0.25) is None
    assert crashing.error is None, crashing.events
    assert calls == [("kill", "catalog:A", signal.SIGKILL), ("gone", 4242), ("restart", "catalog:A")]
    assert [e.what for e in crashing.events] == [
        "kill -9 catalog:A (primary, pid 4242)",
        "catalog: new primary B",
        "restart catalog:A",
        "catalog:A back in the view (backup of B)",
    ]


class FakeCluster:
    """What L{chaos_faults.FaultSchedule} asks of the cluster, answered at once."""

    url = "http://f"

    async def settled(self, service):
        return {"primary": "A", "backups": ["B"]}

    async def poll(self, timeout, failure, probe, *args):
        return True

    async def new_primary(self, service, old):
        return True


def test_chaos_kills_and_restarts_through_lifecycle(config, recorded):
    calls, _ = recorded
    clock = Clock()
    run = Context(clock, config, FakeHTTP(), Random(1), lambda line: None, started=0.0)
    schedule = chaos_faults.FaultSchedule(run, FakeCluster(), 9.0)
    fault = Fault("catalog", "primary")
    assert run_until_fired(clock, ensureDeferred(schedule.crash(fault, 2.0)), step=0.25) is None
    assert calls == [("kill", "catalog:A", signal.SIGKILL), ("gone", 4242), ("restart", "catalog:A")]
    assert (fault.target, fault.pid) == ("catalog:A", 4242)
    assert fault.killed <= fault.failover <= fault.restarted <= fault.ready <= fault.rejoined
    assert fault.restarted - fault.killed >= 2.0


def test_chaos_reports_a_failed_restart_with_the_log(config, recorded, monkeypatch):
    async def refuses(*args, **kwargs):
        raise lifecycle.StartError("twistd exited with 1: no")

    monkeypatch.setattr(lifecycle, "restart", refuses)
    process_of(config).logfile.write_text("the last words\n")
    clock = Clock()
    run = Context(clock, config, FakeHTTP(), Random(1), lambda line: None, started=0.0)
    failure = run_until_fired(
        clock,
        ensureDeferred(chaos_faults.FaultSchedule(run, FakeCluster(), 9.0).crash(Fault("catalog", "primary"), 1.0)),
    )
    assert failure.check(Abort)
    assert str(failure.value) == "restart failed: twistd exited with 1: no\nthe last words"
