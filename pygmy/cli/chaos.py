"""
C{pygmy chaos}: crash replicas of a running cluster under load, restart
them, and check the invariants of DESIGN.md section 6.

Against a cluster started by C{pygmy up} (same C{config.ini}), concurrent
clients buy and read through the front end (treq, one reactor, no threads)
while a restocker adds copies of one scarce item, so that buys of the last
copies and C{409} answers happen too.  Before the load, the run sets that
item's stock to L{SCARCE_STOCK}, tops every other item below
L{TOP_UP_BELOW} up to L{TOP_UP}, and only then takes its
snapshot.  Meanwhile, one after the other, the catalog primary, a catalog
backup and the order primary are killed with C{kill -9} (pid from the pid
file), left down for a while, and restarted with the command C{pygmy up}
uses.  With C{--frontend} the front end is killed and restarted as well,
and the run checks invariants 7 and 9 too (no acknowledged write lost
across the kill; every decrement has exactly one order); with several
front ends, the view manager and then a follower are killed, the clients
go on through the others, every front end's C{/status} is polled, and
invariant 8 is checked (L{pygmy.cli.chaos_frontends}).  Throughout, one
book's cost is changed again and again and read back through every front
end (invariant 6).  Then the load stops, the run reads back the stock, the
replicas' tables and every order, and L{pygmy.cli.invariants} (and
L{pygmy.cli.invariants_frontends}) checks and reports.

This module sets up and orders the run; its pieces are the load
(L{pygmy.cli.chaos_load}), the fault schedule (L{pygmy.cli.chaos_faults},
killing and restarting through L{pygmy.cli.lifecycle}), the read-back
(L{pygmy.cli.chaos_checks}) and the cluster they share
(L{pygmy.cli.chaos_cluster}).
"""

from __future__ import annotations

import random

from pygmy.cli import launcher
from pygmy.cli.chaos_checks import Aftermath
from pygmy.cli.chaos_cluster import Abort, Cluster, Context
from pygmy.cli.chaos_faults import FaultSchedule
from pygmy.cli.chaos_frontends import CostWriter, Watch
from pygmy.cli.chaos_load import Load
from pygmy.cli.invariants import check_all, report, stock_levels
from pygmy.cli.invariants_frontends import FrontendObservations

#: Stock the scarce item starts with; other items below TOP_UP_BELOW are topped up to TOP_UP.
SCARCE_STOCK = 10
TOP_UP_BELOW, TOP_UP = 200, 1000


def stock_targets(stock: dict[int, int], scarce: int) -> dict[int, int]:
    """
    The stock the run sets before its snapshot, by item id:
    L{SCARCE_STOCK} for C{scarce}, L{TOP_UP} for any other item
    below L{TOP_UP_BELOW}; items already there are left out.
    """
    targets = {}
    for item, now in sorted(stock.items()):
        target = SCARCE_STOCK if item == scarce else TOP_UP if now < TOP_UP_BELOW else None
        if target is not None and target != now:
            targets[item] = target
    return targets


