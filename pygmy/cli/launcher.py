"""
Start and stop the processes of a cluster, one daemonised twistd per
replica and one for the front end (C{pygmy up} / C{pygmy down}).

Each process gets C{<data_dir>/<role>-<name>.pid} and
C{<data_dir>/<role>-<name>.log} (C{frontend.pid} and C{frontend.log} for
the front end).  twistd writes and removes the pid file itself; a process
killed with C{kill -9} leaves a stale one behind, which this module
recognises (the pid is gone, a zombie, or now some other program) and
removes.

This is blocking code for the command line, never for a reactor callback;
L{pygmy.cli.lifecycle} kills and restarts a process under load with its
helpers (the command line, pid checks, start failures) without blocking.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

# Re-exported: callers use launcher.kill, launcher.POLL, launcher.running_pid ...
from pygmy.cli.pids import (  # noqa: F401
    POLL,
    clear_stale,
    kill,
    pid_alive,
    read_pid,
    running_pid,
    runs,
    wait_gone,
)
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

    @ivar role: C{frontend}, C{catalog} or C{order}.
    @ivar replica: the replica's name, or C{None} for the front end.
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
        """What answers 200 once it is up: C{/health} or a replica's C{/status}."""
        return self.url + ("/health" if self.replica is None else "/status")


def processes(config: Config, only=()) -> list[Process]:
    """
    The processes of C{config}: every catalog replica, every order replica,
    then the front end (the order C{pygmy up} starts them in).

    @param only: names to keep (C{frontend}, C{catalog:A}, or a whole
        service such as C{order}); empty keeps all.
    @raise LaunchError: if a name in C{only} matches no process.
    """
    data_dir = config.cluster.data_dir
    found = [
        Process(service, replica.name, replica.url, data_dir)
        for service in ("catalog", "order")
        for replica in config.replicas[service]
    ]
    found.append(Process("frontend", None, config.frontend.url, data_dir))
    if not only:
        return found
    for wanted in only:
        if not any(wanted in (p.name, p.role) for p in found):
            known = ", ".join(p.name for p in found)
            raise LaunchError(f"--only {wanted}: no such process (known: {known})")
    return [p for p in found if p.name in only or p.role in only]


def command(config: Config, process: Process) -> list[str]:
    """The daemonising twistd command line that starts C{process}."""
    args = [
        TWISTD,
        f"--pidfile={process.pidfile}",
        f"--logfile={process.logfile}",
        f"pygmy-{process.role}",
        "--config",
        str(Path(config.path).resolve()),
    ]
    if process.replica is not None:
        args += ["--replica", process.replica]
    return args


# Pids


# Starting


def log_tail(process: Process, lines: int = 20) -> str:
    """The last C{lines} lines of C{process}'s log, or a note that it has none."""
    try:
        text = process.logfile.read_text(errors="replace")
    except OSError:
        return f"(no log at {process.logfile})"
    return "\n".join(text.splitlines()[-lines:])


