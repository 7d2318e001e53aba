"""
Real Pygmy processes for the integration tests and the benchmarks.

A L{Cluster} writes a C{config.ini} with free ports on 127.0.0.1 in a
temporary directory, starts each process with the contract's command
(C{twistd -n --pidfile= pygmy-catalog --config ... --replica A}), waits until
it answers, and stops it by its pid: SIGTERM for a clean stop, SIGKILL for a
crash.  Every process it started is stopped by L{Cluster.stop_all}.  The
readiness checks, log paths and signals are L{pygmy.cli.launcher}'s, the
same as C{pygmy up}'s; only the foreground C{-n} (so a test can reap the
process and see its exit status) is this module's own.

L{UpCluster} is a cluster that C{pygmy up} started instead.  The blocking
probes (L{every_replica_in_view}, L{replica_statuses}, L{in_step},
L{wait_until}) serve the benchmarks as well as the tests' waits.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from pygmy.cli import launcher
from pygmy.cli.launcher import START_TIMEOUT, TWISTD
from pygmy.config import LONE_FRONTEND, load

SECRET = "integration-secret"


def free_ports(count: int) -> list[int]:
    """C{count} distinct TCP ports that were free on 127.0.0.1 a moment ago."""
    sockets, ports = [], []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return ports


def free_pair() -> int:
    """A free port p on 127.0.0.1 with p + 1 free as well (a local etcd's client and peer ports)."""
    for _ in range(100):
        [port] = free_ports(1)
        if port >= 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two free ports in a row on 127.0.0.1")


def write_config(directory: Path, replicas=("A", "B"), frontends=(), coordinator=None, **cluster) -> Path:
    """
    A config.ini in C{directory} for a cluster on free local ports.

    @param frontends: the NAMEs of several C{[frontend:NAME]} sections;
        empty for the lone C{[frontend]}.
    @param coordinator: the keys of C{[coordinator]} (C{etcd}, C{prefix},
        C{lease_ttl}), or C{None} for none.
    @param cluster: keys of C{[cluster]} over the tests' defaults.
    """
    ports = iter(free_ports(2 * max(1, len(frontends)) + 2 * len(replicas)))
    settings = {
        "secret": SECRET,
        "data_dir": "var",
        "heartbeat_interval": "0.2",
        "heartbeat_timeout": "0.6",
        **cluster,
    }
    lines = ["[cluster]"] + [f"{k} = {v}" for k, v in settings.items()]
    for section in [f"frontend:{name}" for name in frontends] or ["frontend"]:
        lines += ["", f"[{section}]", "host = 127.0.0.1", f"port = {next(ports)}", f"heartbeat_port = {next(ports)}"]
    if coordinator is not None:
        lines += ["", "[coordinator]"] + [f"{k} = {v}" for k, v in coordinator.items()]
    for service in ("catalog", "order"):
        for name in replicas:
            lines += ["", f"[{service}:{name}]", "host = 127.0.0.1", f"port = {next(ports)}"]
    Path(directory).mkdir(parents=True, exist_ok=True)
    path = Path(directory) / "config.ini"
    path.write_text("\n".join(lines) + "\n")
    return path


class Cluster:
    """
    The processes of one test cluster.  With C{frontends}, several front
    ends (each its own process, C{--name NAME}, keyed C{frontend:NAME});
    they need a C{coordinator} (C{{"etcd": url}}).

    @ivar config: the parsed config (ports, secret).
    """

    def __init__(self, directory: Path, replicas=("A", "B"), frontends=(), coordinator=None, **cluster):
        self.directory = directory
        self.path = write_config(directory, replicas, frontends, coordinator, **cluster)
        self.config = load(self.path)
        self.processes: dict[str, subprocess.Popen] = {}

    @property
    def url(self) -> str:
        """The (first) front end's base URL."""
        return self.config.frontend.url

    @property
    def frontends(self) -> list[str]:
        """The key of every front end: C{frontend}, or C{frontend:NAME} of several."""
        return [_frontend_key(name) for name in self.config.frontends]

    def frontend_url(self, key: str) -> str:
        """The base URL of the front end C{key} (C{frontend} or C{frontend:NAME})."""
        _, _, name = key.partition(":")
        return self.config.frontends[name or LONE_FRONTEND].url

    def replica_url(self, service: str, name: str) -> str:
        """The base URL of replica C{name} of C{service}."""
        return self.config.replica(service, name).url

    def process(self, key: str) -> launcher.Process:
        """The launcher's L{launcher.Process} of C{key}: its log, its ready URL."""
        role, _, replica = key.partition(":")
        url = self.frontend_url(key) if role == "frontend" else self.replica_url(role, replica)
        return launcher.Process(role, replica or None, url, self.directory)

    def command(self, role: str, replica: str | None = None) -> list[str]:
        """The contract's command line for C{role} (and C{replica}, or a front end's NAME)."""
        command = [TWISTD, "-n", "--pidfile=", f"pygmy-{role}", "--config", str(self.path)]
        if replica is not None:
            command += ["--name" if role == "frontend" else "--replica", replica]
        return command

    def start(self, role: str, replica: str | None = None) -> subprocess.Popen:
        """Start one process and wait until it answers HTTP."""
        key = role if replica is None else f"{role}:{replica}"
        logfile = self.process(key).logfile
        log_start = logfile.stat().st_size if logfile.exists() else 0
        log = open(logfile, "ab")
        process = subprocess.Popen(
            self.command(role, replica),
            cwd=self.directory,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.processes[key] = process
        self._wait_until_up(key, process, log_start)
        return process

    def start_all(self) -> None:
        """Every replica of config.ini, then every front end."""
        for service in ("catalog", "order"):
            for replica in self.config.replicas[service]:
                self.start(service, replica.name)
        for key in self.frontends:
            self.start(*key.split(":"))

    def stop(self, key: str, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Send C{sig} to the process C{key} by its pid and wait for it."""
        process = self.processes.pop(key)
        if process.poll() is None:
            launcher.kill(process.pid, sig)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            launcher.kill(process.pid, signal.SIGKILL)
            return process.wait(timeout)

    def stop_all(self) -> None:
        """Stop every process still running, front end first."""
        for key in sorted(self.processes, key=lambda k: not k.startswith("frontend")):
            self.stop(key)

    def log_tail(self, key: str, lines: int = 30) -> str:
        """The last C{lines} lines of C{key}'s log."""
        return launcher.log_tail(self.process(key), lines)

    def _wait_until_up(self, key: str, process: subprocess.Popen, log_start: int) -> None:
        """Wait for C{key}'s ready URL as C{pygmy up} does; a process that fails is stopped."""
        wanted = self.process(key)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{key} exited with {process.returncode}:\n{self.log_tail(key)}")
            failure = launcher.start_failure(wanted, process.pid, log_start)
            if failure:
                self.stop(key, signal.SIGKILL)
                raise RuntimeError(f"{failure}:\n{self.log_tail(key)}")
            if launcher.answers(wanted.ready_url):
                return
            time.sleep(launcher.POLL)
        self.stop(key, signal.SIGKILL)
        raise RuntimeError(f"{key} did not answer {wanted.ready_url} within {START_TIMEOUT}s")


def get_json(url: str, headers=None, method="GET", body=None):
    """A blocking JSON request, for set-up and checks outside the reactor."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _frontend_key(name: str) -> str:
    return "frontend" if name == LONE_FRONTEND else f"frontend:{name}"


# Probes (blocking), for the waits below and the benchmarks


def every_replica_in_view(services: dict) -> bool:
    """Whether each service of a front end's C{/status} has a primary and all its replicas in its view."""
    return all(
        view["primary"] is not None and len(view["backups"]) == len(view["replicas"]) - 1 for view in services.values()
    )


def replica_statuses(config, service: str) -> list[dict]:
    """The C{/status} of every replica of C{service} in C{config}."""
    return [get_json(replica.url + "/status")[1] for replica in config.replicas[service]]


def in_step(statuses: list[dict]) -> bool:
    """Whether the replica C{statuses} all report the same seq and checksum."""
    return len({(s["applied_seq"], s["checksum"]) for s in statuses}) == 1


def wait_for_full_view(frontend_url: str, timeout: float, what: str = "a full view") -> None:
    """Block until the front end at C{frontend_url} has every replica of every service in its views."""
    wait_until(lambda: every_replica_in_view(get_json(frontend_url + "/status")[1]["services"]), timeout, what)


def wait_until(predicate, timeout: float, what: str, every: float = 0.02) -> None:
    """
    Block until C{predicate()} is true (an C{OSError} counts as not yet).

    @raise TimeoutError: naming C{what}, after C{timeout} seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(every)
    raise TimeoutError(f"timed out waiting for {what}")


# Waits (in the reactor, for pytest-twisted tests)


async def settled(cluster, within=10.0):
    """Wait until every replica of every service is in its service's view."""
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    deadline = reactor.seconds() + within
    while True:
        services = get_json(cluster.url + "/status")[1]["services"]
        if every_replica_in_view(services):
            return services
        assert reactor.seconds() < deadline, services
        await deferLater(reactor, 0.1, lambda: None)


async def converged(cluster, service, within=5.0):
    """Wait until every replica of C{service} reports the same seq and checksum."""
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    deadline = reactor.seconds() + within
    while True:
        statuses = replica_statuses(cluster.config, service)
        if in_step(statuses):
            return statuses
        assert reactor.seconds() < deadline, statuses
        await deferLater(reactor, 0.1, lambda: None)


async def compacted_past(url: str, seq: int, view: int, within: float = 15.0, every: float = 0.1) -> None:
    """
    Wait until the replica at C{url} has compacted its log past entry C{seq}
    of C{view}: what a replica whose log ends there asks for is then refused
    (C{entries: null}), so it needs a snapshot, and the entry's request id
    is answered from the requests table alone.
    """
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    deadline = reactor.seconds() + within
    auth = {"Authorization": f"Bearer {SECRET}"}
    while True:
        status, body = get_json(f"{url}/replication/log?after={seq}&view={view}&limit=1", headers=auth)
        assert status == 200, body
        if body["entries"] is None:
            return
        assert reactor.seconds() < deadline, f"{url} still holds entry {seq} of view {view}: {body}"
        await deferLater(reactor, every, lambda: None)


# Clusters started with C{pygmy up} (daemonised, pid files in data_dir)

#: The checkout this package is in (where C{pygmy/} is).
ROOT = Path(__file__).resolve().parents[1]


def run_pygmy(*args: str, cwd=ROOT, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Run the C{pygmy} command with this Python; its exit status and output."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pygmy.cli", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env
    )


#: A line of C{pygmy up}: the process, its pid, its URL and its log file.
UP_LINE = re.compile(r"^(\S+)\s+pid (\d+)\s+(http://\S+)\s+log (\S+)$")


class UpCluster:
    """The processes C{pygmy up} started from one config file, for a certain stop."""

    def __init__(self, path: Path):
        self.path = path
        self.config = load(path)
        self.url = self.config.frontend.url
        self.pids: dict[int, launcher.Process] = {}

    def note(self) -> dict[str, int]:
        """Remember the pid in every pid file; return them by process name."""
        found = {}
        for process in launcher.processes(self.config):
            pid = launcher.read_pid(process)
            if pid is not None:
                self.pids[pid] = process
                found[process.name] = pid
        return found

    def stop_everything(self) -> None:
        """C{pygmy down}, then SIGKILL whatever noted pid is still ours and alive."""
        self.note()
        try:
            run_pygmy("down", "--config", str(self.path))
        finally:
            for pid, process in self.pids.items():
                if launcher.runs(process, pid):
                    launcher.kill(pid)
                    launcher.wait_gone(pid, 5.0)

    def client(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        """A client command against this cluster's front end (through C{--config})."""
        return run_pygmy(*args, "--config", str(self.path), **kwargs)
