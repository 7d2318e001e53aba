"""
The front ends in a C{pygmy chaos} run: what the checks of
L{pygmy.cli.invariants_frontends} need, gathered while the load runs.

L{Watch} polls every front end's C{GET /status} every
L{POLL_EVERY} seconds (with several front ends): who says it manages the
views, whom it names as manager, its view numbers.  L{CostWriter} gives
one book a new cost every L{COST_EVERY} seconds (the same
C{Idempotency-Key} on every try, through whichever front end answers) and,
once acknowledged, looks the book up through every front end at once.
L{crash_one_of_several} is the fault schedule's step for a front end of
several: C{kill -9} of the view manager (or of a follower), a new manager,
the restart, and the return as a follower that hears every replica.
"""

from __future__ import annotations

from uuid import uuid4

from pygmy.cli import lifecycle
from pygmy.cli.chaos_cluster import SETTLE_TIMEOUT, Cluster, Context, call
from pygmy.cli.invariants_frontends import CostRead, CostWrite, FrontendPoll

#: Seconds between two rounds of /status polls, and what one may take.
POLL_EVERY, POLL_TIMEOUT = 0.1, 1.0
#: Seconds between two cost updates.
COST_EVERY = 0.5
#: Bound of the cost writer's loop.
MAX_WRITES = 100_000


class Watch:
    """
    Every front end's C{/status}, polled from L{start} until L{stop}, into
    C{run.obs.frontends.polls}.
    """

    def __init__(self, run: Context):
        self.run = run
        self.urls = {name: front.url for name, front in run.config.frontends.items()}
        self.latest: dict[str, FrontendPoll] = {}
        self.ticker = None
        self.round = None

    def start(self) -> None:
        """Poll every L{POLL_EVERY} seconds (a round still running is not doubled)."""
        from twisted.internet.task import LoopingCall

        self.ticker = LoopingCall(self.tick)
        self.ticker.clock = self.run.reactor
        self.ticker.start(POLL_EVERY, now=True)

    async def stop(self) -> None:
        """Stop polling; fires once the last round is over."""
        if self.ticker is not None and self.ticker.running:
            self.ticker.stop()
        if self.round is not None:
            await self.round

    def tick(self) -> None:
        """One round, unless the last one is still waiting for an answer."""
        from twisted.internet.defer import ensureDeferred

        if self.round is None:
            self.round = ensureDeferred(self.poll_all())
            self.round.addBoth(self._done)

    def _done(self, result) -> None:
        self.round = None
        if hasattr(result, "getErrorMessage"):
            self.run.obs.fail(f"polling the front ends: {result.getErrorMessage()}")

    async def poll_all(self) -> None:
        """Every front end's C{/status}, at the same time."""
        from twisted.internet.defer import DeferredList, ensureDeferred

        await DeferredList([ensureDeferred(self.poll(name, url)) for name, url in self.urls.items()])

    async def poll(self, name: str, url: str) -> FrontendPoll:
        """One front end's C{/status}, recorded."""
        run = self.run
        sent = run.now()
        status, body = await call(run.http, "GET", url + "/status", timeout=POLL_TIMEOUT)
        answered = run.now()
        if status == 200 and isinstance(body, dict):
            block = body.get("frontend") or {}
            views = {service: view.get("view") for service, view in (body.get("services") or {}).items()}
            reading = block.get("views_read") is False
            found = FrontendPoll(name, sent, answered, block.get("role"), block.get("leader"), views, reading)
        else:
            found = FrontendPoll(name, sent, answered)
        run.obs.frontends.polls.append(found)
        self.latest[name] = found
        return found

    def manager(self) -> str | None:
        """A probe: the one front end whose latest answer says it manages the views, if exactly one does."""
        leading = [p.name for p in self.latest.values() if p.role == "leader"]
        return leading[0] if len(leading) == 1 else None

    def new_manager(self, old: str) -> float | None:
        """A probe: when another front end than C{old} was last seen managing the views, if it is."""
        poll = next((p for p in self.latest.values() if p.role == "leader" and p.name != old), None)
        return poll.answered if poll is not None else None

    def follower(self, name: str, since: float) -> bool:
        """A probe: has C{name} answered, since C{since}, as a follower naming a manager?"""
        poll = self.latest.get(name)
        return bool(poll and poll.sent >= since and poll.role == "follower" and poll.leader not in (None, name))


