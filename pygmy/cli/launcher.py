"""
Start and stop the processes of a cluster, one daemonised twistd per
replica and per front end (C{pygmy up} / C{pygmy down}), and a
single-node etcd when the C{[coordinator]} names one on this machine that
does not answer (L{pygmy.cli.etcd}).

Each process gets C{<data_dir>/<role>-<name>.pid} and
C{<data_dir>/<role>-<name>.log}: C{frontend.pid} and C{frontend.log} for a
lone front end, C{frontend-NAME.*} for C{[frontend:NAME]}, C{etcd.*} for
the etcd (its data in C{<data_dir>/etcd}).  twistd writes and removes the
pid file itself; the etcd's is written here.  A process killed with
C{kill -9} leaves a stale one behind, which this module recognises (the
pid is gone, a zombie, or now some other program) and removes.

The processes themselves, their files and command lines are
L{pygmy.cli.processes}.  This is blocking code for the command line, never
for a reactor callback;
L{pygmy.cli.lifecycle} kills and restarts a process under load with its
helpers (the command line, pid checks, start failures) without blocking.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from typing import Callable

from pygmy.cli import etcd

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

# Re-exported: callers use launcher.Process, launcher.processes, launcher.TWISTD ...
from pygmy.cli.processes import (  # noqa: F401
    START_TIMEOUT,
    STOP_TIMEOUT,
    TWISTD,
    LaunchError,
    Process,
    command,
    processes,
)
from pygmy.config import Config

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
    if process.role == "etcd":
        return start_etcd(config, process, log_start, timeout)
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


def start_etcd(config: Config, process: Process, log_start: int, timeout: float = START_TIMEOUT) -> int:
    """
    Start the local etcd of C{process} in a session of its own (it does
    not daemonise itself), its output appended to its log; write its pid
    file; wait until it is healthy.

    @return: its pid.
    @raise LaunchError: without an etcd binary, or if it exits or is not
        healthy in time (it is then killed and its pid file removed).
    """
    argv = command(config, process)
    with open(process.logfile, "ab") as log:
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    temporary = process.pidfile.with_suffix(".pid.tmp")
    temporary.write_text(f"{child.pid}\n")
    os.replace(temporary, process.pidfile)
    try:
        wait_ready(process, child.pid, log_start, timeout)
    except LaunchError:
        kill(child.pid)
        wait_gone(child.pid, 5.0)
        process.pidfile.unlink(missing_ok=True)
        raise
    finally:
        # Reaped here once it exits while this command runs, so that it never
        # lingers as a zombie; after that its parent is init.
        child.poll()
    return child.pid


def ready(process: Process) -> bool:
    """Whether C{process} answers as ready right now: etcd healthy, the others 200 on L{Process.ready_url}."""
    return etcd.healthy(process.url) if process.role == "etcd" else answers(process.ready_url)


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
        if ready(process):
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
    C{pygmy up}: start the processes of C{config} (the local etcd, the
    replicas, then every front end), one line each, each once it answers.
    A local etcd that answers already is someone else's: it is used, not
    started (and C{pygmy down} leaves it alone).  All or nothing: if one
    fails, the ones this call started are stopped again.

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
        if process.role == "etcd" and ready(process):
            echo(f"{process.name:<12} {process.url} answers already: used as it is, not started")
            continue
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
    coordinator = config.coordinator
    if coordinator and not etcd.local_endpoint(config) and any(p.role == "frontend" for p in chosen):
        if not any(etcd.healthy(url) for url in coordinator.etcd):
            echo(f"{'etcd':<12} no member answers at {coordinator.endpoints} (not started here: start it yourself)")
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
