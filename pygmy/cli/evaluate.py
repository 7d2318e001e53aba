"""
C{pygmy evaluate}: the course's three evaluation questions answered by
measurement against a running cluster (one that C{pygmy up --config}
started), written as a report: C{report.md} (and C{report.rst}) with PNG
plots in the C{--out} directory, and the figures as JSON (C{--json}).

1. Response time of search, lookup and buy with and without the front
   end's cache, for 1, 3, 5 and 9 concurrent clients (p50, p95, p99 per
   operation).  "Without the cache" is measured two ways.  Reads sent
   with C{Cache-Control: no-cache} ("bypass"): the same front end reads
   through and stores nothing, so the comparison with the cache is made
   by one process at one moment; the buys of those steps still run with
   the cache in place.  And a front end restarted with C{cache_size = 0}
   ("off", from a copy of the config in C{data_dir}): no cache at all,
   for the writes as well as the reads.
2. The cost of cache consistency: buy and update latency with the cache
   on, off, and on again (one client, one request at a time; the two runs
   with the cache bracket the other, so their spread shows how much the
   machine drifted meanwhile), and the first lookup
   after an invalidation (a miss) against the next one (a hit), with the
   front end's own hit and miss counters as the witness.
3. Fault tolerance (L{pygmy.cli.evaluate_faults}): C{kill -9} of each
   service's primary and of a catalog backup under load.

The steps are L{pygmy.cli.load}'s: its request plan, its load
(L{pygmy.cli.load.under_load}, with its progress bar) and L{summarise};
stops and restarts go through L{pygmy.cli.lifecycle}.  The report is
L{pygmy.cli.evaluate_report}, the plots L{pygmy.cli.evaluate_plot}, the
options L{pygmy.cli.evaluate_options}.  The
cluster is left as it was found: the front end back on the original
config, every process running.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

from pygmy.cli import evaluate_cluster, load
from pygmy.cli.chaos_cluster import Abort, Cluster, Context
from pygmy.cli.chaos_faults import FaultSchedule
from pygmy.cli.client import ClientError, Frontend, react_for_status
from pygmy.cli.evaluate_faults import FAULTS, FaultRun, checksums
from pygmy.cli.evaluate_options import BUDGETS, MODES, Settings, settings
from pygmy.cli.loadgen import Request, overall, summarise


class WritesPlan:
    """
    The requests of question 2, one at a time: a buy, then an update
    (+1 copy, so the stock stays as it was), of items in turn.
    """

    def __init__(self, url: str, items: list[int], auth: dict):
        self.url, self.items = url, items
        self.headers = {**auth, "Content-Type": "application/json"}

    def update(self, item: int) -> Request:
        """C{POST /update/<item>} adding one copy."""
        return Request("update", "POST", f"{self.url}/update/{item}", self.headers, b'{"stock_delta": 1}')

    def __call__(self, n: int) -> Request:
        """The C{n}-th request."""
        item = self.items[(n // 2) % len(self.items)]
        return Request("buy", "POST", f"{self.url}/buy/{item}") if n % 2 == 0 else self.update(item)


class InvalidationPlan(WritesPlan):
    """
    Cycles of three requests on one item: an update (the invalidation),
    the lookup after it (a miss), the same lookup again (a hit).
    """

    def __call__(self, n: int) -> Request:
        """The C{n}-th request."""
        item = self.items[(n // 3) % len(self.items)]
        if n % 3 == 0:
            return self.update(item)
        return Request("miss" if n % 3 == 1 else "hit", "GET", f"{self.url}/lookup/{item}")


class Evaluation:
    """
    One run of C{pygmy evaluate} against the cluster of C{config}: the
    three questions in turn; L{run} returns the measurements (the JSON
    document but for the machine, which L{pygmy.cli.evaluate_report} adds).
    """

    def __init__(self, reactor, config, http, settings: Settings, console):
        self.settings, self.console = settings, console
        self.run_context = Context(reactor, config, http, random.Random(settings.seed), self.print)
        self.cluster = Cluster(self.run_context)
        self.frontend = evaluate_cluster.FrontendSwitch(self.run_context, self.cluster)
        self.url = config.frontend.url
        self.items, self.topics = [], []
        self.number, self.total = 0, len(settings.clients) * len(MODES) + 4 + len(FAULTS)
        #: The samples, seconds and events of each fault step, for its plot.
        self.samples: dict[str, tuple] = {}

    def print(self, line: str) -> None:
        """A line of progress on the console."""
        self.console.print(line, highlight=False, markup=False, soft_wrap=True)

    def heading(self, title: str) -> None:
        """The line before a step: its number of all, and what it measures."""
        self.number += 1
        self.print(f"[{self.number}/{self.total}] {title}")

    async def run(self) -> dict:
        """Every step; the cluster is left as it was found, even after a failure."""
        run = self.run_context
        evaluate_cluster.require_running(run.config)
        if run.config.frontend.cache_size < 1:
            raise Abort(f"{run.config.path}: [frontend] cache_size is 0; the evaluation compares it on and off")
        found = {"started": time.time()}
        try:
            for service in evaluate_cluster.SERVICES:
                await self.cluster.settled(service)
            self.items, self.topics = await load.catalog(Frontend(run.http, self.url, 5.0))
            found["response_time"], found["consistency"] = [], {}
            await self.cached(found)
            await self.uncached(found)
            found["consistency"]["on_again"] = await self.writes("on", again=True)
            found["faults"] = await self.faults()
            found["checksums"] = await checksums(run, self.cluster)
        finally:
            await self.leave_as_found()
        found["seconds"] = round(time.time() - found["started"], 1)
        return found

    async def leave_as_found(self) -> None:
        """The front end back on the original config, every process running; says what it could not do."""
        run = self.run_context
        run.echo, run.started = self.print, None
        try:
            await self.frontend.restore()
        except Abort as e:
            self.print(f"could not put the front end back: {e}")
        for line in await evaluate_cluster.restart_missing(run):
            self.print(line)

    async def cached(self, found: dict) -> None:
        """Question 1 with the cache and bypassing it; question 2 with the cache."""
        found["cache_on"] = await evaluate_cluster.cache_status(self.cluster)
        for clients in self.settings.clients:
            for mode in ("on", "bypass"):
                found["response_time"].append(await self.step(clients, mode))
        found["consistency"]["on"] = await self.writes("on")
        found["consistency"]["invalidation"] = await self.invalidation()

    async def uncached(self, found: dict) -> None:
        """The front end restarted with C{cache_size = 0}: question 1 and 2 without a cache, then back."""
        from pygmy import config as configuration

        copy = evaluate_cluster.cache_off_copy(self.run_context.config)
        self.print(f"restarting the front end with the cache off ({copy})")
        await self.frontend.switch(configuration.load(copy))
        found["cache_off"] = await evaluate_cluster.cache_status(self.cluster)
        found["cache_off_config"] = str(copy)
        for clients in self.settings.clients:
            found["response_time"].append(await self.step(clients, "off"))
        found["consistency"]["off"] = await self.writes("off")
        self.print("restarting the front end with its own config (the cache on)")
        await self.frontend.restore()

    async def measured(self, settings: load.Settings, plan, crash=None) -> tuple[list, float, dict]:
        """
        One load (L{pygmy.cli.load.under_load}) after a restock; its
        samples, its seconds, and the change of the cache counters and the
        load average at its start (C{counters}, C{load_average}).
        """
        await evaluate_cluster.restock(self.cluster)
        before = await evaluate_cluster.cache_status(self.cluster)
        run, load_average = self.run_context, round(os.getloadavg()[0], 2)
        samples, seconds = await load.under_load(run.reactor, settings, run.http, plan, crash, self.console)
        after = await evaluate_cluster.cache_status(self.cluster)
        return samples, seconds, {"counters": evaluate_cluster.counted(before, after), "load_average": load_average}

    def load_settings(self, clients: int, duration=None, count=None, no_cache=False) -> load.Settings:
        """The settings of one load step."""
        chosen = self.settings
        return load.Settings(
            url=self.url,
            clients=clients,
            duration=duration,
            count=count,
            mix=chosen.mix,
            no_cache=no_cache,
            seed=chosen.seed,
            timeout=chosen.timeout,
            crash_at=chosen.kill_at,
            down=chosen.down,
        )

    async def step(self, clients: int, mode: str) -> dict:
        """Question 1: C{clients} clients for C{--step} seconds, with the cache C{mode}."""
        self.heading(f"(1) response time: {clients} client{'s' if clients > 1 else ''}, cache {mode}")
        settings = self.load_settings(clients, duration=self.settings.step, no_cache=mode == "bypass")
        rng = random.Random(f"{self.settings.seed}-{clients}-{mode}")
        plan = load.Plan(self.url, self.settings.mix, self.items, self.topics, rng, settings.no_cache)
        samples, seconds, extras = await self.measured(settings, plan)
        return {
            "clients": clients,
            "cache": mode,
            "seconds": round(seconds, 3),
            "operations": summarise(samples, seconds),
            "all": overall(samples, seconds),
            **extras,
        }

    async def writes(self, mode: str, again: bool = False) -> dict:
        """Question 2: buys and updates, one at a time, with the cache C{mode} (C{again}: a second time)."""
        self.heading(f"(2) buy and update latency, cache {mode}" + (" again" if again else ""))
        plan = WritesPlan(self.url, self.items, self.cluster.auth)
        samples, seconds, extras = await self.measured(self.load_settings(1, count=2 * self.settings.requests), plan)
        return {"operations": summarise(samples, seconds), "seconds": round(seconds, 3), **extras}

    async def invalidation(self) -> dict:
        """Question 2: the lookup after an invalidation (a miss) against the next (a hit)."""
        self.heading("(2) lookup after an invalidation (miss) against a hit")
        plan = InvalidationPlan(self.url, self.items, self.cluster.auth)
        cycles = self.settings.requests
        samples, seconds, extras = await self.measured(self.load_settings(1, count=3 * cycles), plan)
        return {"cycles": cycles, "operations": summarise(samples, seconds), **extras}

    async def faults(self) -> list[dict]:
        """Question 3: each of L{FAULTS} during a load step of its own."""
        run, chosen = self.run_context, self.settings
        schedule = FaultSchedule(run, self.cluster, 0.0)
        found = []
        for service, role in FAULTS:
            self.heading(f"(3) kill -9 of the {service} {role} under load ({chosen.fault_clients} clients)")
            fault = FaultRun(run, self.cluster, schedule, service, role)
            try:
                for name in evaluate_cluster.SERVICES:
                    await self.cluster.poll(30.0, f"{name} is not whole", self.cluster.serving, name)
            except Abort as e:  # an earlier fault left it broken: no kill, and the checks fail
                fault.fault.error = f"not killed: {e}"
                self.print(f"ERROR: {fault.fault.error}")
                found.append(fault.record([], 0.0))
                continue
            duration = chosen.kill_at + chosen.down + chosen.tail
            rng = random.Random(f"{chosen.seed}-{service}-{role}")
            plan = load.Plan(self.url, chosen.mix, self.items, self.topics, rng)
            samples, seconds, _ = await self.measured(self.load_settings(chosen.fault_clients, duration), plan, fault)
            run.echo, run.started = self.print, None
            found.append(fault.record(samples, seconds))
            self.samples[f"{service}-{role}"] = (samples, seconds, fault.events())
        return found


async def evaluate(reactor, config, settings: Settings, out, err) -> int:
    """Run the evaluation, write the report; return the exit status (1 if a check failed)."""
    from rich.console import Console
    from treq.client import HTTPClient
    from twisted.web.client import Agent, HTTPConnectionPool

    from pygmy.cli import evaluate_report

    pool = HTTPConnectionPool(reactor)
    pool.maxPersistentPerHost = max(*settings.clients, BUDGETS["full"]["fault_clients"]) + 4
    http = HTTPClient(Agent(reactor, pool=pool, connectTimeout=settings.timeout))
    console = Console(file=err, highlight=False)
    machine_before = evaluate_report.machine()
    try:
        evaluation = Evaluation(reactor, config, http, settings, console)
        measured = await evaluation.run()
    finally:
        await pool.closeCachedConnections()
    document = evaluate_report.document(settings, config, machine_before, measured)
    written = evaluate_report.write(settings.out, document, evaluation.samples)
    if settings.json == "-":
        print(json.dumps(document, indent=2), file=out)
    elif settings.json is not None:
        Path(settings.json).write_text(json.dumps(document, indent=2) + "\n")
        written.append(settings.json)
    failed = [c for c in document["checks"] if not c["ok"]]
    for name in written:
        print(f"wrote {name}", file=err if settings.json == "-" else out)
    for check in failed:
        print(f"pygmy evaluate: check failed: {check['what']}: {check['detail']}", file=err)
    return 1 if failed else 0


def main(args, argv=(), out=None, err=None) -> int:
    """C{pygmy evaluate} (C{args} from L{pygmy.cli}) under C{react}; return the exit status."""
    from pygmy import config as configuration

    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    try:
        load.require("rich", "pygmy evaluate")
        load.require("matplotlib", "pygmy evaluate")
        chosen = settings(args, argv)
        config = configuration.load(chosen.config)
    except ClientError as e:
        print(f"pygmy evaluate: {e}", file=err)
        return e.status
    except configuration.ConfigError as e:
        print(f"pygmy evaluate: {e}", file=err)
        return 2

    async def command(reactor) -> int:
        try:
            return await evaluate(reactor, config, chosen, out, err)
        except (Abort, ClientError) as e:
            print(f"pygmy evaluate: {e}", file=err)
            return 2

    return react_for_status(command)
