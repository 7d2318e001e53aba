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
uses.  Then the load stops, the run reads back the stock, the replicas'
tables and every order, and L{pygmy.cli.invariants} checks and reports.
"""

from __future__ import annotations

import json
import os
import random
import signal
from uuid import uuid4

from pygmy.cli import launcher
from pygmy.cli.invariants import (
    CONVERGE_WITHIN,
    Fault,
    Observations,
    check_all,
    describe_answer,
    describe_states,
    order_items,
    replicas_agree,
    report,
    row_stock,
    stock_levels,
)

#: What is killed, in order: (service, role).
FAULTS = (("catalog", "primary"), ("catalog", "backup"), ("order", "primary"))
#: Seconds to wait for the cluster to settle, a restart to answer, a rejoin.
SETTLE_TIMEOUT = 30.0
#: Seconds one client request may take.
REQUEST_TIMEOUT = 30.0
#: Stock the scarce item starts with; other items below TOP_UP_BELOW are topped up to TOP_UP.
SCARCE_STOCK = 10
TOP_UP_BELOW, TOP_UP = 200, 1000
#: Bounds of the loops: operations per client, tries per restock.
MAX_OPS = 1_000_000
RESTOCK_TRIES = 100


class Abort(Exception):
    """The run cannot start or go on (cluster not up, set-up failed)."""


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


# Talking to the cluster


async def call(http, method: str, url: str, body=None, headers=None, timeout=REQUEST_TIMEOUT):
    """
    One request; return C{(status, decoded JSON or None)}, or
    C{(None, reason)} if no answer came.
    """
    data = None if body is None else json.dumps(body).encode()
    try:
        response = await http.request(method, url, data=data, headers=headers or {}, timeout=timeout)
        content = await response.content()
    except Exception as e:  # any transport failure is "no answer"
        return None, f"{type(e).__name__}: {e}"
    try:
        return response.code, json.loads(content)
    except ValueError:
        return response.code, None


def sleep(clock, seconds: float):
    """A Deferred that fires after C{seconds} (never blocks the reactor)."""
    from twisted.internet.task import deferLater

    return deferLater(clock, max(seconds, 0.0), lambda: None)


async def restart(reactor, config, process: launcher.Process) -> str:
    """
    Start C{process} again with C{pygmy up}'s command, without blocking the
    reactor; return "" or what went wrong.
    """
    from twisted.internet.utils import getProcessOutputAndValue

    launcher.clear_stale(process)
    argv = launcher.command(config, process)
    try:
        out, err, code = await getProcessOutputAndValue(
            argv[0], argv[1:], env=dict(os.environ), path=str(process.data_dir), reactor=reactor
        )
    except Exception as e:
        return f"twistd failed: {e}"
    if code != 0:
        said = (err or out).decode(errors="replace").strip().splitlines()
        return f"twistd exited with {code}: {said[0] if said else ''}"
    return ""


# The run


class Run:
    """
    One chaos run against the cluster of C{config}.

    @param http: a treq C{HTTPClient}.
    @param rng: the run's C{random.Random}.
    @param echo: prints one line.
    """

    def __init__(self, reactor, config, http, duration: float, clients: int, rng, echo):
        self.reactor = reactor
        self.config = config
        self.http = http
        self.duration = duration
        self.clients = clients
        self.rng = rng
        self.echo = echo
        self.url = config.frontend.url
        self.auth = {"Authorization": f"Bearer {config.cluster.secret}"}
        self.processes = {p.name: p for p in launcher.processes(config)}
        self.obs = Observations()
        self.running = False
        self.started: float | None = None
        self.items: list[int] = []
        self.topics: list[str] = []
        self.scarce = 0
        self.orders: list[tuple[int, int]] = []

    def now(self) -> float:
        """Seconds since the load began (0 before)."""
        return 0.0 if self.started is None else self.reactor.seconds() - self.started

    def say(self, text: str) -> None:
        """Print a progress line, stamped with the time since the load began."""
        self.echo(f"[{self.now():6.2f}s] {text}" if self.started else f"[ set-up] {text}")

    async def run(self) -> int:
        """Set up, load and crash, check, report; return the exit status."""
        from twisted.internet.defer import DeferredList, ensureDeferred
        from twisted.internet.task import LoopingCall

        await self.prepare()
        self.started, self.running = self.reactor.seconds(), True
        workers = [ensureDeferred(self.client()) for _ in range(self.clients)]
        workers.append(ensureDeferred(self.restocker()))
        ticker = LoopingCall(self.progress)
        ticker.clock = self.reactor
        ticker.start(2.0, now=False)
        self.say(f"load started: {self.clients} clients buying and reading, restocks of item {self.scarce}")
        try:
            await self.crash_each()
            await self.until(self.duration)
        finally:
            self.running = False
            ticker.stop()
            await DeferredList(workers)
        self.say("load stopped; checking")
        await self.check()
        checks = check_all(self.obs)
        for line in report(self.obs, checks):
            self.echo(line)
        return 0 if all(c.ok for c in checks) else 1

    # Set-up

    async def prepare(self) -> None:
        """Check the cluster is up and settled, set the stock up, take the snapshot."""
        down = [p.name for p in self.processes.values() if launcher.running_pid(p) is None]
        if down:
            raise Abort(
                f"not running (no live pid file in {self.config.cluster.data_dir}): "
                f"{', '.join(down)}; start the cluster with `pygmy up --config {self.config.path}`"
            )
        for service in ("catalog", "order"):
            view = await self.settled(service)
            self.say(f"{service}: view {view['view']}, primary {view['primary']}, backups {','.join(view['backups'])}")
        items = await self.listing()
        self.items = sorted(items)
        self.topics = sorted({item["topic"] for item in items.values()})
        self.scarce = self.rng.choice(self.items)
        stock = stock_levels(items)
        for item_id, target in stock_targets(stock, self.scarce).items():
            if not await self.update_stock(item_id, target - stock[item_id]):
                raise Abort(f"could not set the stock of item {item_id} to {target}")
            self.say(f"item {item_id} stock {stock[item_id]} -> {target}")
        self.obs.start_stock = stock_levels(await self.listing())
        self.obs.orders_before = await self.order_table()
        self.say(f"snapshot: stock {self.obs.start_stock}, {len(self.obs.orders_before)} orders")

    async def fetch(self, url: str, what: str, **kwargs) -> dict:
        """C{GET url}; its JSON body, or L{Abort} naming C{what} if it is not a 200."""
        status, body = await call(self.http, "GET", url, **kwargs)
        if status != 200:
            raise Abort(f"{what}: {describe_answer(status, body)}")
        return body

    async def listing(self) -> dict[int, dict]:
        """C{GET /list} through the front end, by item id."""
        body = await self.fetch(self.url + "/list", "GET /list")
        return {item["id"]: item for item in body["items"]}

    async def view(self, service: str) -> dict:
        """The front end's view of C{service} (C{GET /status})."""
        body = await self.fetch(self.url + "/status", "GET /status of the front end", timeout=5)
        return body["services"][service]

    async def settled(self, service: str) -> dict:
        """Wait until C{service} has a primary and every replica in its view; return the view."""
        failure = f"{service} did not settle (all replicas in the view)"
        return await self.poll(SETTLE_TIMEOUT, failure, self.full_view, service)

    async def full_view(self, service: str) -> dict | None:
        """A probe: the view of C{service} if it has a primary and every replica."""
        view = await self.view(service)
        names = {r.name for r in self.config.replicas[service]}
        return view if view["primary"] and {view["primary"], *view["backups"]} == names else None

    async def poll(self, timeout: float, failure: str, probe, *args):
        """Await C{probe(*args)} every 0.1 s until it returns something true; bounded."""
        deadline = self.reactor.seconds() + timeout
        while True:
            result = await probe(*args)
            if result:
                return result
            if self.reactor.seconds() >= deadline:
                raise Abort(f"{failure} within {timeout:.0f}s")
            await sleep(self.reactor, 0.1)

    async def until(self, moment: float) -> None:
        """Sleep until C{moment} seconds after the load began."""
        await sleep(self.reactor, moment - self.now())

    # Load

    def progress(self) -> None:
        """Print the counts so far."""
        b, r = self.obs.buys, self.obs.reads
        self.say(f"buys {b['200']} ok / {b['409']} 409 / {b['503']} 503, reads {r['ok']} ok / {r['failed']} failed")

    async def client(self) -> None:
        """One client: buys and reads, until the load stops."""
        for _ in range(MAX_OPS):
            if not self.running:
                return
            try:
                await self.operation()
            except Exception as e:  # a bug here must not end the client silently
                self.obs.fail(f"client error: {type(e).__name__}: {e}")

    async def operation(self) -> None:
        """One random operation."""
        dice = self.rng.random()
        if dice < 0.45:
            await self.buy(self.rng.choice(self.items))
        elif dice < 0.70 or (dice >= 0.85 and not self.orders):
            book = await self.read(f"/lookup/{self.rng.choice(self.items)}")
            self.obs.record_lookup(book, self.now())
        elif dice < 0.80:
            await self.read(f"/search/{self.rng.choice(self.topics)}")
        elif dice < 0.85:
            await self.read("/list")
        else:
            order, item = self.rng.choice(self.orders)
            self.obs.record_order_read(order, item, await self.read(f"/orders/{order}"))

    async def buy(self, item: int) -> None:
        """C{POST /buy/<item>}; record the order of a 200."""
        status, body = await call(self.http, "POST", f"{self.url}/buy/{item}")
        order = self.obs.record_buy(item, status, body)
        if order is not None:
            self.orders.append((order, item))

    async def read(self, path: str):
        """A GET through the front end; return its body, or C{None} if it failed."""
        status, body = await call(self.http, "GET", self.url + path)
        return self.obs.record_read(path, self.now(), status, body)

    async def restocker(self) -> None:
        """Add a few copies of the scarce item every 0.5 s, until the load stops."""
        for _ in range(MAX_OPS):
            if not self.running:
                return
            await sleep(self.reactor, 0.5)
            delta = self.rng.randint(1, 3)
            if await self.update_stock(self.scarce, delta):
                self.obs.restocks[self.scarce] += delta

    async def update_stock(self, item: int, delta: int) -> bool:
        """
        C{POST /update/<item>} with one C{Idempotency-Key}, tried again
        after a 503 or no answer until it is known to have been applied
        (True) or refused (False); bounded in tries and time.
        """
        key = uuid4().hex
        headers = {**self.auth, "Idempotency-Key": key}
        path = f"/update/{item}"
        deadline = self.reactor.seconds() + SETTLE_TIMEOUT
        for _ in range(RESTOCK_TRIES):
            status, body = await call(self.http, "POST", self.url + path, {"stock_delta": delta}, headers)
            if status == 200:
                return True
            if status not in (None, 503):
                self.obs.fail(f"POST {path} at {self.now():.2f}s: {describe_answer(status, body)}")
                if status < 500:
                    return False
            if self.reactor.seconds() >= deadline:
                break
            await sleep(self.reactor, 0.2)
        self.obs.unresolved_restocks.append(f"{delta:+d} to item {item} (Idempotency-Key {key})")
        return False

    # Crashes

    async def crash_each(self) -> None:
        """Kill and restart each of L{FAULTS} in turn, spread over the run."""
        slot = self.duration / len(FAULTS)
        down = max(2.5 * self.config.cluster.heartbeat_timeout, slot * 0.35)
        for number, (service, role) in enumerate(FAULTS):
            await self.until(number * slot + slot * 0.25)
            fault = Fault(service, role)
            self.obs.faults.append(fault)
            try:
                await self.crash(fault, down)
            except Abort as e:
                fault.error = str(e)
                self.say(f"ERROR: {fault.target or service}: {e}")
            await sleep(self.reactor, 0.5)

    async def crash(self, fault: Fault, down: float) -> None:
        """C{kill -9} the replica C{fault} names, wait C{down} s, restart it, wait for its rejoin."""
        view = await self.settled(fault.service)
        name = view["primary"] if fault.role == "primary" else self.rng.choice(view["backups"])
        process = self.processes[f"{fault.service}:{name}"]
        pid = launcher.running_pid(process)
        if pid is None:
            raise Abort(f"no live pid in {process.pidfile}")
        fault.target, fault.pid = process.name, pid
        os.kill(pid, signal.SIGKILL)
        fault.killed = self.now()
        self.say(f"kill -9 {process.name} ({fault.role}, pid {pid})")
        await self.poll(10.0, f"pid {pid} did not exit", self.gone, pid)
        if fault.role == "primary":
            await self.poll(SETTLE_TIMEOUT, "no new primary", self.new_primary, fault.service, name)
            fault.failover = self.now()
            self.say(f"{fault.service}: new primary after {fault.failover - fault.killed:.2f}s")
        await self.until(fault.killed + down)
        fault.restarted = self.now()
        self.say(f"restarting {process.name}")
        error = await restart(self.reactor, self.config, process)
        if error:
            raise Abort(f"restart failed: {error}\n{launcher.log_tail(process, 10)}")
        await self.poll(SETTLE_TIMEOUT, f"{process.ready_url} did not answer", self.answers, process.ready_url)
        fault.ready = self.now()
        await self.settled(fault.service)
        fault.rejoined = self.now()
        self.say(
            f"{process.name} is back in the {fault.service} view ({fault.rejoined - fault.killed:.2f}s after the kill)"
        )

    async def gone(self, pid: int) -> bool:
        """A probe: has C{pid} exited?"""
        return not launcher.pid_alive(pid)

    async def new_primary(self, service: str, old: str) -> bool:
        """A probe: has the front end chosen a primary other than C{old}?"""
        primary = (await self.view(service))["primary"]
        return primary is not None and primary != old

    async def answers(self, url: str) -> bool:
        """A probe: does C{url} answer 200?"""
        return (await call(self.http, "GET", url, timeout=2))[0] == 200

    # Checks

    async def check(self) -> None:
        """Gather what the checks need once the load has stopped."""
        from twisted.internet.defer import ensureDeferred, gatherResults

        await gatherResults([ensureDeferred(self.converge(s)) for s in ("catalog", "order")])
        try:
            self.obs.end_stock = stock_levels(await self.listing())
            for replica in self.config.replicas["catalog"]:
                self.obs.replica_stock[replica.label] = row_stock(await self.dump(replica))
            self.obs.orders_after = await self.order_table()
        except Abort as e:
            self.obs.fail(f"after the load: {e}")
        await self.retrieve_orders()

    async def converge(self, service: str) -> None:
        """Invariant 4: wait up to 5 s for the replicas of C{service} to agree."""
        replicas = self.config.replicas[service]
        deadline = self.reactor.seconds() + CONVERGE_WITHIN
        while True:
            seen = {}
            for replica in replicas:
                status, body = await call(self.http, "GET", replica.url + "/status", timeout=2)
                seen[replica.name] = (body["applied_seq"], body["checksum"]) if status == 200 else None
            if replicas_agree(seen):
                self.say(f"{service}: replicas agree at seq {seen[replicas[0].name][0]}")
                return
            if self.reactor.seconds() >= deadline:
                self.obs.divergence[service] = f"after {CONVERGE_WITHIN:.0f} s: {describe_states(seen)}"
                return
            await sleep(self.reactor, 0.1)

    async def dump(self, replica) -> list[dict]:
        """A replica's C{GET /admin/dump} rows."""
        url = replica.url + "/admin/dump"
        return (await self.fetch(url, f"GET {url} ({replica.label})", headers=self.auth))["rows"]

    async def order_table(self) -> dict[int, int]:
        """Every order (id -> item id), from the order primary's dump."""
        primary = (await self.view("order"))["primary"] or self.config.replicas["order"][0].name
        return order_items(await self.dump(self.config.replica("order", primary)))

    async def retrieve_orders(self) -> None:
        """Invariant 3: C{GET /orders/<id>} of every buy answered 200."""
        from twisted.internet.defer import DeferredList, DeferredSemaphore, ensureDeferred

        deadline = self.reactor.seconds() + 60.0

        async def one(order: int, item: int):
            if self.reactor.seconds() >= deadline:
                self.obs.unretrievable[order] = "not checked: out of time"
                return
            status, body = await call(self.http, "GET", f"{self.url}/orders/{order}")
            self.obs.record_retrieval(order, item, status, body)

        gate = DeferredSemaphore(max(self.clients, 16))
        await DeferredList([gate.run(lambda o=o, i=i: ensureDeferred(one(o, i))) for o, i in self.obs.bought.items()])
        self.say(f"{len(self.obs.bought)} orders read back, {len(self.obs.unretrievable)} not retrievable")


async def run_chaos(reactor, config, duration: float, clients: int, seed: int, echo) -> int:
    """Run one chaos run in C{reactor}; return the exit status."""
    from treq.client import HTTPClient
    from twisted.web.client import Agent, HTTPConnectionPool

    echo(f"pygmy chaos: seed {seed}, {clients} clients, {duration:g}s of load, front end {config.frontend.url}")
    pool = HTTPConnectionPool(reactor)
    pool.maxPersistentPerHost = clients + 8
    http = HTTPClient(Agent(reactor, pool=pool, connectTimeout=5))
    try:
        return await Run(reactor, config, http, duration, clients, random.Random(seed), echo).run()
    except Abort as e:
        echo(f"pygmy chaos: {e}")
        return 2
    finally:
        await pool.closeCachedConnections()


def main(config, duration: float, clients: int, seed: int | None, echo=print) -> int:
    """C{pygmy chaos}: run L{run_chaos} under C{react}; return the exit status."""
    from pygmy.cli.client import react_for_status

    seed = random.randrange(1, 2**31) if seed is None else seed
    return react_for_status(lambda reactor: run_chaos(reactor, config, duration, clients, seed, echo))
