"""
C{pygmy load --crash SERVICE}: C{kill -9} of a service's primary during a
load run, its restart with the command C{pygmy up} uses (both through
L{pygmy.cli.lifecycle}), and the events around them (the failover timeline
of the report, the JSON and the plot).
"""

from __future__ import annotations

from dataclasses import dataclass

from pygmy.cli import launcher, lifecycle
from pygmy.cli.client import ClientError, Frontend

#: Bounds of the crash's waits, in seconds.
GONE_TIMEOUT, FAILOVER_TIMEOUT, REJOIN_TIMEOUT = 10.0, 30.0, 30.0


class LoadError(ClientError):
    """The run cannot start, or its crash failed; C{str()} is the line to print."""


@dataclass
class Event:
    """Something that happened during the run, C{at} seconds after the load began."""

    at: float
    what: str


class Crash:
    """
    C{kill -9} of C{service}'s primary during the run, its restart, and
    the events around them (the failover timeline).
    """

    def __init__(self, reactor, api: Frontend, config, service: str, note):
        self.reactor, self.api, self.config, self.service = reactor, api, config, service
        self.note = note
        self.events: list[Event] = []
        self.error: str | None = None
        self.started = 0.0

    def now(self) -> float:
        """Seconds since the load began."""
        return self.reactor.seconds() - self.started

    def event(self, what: str) -> None:
        """Record and show an event."""
        self.events.append(Event(round(self.now(), 3), what))
        self.note(f"[{self.now():6.2f}s] {what}")

    async def view(self) -> dict | None:
        """The front end's view of the service, or C{None} if it did not answer."""
        try:
            return (await self.api.call("GET", "/status"))["services"][self.service]
        except (ClientError, KeyError, TypeError):
            return None

    async def target(self):
        """
        The primary's launcher process and its pid, checked before the run.

        @raise LoadError: if there is no primary or it has no live pid file.
        """
        view = await self.view()
        if not view or not view.get("primary"):
            raise LoadError(f"--crash {self.service}: the front end names no primary of {self.service}")
        process = launcher.processes(self.config, [f"{self.service}:{view['primary']}"])[0]
        pid = launcher.running_pid(process)
        if pid is None:
            raise LoadError(
                f"--crash {self.service}: {process.name} (the primary) has no live pid file in "
                f"{process.data_dir}; --crash needs a cluster started by `pygmy up --config {self.config.path}`"
            )
        return process, pid

    async def run(self, at: float, down: float) -> None:
        """Wait until C{at}, kill, wait C{down} s, restart, wait for the rejoin; never raises."""
        try:
            await self._run(at, down)
        except LoadError as e:
            self.error = str(e)
            self.event(f"ERROR: {e}")
        except Exception as e:  # a failed crash must not lose the run's figures
            self.error = f"{type(e).__name__}: {e}"
            self.event(f"ERROR: {self.error}")

    async def _run(self, at: float, down: float) -> None:
        await lifecycle.sleep(self.reactor, at - self.now())
        process, _ = await self.target()
        name = process.replica
        try:
            pid = lifecycle.kill(process)
            killed = self.now()
            self.event(f"kill -9 {process.name} (primary, pid {pid})")
            await lifecycle.gone(self.reactor, pid, GONE_TIMEOUT)
        except lifecycle.ProcessError as e:
            raise LoadError(str(e)) from None
        view = await self.poll_view(FAILOVER_TIMEOUT, "no new primary", lambda v: v["primary"] not in (None, name))
        self.event(f"{self.service}: new primary {view['primary']}")
        await lifecycle.sleep(self.reactor, killed + down - self.now())
        self.event(f"restart {process.name}")
        try:
            await lifecycle.restart(self.reactor, self.config, process, self.api.http, REJOIN_TIMEOUT)
        except lifecycle.ProcessError as e:
            raise LoadError(f"restart of {process.name} failed: {e}") from None
        view = await self.poll_view(REJOIN_TIMEOUT, f"{process.name} did not rejoin", lambda v: name in v["backups"])
        self.event(f"{process.name} back in the view (backup of {view['primary']})")

    async def poll_view(self, timeout: float, failure: str, wanted) -> dict:
        """The service's view once C{wanted(view)} holds; bounded by C{timeout}."""

        async def probe():
            view = await self.view()
            return view if view is not None and wanted(view) else None

        view = await lifecycle.poll(self.reactor, probe, timeout)
        if view is None:
            raise LoadError(f"{failure} within {timeout:g}s")
        return view
