"""
Real Pygmy processes for the integration tests.

A L{Cluster} writes a C{config.ini} with free ports on 127.0.0.1 in a
temporary directory, starts each process with the contract's command
(C{twistd -n --pidfile= pygmy-catalog --config ... --replica A}), waits until
it answers, and stops it by its pid: SIGTERM for a clean stop, SIGKILL for a
crash.  Every process it started is stopped by L{Cluster.stop_all}.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from pygmy.cli import launcher
from pygmy.config import load

TWISTD = str(Path(sys.executable).with_name("twistd"))
SECRET = "integration-secret"
START_TIMEOUT = 20.0


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


def write_config(directory: Path, replicas=("A", "B"), **cluster) -> Path:
    """A config.ini in C{directory} for a cluster on free local ports."""
    ports = iter(free_ports(2 + 2 * len(replicas)))
    settings = {
        "secret": SECRET,
        "data_dir": "var",
        "heartbeat_interval": "0.2",
        "heartbeat_timeout": "0.6",
        **cluster,
    }
    lines = ["[cluster]"] + [f"{k} = {v}" for k, v in settings.items()]
    lines += ["", "[frontend]", "host = 127.0.0.1", f"port = {next(ports)}", f"heartbeat_port = {next(ports)}"]
    for service in ("catalog", "order"):
        for name in replicas:
            lines += ["", f"[{service}:{name}]", "host = 127.0.0.1", f"port = {next(ports)}"]
    path = directory / "config.ini"
    path.write_text("\n".join(lines) + "\n")
    return path


class Cluster:
    """
    The processes of one test cluster.

    @ivar config: the parsed config (ports, secret).
    """

    def __init__(self, directory: Path, replicas=("A", "B"), **cluster):
        self.directory = directory
        self.path = write_config(directory, replicas, **cluster)
        self.config = load(self.path)
        self.processes: dict[str, subprocess.Popen] = {}

    @property
    def url(self) -> str:
        """The front end's base URL."""
        return self.config.frontend.url

    def replica_url(self, service: str, name: str) -> str:
        return self.config.replica(service, name).url

    def command(self, role: str, replica: str | None = None) -> list[str]:
        """The contract's command line for C{role} (and C{replica})."""
        command = [TWISTD, "-n", "--pidfile=", f"pygmy-{role}", "--config", str(self.path)]
        if replica is not None:
            command += ["--replica", replica]
        return command

    def start(self, role: str, replica: str | None = None) -> subprocess.Popen:
        """Start one process and wait until it answers HTTP."""
        key = role if replica is None else f"{role}:{replica}"
        log = open(self.directory / f"{key.replace(':', '-')}.log", "ab")
        process = subprocess.Popen(
            self.command(role, replica),
            cwd=self.directory,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.processes[key] = process
        url = self.url + "/health" if replica is None else self.replica_url(role, replica) + "/status"
        self._wait_until_up(key, process, url)
        return process

    def start_all(self) -> None:
        """Every replica of config.ini, then the front end."""
        for service in ("catalog", "order"):
            for replica in self.config.replicas[service]:
                self.start(service, replica.name)
        self.start("frontend")

    def stop(self, key: str, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Send C{sig} to the process C{key} by its pid and wait for it."""
        process = self.processes.pop(key)
        if process.poll() is None:
            os.kill(process.pid, sig)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            return process.wait(timeout)

    def stop_all(self) -> None:
        """Stop every process still running, front end first."""
        for key in sorted(self.processes, key=lambda k: k != "frontend"):
            self.stop(key)

    def log_tail(self, key: str, lines: int = 30) -> str:
        path = self.directory / f"{key.replace(':', '-')}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def _wait_until_up(self, key, process, url) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{key} exited with {process.returncode}:\n{self.log_tail(key)}")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        self.stop(key, signal.SIGKILL)
        raise RuntimeError(f"{key} did not answer {url} within {START_TIMEOUT}s")


def get_json(url: str, headers=None, method="GET", body=None):
    """A blocking JSON request, for set-up and checks outside the reactor."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


# Waits (in the reactor, for pytest-twisted tests)


async def settled(cluster, within=10.0):
    """Wait until every replica of every service is in its service's view."""
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    deadline = reactor.seconds() + within
    while True:
        services = get_json(cluster.url + "/status")[1]["services"]
        if all(
            view["primary"] is not None and len(view["backups"]) == len(view["replicas"]) - 1
            for view in services.values()
        ):
            return services
        assert reactor.seconds() < deadline, services
        await deferLater(reactor, 0.1, lambda: None)


async def converged(cluster, service, within=5.0):
    """Wait until every replica of C{service} reports the same seq and checksum."""
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    deadline = reactor.seconds() + within
    while True:
        statuses = [
            get_json(cluster.replica_url(service, r.name) + "/status")[1] for r in cluster.config.replicas[service]
        ]
        if len({(s["applied_seq"], s["checksum"]) for s in statuses}) == 1:
            return statuses
        assert reactor.seconds() < deadline, statuses
        await deferLater(reactor, 0.1, lambda: None)


# Clusters started with C{pygmy up} (daemonised, pid files in data_dir)

ROOT = Path(__file__).resolve().parents[2]


def run_pygmy(*args: str, cwd=ROOT, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Run the C{pygmy} command with this Python; its exit status and output."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pygmy.cli", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env
    )


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
