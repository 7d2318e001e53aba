"""
The fault schedule of a C{pygmy chaos} run: one after the other, the
catalog primary, a catalog backup and the order primary are killed with
C{kill -9}, left down for a while and restarted (through
L{pygmy.cli.lifecycle}, the same way as C{pygmy load --crash}), each
recorded as a L{pygmy.cli.invariants.Fault} with its timeline.

With C{--frontend} the front end is killed and restarted too, between the
catalog backup and the order primary (so the restarted front end is the one
that handles the order failover).  From its kill until it hears every
replica of both services again, the load's failed requests count as the
expected unavailability of a front end that is down
(L{pygmy.cli.invariants.Observations.frontend_down}).  With several front
ends, the view manager is killed there instead, and a follower after the
order primary (L{pygmy.cli.chaos_frontends.crash_one_of_several}); then
only the buys the killed one had are expected losses: reads go on through
the others.
"""

from __future__ import annotations

from pygmy.cli import launcher, lifecycle
from pygmy.cli.chaos_cluster import SETTLE_TIMEOUT, Abort, Cluster, Context
from pygmy.cli.invariants import Fault

#: What is killed, in order: (service, role).
FAULTS = (("catalog", "primary"), ("catalog", "backup"), ("order", "primary"))
#: The front end, as a fault: killed with C{--frontend}, before the order primary.
FRONTEND = ("frontend", "front end")
#: With several front ends: the view manager before the order primary, a follower after it.
MANAGER, FOLLOWER = ("frontend", "manager"), ("frontend", "follower")
#: The services whose replicas the front end must hear again after its restart.
SERVICES = ("catalog", "order")


def schedule(frontend: bool = False, several: bool = False) -> tuple[tuple[str, str], ...]:
    """
    What a run kills, in order: L{FAULTS}, with L{FRONTEND} before the last
    one if C{frontend}; with C{several} front ends, L{MANAGER} there and
    L{FOLLOWER} at the end.
    """
    if not frontend:
        return FAULTS
    if several:
        return (*FAULTS[:-1], MANAGER, FAULTS[-1], FOLLOWER)
    return (*FAULTS[:-1], FRONTEND, FAULTS[-1])


class FaultSchedule:
    """
    L{schedule} spread over C{duration} seconds of load on C{cluster}.

    @param frontend: whether the front end is killed too (C{--frontend}).
    @param watch: the L{pygmy.cli.chaos_frontends.Watch} of several front
        ends (who manages the views), or C{None}.
    """

    def __init__(self, run: Context, cluster: Cluster, duration: float, frontend: bool = False, watch=None):
        self.run, self.cluster, self.duration = run, cluster, duration
        self.watch = watch
        self.faults = schedule(frontend, len(run.config.frontends) > 1)
        self.processes = {p.name: p for p in launcher.processes(run.config)}

    def down_for(self) -> float:
        """Seconds each killed process stays down: long enough to be noticed."""
        slot = self.duration / len(self.faults)
        return max(2.5 * self.run.config.cluster.heartbeat_timeout, slot * 0.35)

    async def crash_each(self) -> None:
        """Kill and restart each of L{faults} in turn, a quarter into its slot."""
        slot = self.duration / len(self.faults)
        down = self.down_for()
        for number, (service, role) in enumerate(self.faults):
            await self.run.until(number * slot + slot * 0.25)
            fault = Fault(service, role)
            self.run.obs.faults.append(fault)
            try:
                await self.crash(fault, down)
            except Abort as e:
                fault.error = str(e)
                self.run.say(f"ERROR: {fault.target or service}: {e}")
            await lifecycle.sleep(self.run.reactor, 0.5)

    async def crash(self, fault: Fault, down: float) -> None:
        """C{kill -9} the replica C{fault} names, wait C{down} s, restart it, wait for its rejoin."""
        if fault.service == FRONTEND[0] and fault.role != FRONTEND[1]:
            from pygmy.cli.chaos_frontends import crash_one_of_several

            return await crash_one_of_several(self, fault)
        if fault.service == FRONTEND[0]:
            return await self.crash_frontend(fault, down)
        run = self.run
        view = await self.cluster.settled(fault.service)
        name = view["primary"] if fault.role == "primary" else run.rng.choice(view["backups"])
        process = self.processes[f"{fault.service}:{name}"]
        await self.kill(fault, process)
        if fault.role == "primary":
            await self.cluster.poll(SETTLE_TIMEOUT, "no new primary", self.cluster.new_primary, fault.service, name)
            fault.failover = run.now()
            run.say(f"{fault.service}: new primary after {fault.failover - fault.killed:.2f}s")
        await run.until(fault.killed + down)
        fault.restarted = run.now()
        run.say(f"restarting {process.name}")
        await self.restart(process)
        fault.ready = run.now()
        await self.cluster.settled(fault.service)
        fault.rejoined = run.now()
        run.say(
            f"{process.name} is back in the {fault.service} view ({fault.rejoined - fault.killed:.2f}s after the kill)"
        )

    async def crash_frontend(self, fault: Fault, down: float) -> None:
        """
        C{kill -9} the front end once the cluster is settled, wait C{down}
        s, restart it, and wait until it hears every replica again; the
        load's failures meanwhile are expected.
        """
        run, cluster = self.run, self.cluster
        for service in SERVICES:
            await cluster.settled(service)
        process = self.processes[FRONTEND[0]]
        run.obs.frontend_down = True
        try:
            await self.kill(fault, process)
            await run.until(fault.killed + down)
            fault.restarted = run.now()
            run.say(f"restarting {process.name}")
            await self.restart(process)
            fault.ready = run.now()
            for service in SERVICES:
                await cluster.poll(SETTLE_TIMEOUT, f"{service} not heard in full", cluster.serving, service)
            fault.rejoined = run.now()
        finally:
            run.obs.frontend_down = False
        run.say(f"{process.name} hears every replica again ({fault.rejoined - fault.killed:.2f}s after the kill)")

    async def kill(self, fault: Fault, process: launcher.Process) -> None:
        """C{kill -9} of C{process}, noted in C{fault}; return once its pid is gone."""
        try:
            pid = lifecycle.kill(process)
            fault.target, fault.pid = process.name, pid
            fault.killed = self.run.now()
            self.run.say(f"kill -9 {process.name} ({fault.role}, pid {pid})")
            await lifecycle.gone(self.run.reactor, pid)
        except lifecycle.ProcessError as e:
            raise Abort(str(e)) from None

    async def restart(self, process: launcher.Process) -> None:
        """Start C{process} again; return once it answers."""
        run = self.run
        try:
            await lifecycle.restart(run.reactor, run.config, process, run.http, SETTLE_TIMEOUT)
        except lifecycle.StartError as e:
            raise Abort(f"restart failed: {e}\n{launcher.log_tail(process, 10)}") from None
        except lifecycle.Timeout as e:
            raise Abort(str(e)) from None
