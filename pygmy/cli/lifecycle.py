"""
Kill and restart one process of a running cluster from inside the
reactor: the one way C{pygmy load --crash} (L{pygmy.cli.crash}) and
C{pygmy chaos} (L{pygmy.cli.chaos_faults}) crash a replica and bring it
back.

L{kill} signals the pid that the process's pid file names (only if that
pid is still the process's own twistd, see L{pygmy.cli.launcher.runs}),
L{gone} waits until that pid has exited, and L{restart} starts the process
again with the command C{pygmy up} uses (L{pygmy.cli.launcher.command})
and waits until it answers.  The waits poll on the reactor and never block
it, so the load goes on meanwhile.
"""

from __future__ import annotations

import os
import signal

from pygmy.cli import launcher

#: Seconds a killed process may take to exit.
GONE_TIMEOUT = 10.0
#: Seconds a restarted process may take to answer.
READY_TIMEOUT = 30.0
#: Seconds one readiness request may take.
PROBE_TIMEOUT = 2.0


class ProcessError(Exception):
    """A kill or a restart failed; C{str()} says why, in a few words."""


class NotRunning(ProcessError):
    """The process to kill has no live pid file."""


class StartError(ProcessError):
    """twistd failed, or the restarted process exited or could not listen."""


class Timeout(ProcessError):
    """A killed process did not exit, or a restarted one did not answer, in time."""


def sleep(clock, seconds: float):
    """A Deferred that fires after C{seconds} on C{clock} (never blocks the reactor)."""
    from twisted.internet.task import deferLater

    return deferLater(clock, max(seconds, 0.0), lambda: None)


async def poll(clock, probe, timeout: float, every: float = launcher.POLL):
    """
    Call C{probe()} (a function or a coroutine function) every C{every}
    seconds until it returns something true.

    @return: that result, or C{None} once C{timeout} seconds have passed.
    """
    deadline = clock.seconds() + timeout
    while True:
        result = probe()
        if hasattr(result, "__await__"):
            result = await result
        if result:
            return result
        if clock.seconds() >= deadline:
            return None
        await sleep(clock, every)


def kill(process: launcher.Process, sig: int = signal.SIGKILL) -> int:
    """
    Send C{sig} to C{process} by the pid in its pid file.

    @return: the pid signalled.
    @raise NotRunning: if the pid file names no running C{process}.
    """
    pid = launcher.running_pid(process)
    if pid is None:
        raise NotRunning(f"no live pid in {process.pidfile}")
    launcher.kill(pid, sig)
    return pid


async def gone(clock, pid: int, timeout: float = GONE_TIMEOUT) -> None:
    """
    Wait until C{pid} has exited (a zombie counts as gone).

    @raise Timeout: if it still runs after C{timeout} seconds.
    """
    if not await poll(clock, lambda: not launcher.pid_alive(pid), timeout):
        raise Timeout(f"pid {pid} did not exit within {timeout:g}s")


async def restart(reactor, config, process: launcher.Process, http, timeout: float = READY_TIMEOUT) -> int:
    """
    Start C{process} again with C{pygmy up}'s command (a daemonising
    twistd, run without blocking the reactor) and wait until it answers
    its ready URL.

    @param http: a treq C{HTTPClient} for the readiness probes.
    @return: its new pid.
    @raise StartError: if twistd fails, or the process exits or logs that
        it cannot listen before it answers.
    @raise Timeout: if it does not answer within C{timeout} seconds.
    """
    from twisted.internet.utils import getProcessOutputAndValue

    if process.role == "etcd":  # it does not daemonise: pygmy up starts it, nothing restarts it under load
        raise StartError("etcd is not restarted under load; run `pygmy up --only etcd`")
    launcher.clear_stale(process)
    log_start = process.logfile.stat().st_size if process.logfile.exists() else 0
    argv = launcher.command(config, process)
    try:
        out, err, code = await getProcessOutputAndValue(
            argv[0], argv[1:], env=dict(os.environ), path=str(process.data_dir), reactor=reactor
        )
    except Exception as e:  # the twistd could not be run at all
        raise StartError(f"twistd failed: {e}") from None
    if code != 0:
        said = (err or out).decode(errors="replace").strip().splitlines()
        raise StartError(f"twistd exited with {code}: {said[0] if said else ''}")
    pid = launcher.read_pid(process)
    if pid is None:
        raise StartError(f"twistd wrote no pid file at {process.pidfile}")
    await ready(reactor, process, pid, http, log_start, timeout)
    return pid


async def ready(clock, process: launcher.Process, pid: int, http, log_start: int, timeout: float) -> None:
    """
    Wait until C{process}, started as C{pid}, answers its ready URL.

    @param log_start: where this start's lines begin in its log.
    @raise StartError: if it exits or logs that it cannot listen first.
    @raise Timeout: if it does not answer within C{timeout} seconds.
    """

    async def probe() -> bool:
        failure = launcher.start_failure(process, pid, log_start)
        if failure:
            raise StartError(failure)
        return await answers(http, process.ready_url)

    if not await poll(clock, probe, timeout):
        raise Timeout(f"{process.ready_url} did not answer within {timeout:g}s")


async def answers(http, url: str) -> bool:
    """Whether C{url} answers 200 right now (through treq C{http})."""
    try:
        response = await http.request("GET", url, timeout=PROBE_TIMEOUT)
        await response.content()
    except Exception:  # any transport failure means "not yet"
        return False
    return response.code == 200
