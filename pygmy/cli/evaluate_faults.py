"""
Question 3 of C{pygmy evaluate}: fault tolerance.  Under load, C{kill -9}
of a replica (each service's primary, then a catalog backup): how long
the front end takes to show a new view in C{/status} (detection), how many
client requests failed meanwhile (masking), how long the restarted replica
takes to be back in the in-sync set (catch-up), and whether the replicas'
C{/status} checksums and C{applied_seq} agree once it is quiet.

A L{FaultRun} is the crash object of L{pygmy.cli.load.under_load} (as
L{pygmy.cli.crash.Crash} is for C{pygmy load --crash}): it runs beside the
load, kills and restarts through L{pygmy.cli.chaos_faults.FaultSchedule}
(so through L{pygmy.cli.lifecycle}), and notes the times in a
L{pygmy.cli.invariants.Fault}.
"""

from __future__ import annotations

from pygmy.cli import lifecycle
from pygmy.cli.chaos_checks import Aftermath
from pygmy.cli.chaos_cluster import SETTLE_TIMEOUT, Abort, Cluster, Context, call
from pygmy.cli.chaos_faults import FaultSchedule
from pygmy.cli.invariants import Fault, replicas_agree
from pygmy.cli.loadgen import Sample, error_key, summarise

#: What is killed, in order: (service, role).
FAULTS = (("catalog", "primary"), ("order", "primary"), ("catalog", "backup"))
#: Seconds between two looks at the front end's view while a change is awaited.
WATCH_EVERY = 0.02


def members(view: dict) -> list[str]:
    """The in-sync set of a service's view in C{/status} (primary first)."""
    if "in_sync" in view:
        return list(view["in_sync"])
    return [name for name in [view.get("primary"), *view.get("backups", [])] if name]


def brief(view: dict | None) -> dict | None:
    """The number, primary and backups of a view (what the report shows)."""
    if view is None:
        return None
    return {"view": view["view"], "primary": view["primary"], "backups": list(view["backups"])}


def failed(sample: Sample) -> bool:
    """Whether the client saw a failure: no answer or a 5xx (a 409 is the store's answer, not a failure)."""
    return sample.status == 0 or sample.status >= 500


