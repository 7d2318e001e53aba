"""
How C{pygmy evaluate} (L{pygmy.cli.evaluate}) handles the cluster it
measures: the check that every process C{pygmy up} started still runs,
the stock kept plentiful between steps, the front end's cache counters,
and the front end restarted with its cache off (C{cache_size = 0}, from a
copy of the config in C{data_dir}) and back.

Stops and restarts go through L{pygmy.cli.lifecycle} (by pid file, with
the command C{pygmy up} uses); the views and the stock updates through
L{pygmy.cli.chaos_cluster.Cluster}.
"""

from __future__ import annotations

import configparser
import os
import signal
from pathlib import Path

from twisted.internet.defer import Deferred

from pygmy.cli import launcher, lifecycle
from pygmy.cli.chaos import stock_targets
from pygmy.cli.chaos_cluster import SETTLE_TIMEOUT, Abort, Cluster, Context
from pygmy.cli.invariants import stock_levels
from pygmy.endpoints import absolute_paths

#: The copy of the config with the cache off, in C{data_dir}.
CACHE_OFF_NAME = "evaluate-cache-off.ini"
#: The services whose replicas the front end must hear after a restart.
SERVICES = ("catalog", "order")
#: The cache counters a step reports the change of.
COUNTERS = ("hits", "misses", "invalidations", "refused_fills")
#: No item is scarce here: item ids start at 1 (see L{pygmy.cli.chaos.stock_targets}).
NO_SCARCE_ITEM = 0


def not_running(config) -> list[str]:
    """
    The names of the processes of C{config} whose pid file names no running
    process (a local etcd is not one of them: it may run on its own).
    """
    return [p.name for p in launcher.processes(config) if p.role != "etcd" and launcher.running_pid(p) is None]


def require_running(config) -> None:
    """
    @raise Abort: naming the processes of C{config} that do not run, and
        how to start them.
    """
    down = not_running(config)
    if down:
        raise Abort(
            f"not running (no live pid file in {config.cluster.data_dir}): {', '.join(down)}; "
            f"start the cluster with `pygmy up --config {config.path}`"
        )


def cache_off_copy(config) -> Path:
    """
    Write a copy of C{config}'s file with C{cache_size = 0} in every
    front-end section, C{data_dir} and C{listen} paths made absolute (the
    copy lives in C{data_dir}); return its path.
    """
    parser = configparser.ConfigParser(inline_comment_prefixes=(";", "#"), interpolation=None)
    with open(config.path, encoding="utf-8") as f:
        parser.read_file(f)
    parser["cluster"]["data_dir"] = str(config.cluster.data_dir)
    here = Path(config.path).resolve().parent
    for name in parser.sections():
        section = parser[name]
        if "listen" in section:
            section["listen"] = absolute_paths(section["listen"], here)
        if name == "frontend" or name.startswith("frontend:"):
            section["cache_size"] = "0"
    path = config.cluster.data_dir / CACHE_OFF_NAME
    # It holds the secret, as the original does: readable by its owner only.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as f:
        f.write(f"; written by pygmy evaluate from {config.path}: the same cluster, cache off\n")
        parser.write(f)
    return path


async def cache_status(cluster: Cluster) -> dict:
    """The front end's C{cache} figures (C{GET /status}): size, capacity, counters."""
    return (await cluster.fetch(cluster.url + "/status", "GET /status of the front end", timeout=5))["cache"]


def counted(before: dict, after: dict) -> dict:
    """How much each of L{COUNTERS} grew from C{before} to C{after}."""
    return {name: after.get(name, 0) - before.get(name, 0) for name in COUNTERS}


async def restock(cluster: Cluster) -> dict[int, int]:
    """
    Top up every item whose stock is low (L{pygmy.cli.chaos.stock_targets}),
    so that no buy of a step runs out; return the stock after.

    @raise Abort: if an update is refused or its outcome stays unknown.
    """
    stock = stock_levels(await cluster.listing())
    for item, target in stock_targets(stock, NO_SCARCE_ITEM).items():
        if not await cluster.update_stock(item, target - stock[item]):
            raise Abort(f"could not set the stock of item {item} to {target}")
        stock[item] = target
    return stock


class FrontendSwitch:
    """
    The cluster's front end, restarted with another config (the cache off)
    and back: a clean stop (SIGTERM) by its pid file, a start with the
    command C{pygmy up} uses, then a wait until it hears every replica.

    @ivar current: the config the running front end was started with.
    """

    def __init__(self, run: Context, cluster: Cluster):
        self.run, self.cluster = run, cluster
        self.original = self.current = run.config
        self._at_shutdown = None
        self._shutting_down = False

    async def switch(self, config) -> None:
        """
        Restart the front end with C{config}.

        @raise Abort: if it does not stop, start or hear every replica in time.
        """
        run = self.run
        self._guard(True)
        process = launcher.processes(self.current, ["frontend"])[0]
        try:
            if launcher.running_pid(process) is not None:
                pid = lifecycle.kill(process, signal.SIGTERM)
                await lifecycle.gone(run.reactor, pid, launcher.STOP_TIMEOUT)
            self.current = config
            started = launcher.processes(config, ["frontend"])[0]
            await lifecycle.restart(run.reactor, config, started, run.http, SETTLE_TIMEOUT)
        except lifecycle.ProcessError as e:
            raise Abort(f"restart of the front end with {config.path} failed: {e}") from None
        for service in SERVICES:
            await self.cluster.poll(
                SETTLE_TIMEOUT,
                f"the restarted front end does not hear every {service} replica",
                self.cluster.serving,
                service,
            )
        if config is self.original:
            self._guard(False)

    async def restore(self) -> None:
        """Restart the front end with the original config, unless it runs with it already."""
        if self.current is not self.original:
            await self.switch(self.original)

    def _guard(self, on: bool) -> None:
        """
        From the first switch until the front end is back on its own config
        and hears every replica, have the reactor put it back before it
        stops: a Ctrl-C or SIGTERM ends C{react} without resuming the run,
        so the run's own clean-up would never come.
        """
        reactor = self.run.reactor
        if self._shutting_down:
            return
        if on and self._at_shutdown is None:
            self._at_shutdown = reactor.addSystemEventTrigger("before", "shutdown", self._restore_at_shutdown)
        elif not on and self._at_shutdown is not None:
            reactor.removeSystemEventTrigger(self._at_shutdown)
            self._at_shutdown = None

    def _restore_at_shutdown(self) -> Deferred:
        """
        The reactor is stopping before the front end is back for sure:
        restart it on its own config first (whether it runs on the copy,
        or was stopped and not yet started again).
        """
        self._at_shutdown, self._shutting_down = None, True
        self.run.echo(f"stopping: putting the front end back on {self.original.path} first")
        return Deferred.fromCoroutine(self.switch(self.original)).addErrback(
            lambda f: self.run.echo(f"could not put the front end back: {f.getErrorMessage()}")
        )


async def restart_missing(run: Context) -> list[str]:
    """
    Start again every process of C{run.config} that does not run (after a
    failed step), so that the cluster is left as it was found; return a
    line per process tried.
    """
    lines = []
    for process in launcher.processes(run.config):
        if process.role == "etcd" or launcher.running_pid(process) is not None:
            continue
        try:
            pid = await lifecycle.restart(run.reactor, run.config, process, run.http, SETTLE_TIMEOUT)
            lines.append(f"{process.name} was not running: started again (pid {pid})")
        except lifecycle.ProcessError as e:
            lines.append(f"{process.name} was not running and did not start again: {e}")
    return lines