class CostWriter:
    """
    A new cost for book C{item} every L{COST_EVERY} seconds, each value
    new, from L{start} until L{stop}; after each acknowledgement, a lookup
    of the book through every front end at once.
    """

    def __init__(self, run: Context, cluster: Cluster, item: int):
        self.run, self.cluster, self.item = run, cluster, item
        self.running = False
        self.done = None
        run.obs.frontends.cost_item = item

    def start(self) -> None:
        """Start writing."""
        from twisted.internet.defer import ensureDeferred

        self.running = True
        self.done = ensureDeferred(self.loop())

    async def stop(self) -> None:
        """Stop; fires once the last write and its reads are over."""
        self.running = False
        if self.done is not None:
            await self.done

    async def loop(self) -> None:
        """Write, read back, pause; until stopped."""
        for number in range(MAX_WRITES):
            if not self.running:
                return
            try:
                await self.write(f"{1000 + number % 9000}.{number % 100:02d}")
            except Exception as e:  # a bug here must not end the writer silently
                self.run.obs.fail(f"cost writer: {type(e).__name__}: {e}")
            await lifecycle.sleep(self.run.reactor, COST_EVERY)

    async def write(self, value: str) -> None:
        """C{POST /update/<item>} C{{"cost": value}} until acknowledged or refused; then read it back everywhere."""
        from twisted.internet.defer import DeferredList, ensureDeferred

        run, ledger = self.run, self.run.obs.frontends
        sent = run.now()
        acked = await self.cluster.update(self.item, {"cost": value}, uuid4().hex)
        ledger.cost_writes.append(CostWrite(value, sent, run.now() if acked else None))
        if acked:  # (L{Cluster.update} noted the write's time)
            names = run.config.frontends
            await DeferredList([ensureDeferred(self.read(name, f.url)) for name, f in names.items()])

    async def read(self, name: str, url: str) -> None:
        """C{GET /lookup/<item>} through front end C{name} alone; its cost recorded (no answer: nothing)."""
        run = self.run
        sent = run.now()
        status, body = await call(run.http, "GET", f"{url}/lookup/{self.item}", timeout=5)
        if status == 200 and isinstance(body, dict):
            run.obs.frontends.cost_reads.append(CostRead(name, sent, run.now(), body.get("cost")))


async def crash_one_of_several(schedule, fault) -> None:
    """
    C{kill -9} of a front end of several: the view manager (C{fault.role}
    C{"manager"}) or a follower; note when another one manages the views,
    restart it after C{schedule.down_for()} and wait until it answers as a
    follower and hears every replica.  Buys it had in flight are expected
    losses meanwhile (L{Observations.frontend_down}); reads are not.
    """
    run, cluster, watch = schedule.run, schedule.cluster, schedule.watch
    for service in ("catalog", "order"):
        await cluster.settled(service)
    manager = await cluster.poll(SETTLE_TIMEOUT, "no front end manages the views", watch.manager)
    names = [name for name in run.config.frontends if name != manager]
    name = manager if fault.role == "manager" else run.rng.choice(names)
    process = schedule.processes[f"frontend:{name}"]
    run.obs.frontend_down = True
    try:
        await schedule.kill(fault, process)
        if fault.role == "manager":
            took = await cluster.poll(SETTLE_TIMEOUT, "no new view manager", watch.new_manager, name)
            fault.failover = took
            run.say(f"a new view manager after {fault.failover - fault.killed:.2f}s")
        await run.until(fault.killed + schedule.down_for())
        fault.restarted = run.now()
        run.say(f"restarting {process.name}")
        await schedule.restart(process)
        fault.ready = run.now()
        await cluster.poll(SETTLE_TIMEOUT, f"{name} did not come back as a follower", watch.follower, name, fault.ready)
        for service in ("catalog", "order"):
            url = run.config.frontends[name].url
            await cluster.poll(SETTLE_TIMEOUT, f"{name} does not hear all of {service}", cluster.serving, service, url)
        fault.rejoined = run.now()
    finally:
        run.obs.frontend_down = False
    run.say(f"{process.name} is back as a follower ({fault.rejoined - fault.killed:.2f}s after the kill)")