class FaultRun:
    """
    One C{kill -9} of C{service}'s C{role} (C{primary} or C{backup})
    during a load step, its restart and the times around them.

    The interface of a crash in L{pygmy.cli.load.under_load}: it sets
    C{started} (when the load began) and C{note} (a line above the
    progress bar), then awaits L{run}.
    """

    def __init__(self, run: Context, cluster: Cluster, schedule: FaultSchedule, service: str, role: str):
        self.context, self.cluster, self.schedule = run, cluster, schedule
        self.fault = Fault(service, role)
        self.before: dict | None = None
        self.after: dict | None = None
        self.started = 0.0
        self.note = run.echo

    async def run(self, at: float, down: float) -> None:
        """Kill at C{at} s, restart C{down} s after the kill, wait for the rejoin; never raises."""
        self.context.started, self.context.echo = self.started, self.note
        try:
            await self._crash(at, down)
        except Abort as e:
            self.fault.error = str(e)
        except Exception as e:  # a failed fault must not lose the step's figures
            self.fault.error = f"{type(e).__name__}: {e}"
        if self.fault.error:
            self.context.say(f"ERROR: {self.fault.error}")

    async def _crash(self, at: float, down: float) -> None:
        run, fault = self.context, self.fault
        await run.until(at)
        before = self.before = await self.cluster.view(fault.service)
        name = before["primary"] if fault.role == "primary" else run.rng.choice(before["backups"])
        process = self.schedule.processes[f"{fault.service}:{name}"]
        await self.schedule.kill(fault, process)
        self.after = await self.watch(
            f"no new {fault.service} view without {name}",
            lambda view: view["view"] > before["view"] and name not in members(view),
        )
        fault.failover = run.now()
        run.say(
            f"{fault.service}: view {self.after['view']}, primary {self.after['primary']} "
            f"({fault.failover - fault.killed:.3f} s after the kill)"
        )
        await run.until(fault.killed + down)
        fault.restarted = run.now()
        run.say(f"restart {process.name}")
        await self.schedule.restart(process)
        fault.ready = run.now()
        await self.watch(f"{process.name} not back in the in-sync set", lambda view: name in members(view))
        fault.rejoined = run.now()
        run.say(f"{process.name} back in the in-sync set ({fault.rejoined - fault.restarted:.2f} s after its restart)")

    async def watch(self, failure: str, wanted) -> dict:
        """The service's view once C{wanted(view)} holds, looked at every L{WATCH_EVERY} s."""

        async def probe():
            view = await self.cluster.view(self.fault.service)
            return view if wanted(view) else None

        view = await lifecycle.poll(self.context.reactor, probe, SETTLE_TIMEOUT, every=WATCH_EVERY)
        if view is None:
            raise Abort(f"{failure} within {SETTLE_TIMEOUT:.0f} s")
        return view

    def events(self) -> list[tuple[float, str]]:
        """C{(seconds since the load began, what)} of each moment, for the plot."""
        f = self.fault
        moments = [
            (f.killed, f"kill -9 {f.target}"),
            (f.failover, f"new view {self.after['view'] if self.after else '?'}"),
            (f.restarted, f"restart {f.target}"),
            (f.rejoined, f"{f.target} in sync"),
        ]
        return [(at, what) for at, what in moments if at is not None]

    def record(self, samples: list[Sample], seconds: float) -> dict:
        """
        What the report and the JSON say of this fault: its times (seconds
        since the load began), the spans between them, and the requests
        that overlapped the span from the kill to the rejoin (or to the end
        of the load), with the failures among them.
        """
        f = self.fault
        end = f.rejoined if f.rejoined is not None else seconds
        inside, outside = [], []
        for sample in samples:
            during = f.killed is not None and sample.at <= end and sample.at + sample.seconds >= f.killed
            (inside if during else outside).append(sample)
        errors: dict[str, int] = {}
        for sample in filter(failed, inside):
            errors[error_key(sample.status)] = errors.get(error_key(sample.status), 0) + 1

        def span(start, stop):
            return None if start is None or stop is None else round(stop - start, 4)

        return {
            "service": f.service,
            "role": f.role,
            "target": f.target,
            "pid": f.pid,
            "view_before": brief(self.before),
            "view_after": brief(self.after),
            "killed": f.killed,
            "detected": f.failover,
            "restarted": f.restarted,
            "ready": f.ready,
            "rejoined": f.rejoined,
            "detect_seconds": span(f.killed, f.failover),
            "start_seconds": span(f.restarted, f.ready),
            "catchup_seconds": span(f.ready, f.rejoined),
            "restart_to_in_sync_seconds": span(f.restarted, f.rejoined),
            "requests": len(inside),
            "failed": sum(errors.values()),
            "errors": errors,
            "failed_outside": sum(1 for s in outside if failed(s)),
            "load_seconds": round(seconds, 3),
            "rejoined_under_load": f.rejoined is not None and f.rejoined <= seconds,
            "operations": summarise(samples, seconds),
            "error": f.error,
        }


async def checksums(run: Context, cluster: Cluster) -> dict:
    """
    Once quiet: wait (up to 5 s, invariant 4) for the replicas of each
    service to agree, then each replica's C{applied_seq} and C{checksum}
    from its C{GET /status}, and whether they agree.
    """
    aftermath = Aftermath(run, cluster, 1)
    found = {}
    for service in ("catalog", "order"):
        await aftermath.converge(service)
        replicas = {}
        for replica in run.config.replicas[service]:
            status, body = await call(run.http, "GET", replica.url + "/status", timeout=2)
            answered = status == 200 and isinstance(body, dict)
            replicas[replica.name] = (
                {"applied_seq": body["applied_seq"], "checksum": body["checksum"]} if answered else None
            )
        seen = {name: None if r is None else (r["applied_seq"], r["checksum"]) for name, r in replicas.items()}
        found[service] = {"replicas": replicas, "agree": replicas_agree(seen)}
    return found
