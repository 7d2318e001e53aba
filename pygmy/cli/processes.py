"""
The processes of a cluster as C{pygmy up} runs them (L{Process}: name,
pid file, log, ready URL, how to recognise its command line), which ones
a config has (L{processes}: a local etcd, the replicas, every front end)
and the command line that starts each (L{command}).  No I/O but the look
for an etcd binary; L{pygmy.cli.launcher} starts and stops them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from pygmy.cli import etcd
from pygmy.config import Config

#: The twistd of the Python that runs this module.
TWISTD = str(Path(sys.executable).with_name("twistd"))
#: Seconds a process may take to answer after being started.
START_TIMEOUT = 20.0
#: Seconds a process may take to exit after SIGTERM, before SIGKILL.
STOP_TIMEOUT = 15.0


class LaunchError(Exception):
    """
    A process could not be started, or C{--only} named no process.

    @ivar details: more lines for the user (such as a log's tail), or "".
    """

    details = ""


@dataclass(frozen=True)
class Process:
    """
    One process of the cluster, as C{pygmy up} runs it.

    @ivar role: C{frontend}, C{catalog}, C{order} or C{etcd}.
    @ivar replica: the replica's name; for a front end of several, its
        NAME (C{[frontend:NAME]}); C{None} for a lone front end and etcd.
    @ivar url: the base URL it answers on.
    @ivar data_dir: where its pid file and log go.
    """

    role: str
    replica: str | None
    url: str
    data_dir: Path

    @property
    def name(self) -> str:
        """C{frontend} or C{service:NAME}, as in C{--only}."""
        return self.role if self.replica is None else f"{self.role}:{self.replica}"

    @property
    def stem(self) -> str:
        """The file name stem: C{frontend} or C{service-NAME}."""
        return self.role if self.replica is None else f"{self.role}-{self.replica}"

    @property
    def pidfile(self) -> Path:
        """The pid file twistd writes."""
        return self.data_dir / f"{self.stem}.pid"

    @property
    def logfile(self) -> Path:
        """The log twistd writes."""
        return self.data_dir / f"{self.stem}.log"

    @property
    def ready_url(self) -> str:
        """What answers 200 once it is up: a front end's or etcd's C{/health}, a replica's C{/status}."""
        return self.url + ("/status" if self.role in ("catalog", "order") else "/health")

    @property
    def etcd_data(self) -> Path:
        """Where a local etcd keeps its data."""
        return self.data_dir / "etcd"

    def matches(self, argv: list[bytes]) -> bool:
        """
        Whether the command line C{argv} (of C{/proc/PID/cmdline}) is this
        process's: its twistd plugin with its C{--replica} or C{--name}, or
        an etcd with its data directory.
        """
        if self.role == "etcd":
            return (
                bool(argv)
                and Path(argv[0].decode(errors="replace")).name == "etcd"
                and (f"--data-dir={self.etcd_data}".encode() in argv)
            )
        if f"pygmy-{self.role}".encode() not in argv:
            return False
        if self.replica is None:
            return True
        flag = b"--name" if self.role == "frontend" else b"--replica"
        pairs = zip(argv, argv[1:], strict=False)
        return (flag, self.replica.encode()) in pairs or flag + b"=" + self.replica.encode() in argv


def processes(config: Config, only=()) -> list[Process]:
    """
    The processes of C{config}, in the order C{pygmy up} starts them: the
    local etcd (if L{etcd.local_endpoint} names one), every catalog
    replica, every order replica, then every front end.

    @param only: names to keep (C{frontend} for every front end,
        C{frontend:2}, C{catalog:A}, a whole service such as C{order},
        C{etcd}); empty keeps all.
    @raise LaunchError: if a name in C{only} matches no process.
    """
    data_dir = config.cluster.data_dir
    local = etcd.local_endpoint(config)
    found = [Process("etcd", None, local, data_dir)] if local else []
    found += [
        Process(service, replica.name, replica.url, data_dir)
        for service in ("catalog", "order")
        for replica in config.replicas[service]
    ]
    several = len(config.frontends) > 1
    found += [
        Process("frontend", name if several else None, front.url, data_dir) for name, front in config.frontends.items()
    ]
    if not only:
        return found
    for wanted in only:
        if not any(wanted in (p.name, p.role) for p in found):
            known = ", ".join(p.name for p in found)
            raise LaunchError(f"--only {wanted}: no such process (known: {known})")
    return [p for p in found if p.name in only or p.role in only]


def command(config: Config, process: Process) -> list[str]:
    """
    The daemonising twistd command line that starts C{process} (for etcd,
    its own command line, which does not daemonise).

    @raise LaunchError: for etcd, if there is no etcd binary.
    """
    if process.role == "etcd":
        binary = etcd.etcd_binary()
        if binary is None:
            raise LaunchError(f"etcd at {process.url} does not answer, and there is no etcd to start: {etcd.INSTALL}")
        return etcd.command(binary, process.url, process.etcd_data)
    args = [
        TWISTD,
        f"--pidfile={process.pidfile}",
        f"--logfile={process.logfile}",
        f"pygmy-{process.role}",
        "--config",
        str(Path(config.path).resolve()),
    ]
    if process.replica is not None:
        args += ["--name" if process.role == "frontend" else "--replica", process.replica]
    return args