class Run:
    """
    One chaos run against the cluster of C{config}: set-up, then the load
    and the fault schedule side by side, then the read-back and the checks.

    @param http: a treq C{HTTPClient}.
    @param rng: the run's C{random.Random}.
    @param echo: prints one line.
    @param frontend: whether the front end is killed too, and invariant 9 checked.
    """

    def __init__(self, reactor, config, http, duration: float, clients: int, rng, echo, frontend: bool = False):
        self.context = Context(reactor, config, http, rng, echo)
        coordinator = config.coordinator
        bound = coordinator.lease_ttl + config.cluster.heartbeat_timeout if coordinator else None
        self.context.obs.frontends = FrontendObservations(tuple(config.frontends), bound)
        self.cluster = Cluster(self.context)
        self.duration = duration
        self.clients = clients
        self.frontend = frontend

    async def run(self) -> int:
        """Set up, load and crash, check, report; return the exit status."""
        run = self.context
        load = await self.prepare()
        watch = Watch(run) if run.obs.several else None
        faults = FaultSchedule(run, self.cluster, self.duration, self.frontend, watch)
        costs = CostWriter(run, self.cluster, load.watched)
        run.started = run.reactor.seconds()
        if watch is not None:
            watch.start()
        load.start()
        costs.start()
        run.say(
            f"load started: {self.clients} clients buying and reading, restocks of item {load.scarce}, "
            f"new costs of item {load.watched}"
        )
        try:
            await faults.crash_each()
            await run.until(self.duration)
        finally:
            await load.stop()
            await costs.stop()
            if watch is not None:
                await watch.stop()
        run.say("load stopped; checking")
        await Aftermath(run, self.cluster, self.clients).gather()
        checks = check_all(run.obs, self.frontend)
        for line in report(run.obs, checks):
            run.echo(line)
        return 0 if all(c.ok for c in checks) else 1

    async def prepare(self) -> Load:
        """
        Check the cluster is up and settled, set the stock up, take the
        snapshot; return the load, not started yet.
        """
        run, cluster, config = self.context, self.cluster, self.context.config
        # A local etcd may run on its own (pygmy up uses it then): not ours to check.
        ours = [p for p in launcher.processes(config) if p.role != "etcd"]
        down = [p.name for p in ours if launcher.running_pid(p) is None]
        if down:
            raise Abort(
                f"not running (no live pid file in {config.cluster.data_dir}): "
                f"{', '.join(down)}; start the cluster with `pygmy up --config {config.path}`"
            )
        for service in ("catalog", "order"):
            view = await cluster.settled(service)
            run.say(f"{service}: view {view['view']}, primary {view['primary']}, backups {','.join(view['backups'])}")
        items = await cluster.listing()
        topics = sorted({item["topic"] for item in items.values()})
        scarce = run.rng.choice(sorted(items))
        stock = stock_levels(items)
        for item_id, target in stock_targets(stock, scarce).items():
            if not await cluster.update_stock(item_id, target - stock[item_id]):
                raise Abort(f"could not set the stock of item {item_id} to {target}")
            run.say(f"item {item_id} stock {stock[item_id]} -> {target}")
        run.obs.start_stock = stock_levels(await cluster.listing())
        run.obs.orders_before = await cluster.order_table()
        run.say(f"snapshot: stock {run.obs.start_stock}, {len(run.obs.orders_before)} orders")
        load = Load(run, cluster, self.clients, sorted(items), topics, scarce)
        load.watched = run.rng.choice(sorted(set(items) - {scarce}) or sorted(items))
        return load


async def run_chaos(reactor, config, duration: float, clients: int, seed: int, echo, frontend: bool = False) -> int:
    """Run one chaos run in C{reactor}; return the exit status."""
    from treq.client import HTTPClient
    from twisted.web.client import Agent, HTTPConnectionPool

    urls = ", ".join(front.url for front in config.frontends.values())
    front = ("front ends " if len(config.frontends) > 1 else "front end ") + urls
    front += " (killed and restarted too)" if frontend else ""
    echo(f"pygmy chaos: seed {seed}, {clients} clients, {duration:g}s of load, {front}")
    pool = HTTPConnectionPool(reactor)
    pool.maxPersistentPerHost = clients + 8 + len(config.frontends)
    http = HTTPClient(Agent(reactor, pool=pool, connectTimeout=5))
    try:
        return await Run(reactor, config, http, duration, clients, random.Random(seed), echo, frontend).run()
    except Abort as e:
        echo(f"pygmy chaos: {e}")
        return 2
    finally:
        await pool.closeCachedConnections()


def main(config, duration: float, clients: int, seed: int | None, echo=print, frontend: bool = False) -> int:
    """C{pygmy chaos}: run L{run_chaos} under C{react}; return the exit status."""
    from pygmy.cli.client import react_for_status

    seed = random.randrange(1, 2**31) if seed is None else seed
    return react_for_status(lambda reactor: run_chaos(reactor, config, duration, clients, seed, echo, frontend))
