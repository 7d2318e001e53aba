"""
Whether a cluster process runs, by its pid file and its pid: the checks
that let C{pygmy up}, C{pygmy down} and the crash tools signal only the
twistd they started (a pid reused by another program after a crash is
never signalled; a zombie counts as gone).  Blocking, for the command
line and for test set-up, never for a reactor callback.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pygmy.cli.processes import Process

#: Seconds between two looks at a process that is starting or stopping.
POLL = 0.05


def read_pid(process: Process) -> int | None:
    """The pid in C{process}'s pid file, or C{None} if there is no usable one."""
    try:
        text = process.pidfile.read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return int(text) if text.isdigit() and int(text) > 0 else None


def pid_alive(pid: int) -> bool:
    """Whether C{pid} is a running process (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return not Path("/proc/self").exists()
    except OSError:
        return True
    # The state follows the parenthesised command name, which may hold spaces.
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def runs(process: Process, pid: int) -> bool:
    """
    Whether C{pid} is alive and is C{process}'s twistd or etcd
    (L{Process.matches<pygmy.cli.processes.Process.matches>}), so a pid
    reused by another program after a crash is never signalled.
    """
    if not pid_alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return not Path("/proc/self").exists()
    except OSError:
        return True
    return process.matches(argv)


def running_pid(process: Process) -> int | None:
    """The pid of C{process} if its pid file names it running, else C{None}."""
    pid = read_pid(process)
    return pid if pid is not None and runs(process, pid) else None


def clear_stale(process: Process) -> bool:
    """
    Remove C{process}'s pid file if it names no running C{process}.

    @return: whether a stale pid file was removed.
    """
    if not process.pidfile.exists() or running_pid(process) is not None:
        return False
    process.pidfile.unlink(missing_ok=True)
    return True


def kill(pid: int, sig: int = signal.SIGKILL) -> None:
    """Send C{sig} to C{pid} if it still exists."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait up to C{timeout} seconds for C{pid} to exit; return whether it did."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL)
    return True