def start(config: Config, process: Process, timeout: float = START_TIMEOUT) -> int:
    """
    Start C{process} as a daemonised twistd and wait until it answers.

    @return: its pid.
    @raise LaunchError: if twistd fails, or the process does not answer in
        time (it is then killed and its pid file removed).
    """
    process.data_dir.mkdir(parents=True, exist_ok=True)
    clear_stale(process)
    log_start = process.logfile.stat().st_size if process.logfile.exists() else 0
    try:
        done = subprocess.run(
            command(config, process),
            cwd=process.data_dir,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise LaunchError(f"{process.name}: twistd did not return within {timeout:.0f}s") from None
    if done.returncode != 0:
        said = (done.stderr.strip() or done.stdout.strip()).splitlines()
        first = said[0] if said else f"exit status {done.returncode}"
        raise LaunchError(f"{process.name} failed to start: {first}")
    pid = read_pid(process)
    if pid is None:
        failure = listen_failure(process, log_start)
        if failure:
            raise LaunchError(f"{process.name} failed to start: {failure}")
        raise LaunchError(f"{process.name}: twistd wrote no pid file at {process.pidfile}")
    try:
        wait_ready(process, pid, log_start, timeout)
    except LaunchError:
        kill(pid)
        wait_gone(pid, 5.0)
        process.pidfile.unlink(missing_ok=True)
        raise
    return pid


def answers(url: str) -> bool:
    """Whether C{url} answers 200 right now."""
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def listen_failure(process: Process, offset: int) -> str | None:
    """
    The "cannot listen" line C{process} logged after byte C{offset} of
    its log, if any (see L{pygmy.net.listener.Listener}: the process then
    stops, possibly before its pid can be checked).
    """
    try:
        with open(process.logfile, "rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if ": cannot listen on " in line:
            return line.partition("#critical] ")[2].strip() or line.strip()
    return None


def wait_ready(process: Process, pid: int, log_start: int = 0, timeout: float = START_TIMEOUT) -> None:
    """
    Wait until C{process} (running as C{pid}) answers its ready URL.

    @param log_start: where this start's lines begin in its log.
    @raise LaunchError: if it exits first, logs that it cannot listen, or
        is silent for C{timeout} seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        failure = start_failure(process, pid, log_start)
        if failure:
            raise LaunchError(failure)
        if answers(process.ready_url):
            return
        time.sleep(POLL)
    raise LaunchError(f"{process.name} did not answer {process.ready_url} within {timeout:.0f}s")


def start_failure(process: Process, pid: int, log_start: int = 0) -> str | None:
    """
    Why C{process}, started as C{pid} (its log from byte C{log_start}),
    will never answer: it logged that it cannot listen, or it exited; or
    C{None} while it may still come up.
    """
    failure = listen_failure(process, log_start)
    if failure:
        return f"{process.name} failed to start: {failure}"
    if not pid_alive(pid):
        return f"{process.name} (pid {pid}) exited while starting"
    return None


def up(config: Config, only=(), echo: Callable[[str], None] = print) -> int:
    """
    C{pygmy up}: start the processes of C{config} (replicas, then the
    front end), one line each.  All or nothing: if one fails, the ones
    this call started are stopped again.

    @return: the exit status, 0.
    @raise LaunchError: if one is running already, or one fails to start
        (with the tail of its log as C{details}).
    """
    chosen = processes(config, only)
    busy = [(p, pid) for p in chosen if (pid := running_pid(p)) is not None]
    if busy:
        named = ", ".join(f"{p.name} (pid {pid})" for p, pid in busy)
        raise LaunchError(f"already running: {named}; run `pygmy down` first")
    started = []
    for process in chosen:
        try:
            pid = start(config, process)
        except LaunchError as e:
            for done in reversed(started):
                stop(done)
            e.details = f"--- last lines of {process.logfile} ---\n{log_tail(process)}"
            if started:
                e.details += "\nstopped again: " + ", ".join(p.name for p in started)
            raise
        started.append(process)
        echo(f"{process.name:<12} pid {pid:<7} {process.url:<24} log {process.logfile}")
    return 0


# Stopping


def stop(process: Process, timeout: float = STOP_TIMEOUT) -> str:
    """
    Stop C{process}: SIGTERM, then SIGKILL after C{timeout} seconds; remove
    its pid file.

    @return: what happened, in a few words.
    """
    pid = read_pid(process)
    if pid is None:
        return "not running (no pid file)"
    if not runs(process, pid):
        process.pidfile.unlink(missing_ok=True)
        return f"not running (removed stale pid file naming pid {pid})"
    kill(pid, signal.SIGTERM)
    if wait_gone(pid, timeout):
        how = "stopped"
    else:
        kill(pid, signal.SIGKILL)
        how = "killed (SIGKILL)" if wait_gone(pid, 5.0) else "still running after SIGKILL"
    process.pidfile.unlink(missing_ok=True)
    return f"{how} (pid {pid})"


def down(config: Config, only=(), echo: Callable[[str], None] = print) -> int:
    """
    C{pygmy down}: stop the processes of C{config}, front end first, one
    line each; stale pid files are removed.

    @return: 0, or 1 if a process survived SIGKILL.
    """
    status = 0
    for process in reversed(processes(config, only)):
        what = stop(process)
        if what.startswith("still running"):
            status = 1
        echo(f"{process.name:<12} {what}")
    return status
