"""
``pygmy chaos``: crash replicas of a running cluster under load, restart
them, and check the invariants of DESIGN.md section 6.

Against a cluster started by ``pygmy up`` (same ``config.ini``), concurrent
clients buy and read through the front end (treq, one reactor, no threads)
while a restocker adds copies of one scarce item, so that buys of the last
copies and ``409`` answers happen too.  Meanwhile, one after the other, the
catalog primary, a catalog backup and the order primary are killed with
``kill -9`` (pid from the pid file), left down for a while, and restarted
with the command ``pygmy up`` uses.  Then the load stops and the run checks:

1. no stock below zero (every lookup seen, the end, every replica's table);
2. per item: starting stock + restocks = current stock + orders placed;
3. every buy answered 200 has its order in the order table and is
   retrievable through ``GET /orders/<id>``;
4. within 5 s all replicas of a service report the same ``applied_seq`` and
   ``checksum``;
5. no read failed, and no request got a 5xx other than 503 (or no answer);
6. every killed replica came back and rejoined its service's view.

The checks are plain functions of an :class:`Observations`, so they can be
tested on synthetic data.
"""

from __future__ import annotations

import json
import os
import random
import signal
from collections import Counter
from dataclasses import dataclass, field
from uuid import uuid4

from pygmy import launcher

#: What is killed, in order: (service, role).
FAULTS = (("catalog", "primary"), ("catalog", "backup"), ("order", "primary"))
#: Invariant 4: seconds within which the replicas must agree once quiet.
CONVERGE_WITHIN = 5.0
#: Seconds to wait for the cluster to settle, a restart to answer, a rejoin.
SETTLE_TIMEOUT = 30.0
#: Seconds one client request may take.
REQUEST_TIMEOUT = 30.0
#: Stock the scarce item starts with; other items are topped up to TOP_UP.
SCARCE_STOCK = 10
TOP_UP_BELOW, TOP_UP = 200, 1000
#: Bounds of the loops: operations per client, tries per restock.
MAX_OPS = 1_000_000
RESTOCK_TRIES = 100
#: At most this many problems are kept per kind.
KEEP = 20


class Abort(Exception):
    """The run cannot start or go on (cluster not up, set-up failed)."""


# What a run sees


@dataclass
class Fault:
    """One kill and restart; times are seconds since the load began."""

    service: str
    role: str
    target: str = ""
    pid: int = 0
    killed: float | None = None
    failover: float | None = None
    restarted: float | None = None
    ready: float | None = None
    rejoined: float | None = None
    error: str = ""


@dataclass
class Observations:
    """Everything a chaos run saw: the input of the checks and the report."""

    start_stock: dict[int, int] = field(default_factory=dict)
    end_stock: dict[int, int] = field(default_factory=dict)
    replica_stock: dict[str, dict[int, int]] = field(default_factory=dict)
    restocks: Counter = field(default_factory=Counter)
    unresolved_restocks: list[str] = field(default_factory=list)
    orders_before: dict[int, int] = field(default_factory=dict)
    orders_after: dict[int, int] = field(default_factory=dict)
    bought: dict[int, int] = field(default_factory=dict)
    duplicate_orders: list[int] = field(default_factory=list)
    unretrievable: dict[int, str] = field(default_factory=dict)
    buys: Counter = field(default_factory=Counter)
    reads: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    failure_count: int = 0
    negative_seen: list[str] = field(default_factory=list)
    divergence: dict[str, str] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)

    def fail(self, what: str) -> None:
        """Record a failed read or an unexpected answer."""
        self.failure_count += 1
        if len(self.failures) < KEEP:
            self.failures.append(what)


# The checks


@dataclass(frozen=True)
class Check:
    """The verdict on one invariant: ok when it lists no problem."""

    number: int
    title: str
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the invariant held."""
        return not self.problems


def check_stock_never_negative(obs: Observations) -> Check:
    """Invariant 1: no stock below zero, seen anywhere."""
    problems = list(obs.negative_seen)
    problems += [f"item {i}: stock {s} at the end" for i, s in sorted(obs.end_stock.items()) if s < 0]
    for label, stock in sorted(obs.replica_stock.items()):
        problems += [f"{label}: item {i} stock {s}" for i, s in sorted(stock.items()) if s < 0]
    return Check(1, "no stock below zero", tuple(problems))


def check_stock_balance(obs: Observations) -> Check:
    """Invariant 2: per item, start + restocks = now + orders placed in the run."""
    problems = [f"restock of unknown outcome: {what}" for what in obs.unresolved_restocks]
    lost = sorted(set(obs.orders_before) - set(obs.orders_after))
    if lost:
        problems.append(f"orders that existed before the run are gone: {lost[:KEEP]}")
    placed = Counter(
        item for order, item in obs.orders_after.items() if order not in obs.orders_before
    )
    for item in sorted(set(obs.start_stock) | set(obs.end_stock) | set(placed)):
        start, end = obs.start_stock.get(item), obs.end_stock.get(item)
        if start is None or end is None:
            problems.append(f"item {item}: no {'starting' if start is None else 'current'} stock")
            continue
        added, sold = obs.restocks[item], placed[item]
        if start + added != end + sold:
            problems.append(
                f"item {item}: start {start} + restocks {added} = {start + added}, "
                f"but stock {end} + orders {sold} = {end + sold}"
            )
    return Check(2, "starting stock + restocks = current stock + orders, per item", tuple(problems))


def check_orders_retrievable(obs: Observations) -> Check:
    """Invariant 3: every buy answered 200 is in the order table and retrievable."""
    problems = [f"order id {o} was answered to two different buys" for o in obs.duplicate_orders]
    for order, item in sorted(obs.bought.items()):
        if order not in obs.orders_after:
            problems.append(f"order {order} (item {item}) answered 200 but is not in the order table")
        elif obs.orders_after[order] != item:
            problems.append(f"order {order}: bought item {item}, table says {obs.orders_after[order]}")
    for order, why in sorted(obs.unretrievable.items()):
        problems.append(f"GET /orders/{order}: {why}")
    return Check(3, "every buy answered 200 is retrievable", tuple(problems))


def check_converged(obs: Observations) -> Check:
    """Invariant 4: the replicas of each service agree within 5 s."""
    problems = [f"{service}: {why}" for service, why in sorted(obs.divergence.items()) if why]
    return Check(
        4, f"replicas agree on applied_seq and checksum within {CONVERGE_WITHIN:.0f} s", tuple(problems)
    )


def check_no_failures(obs: Observations) -> Check:
    """Invariant 5: no failed read, no 5xx but 503, no request left unanswered."""
    problems = list(obs.failures)
    if obs.failure_count > len(obs.failures):
        problems.append(f"... and {obs.failure_count - len(obs.failures)} more")
    return Check(5, "no read failed; no 5xx other than 503", tuple(problems))


def check_recovered(obs: Observations) -> Check:
    """Every killed replica was restarted and rejoined its view."""
    problems = [f"{f.target or f.service + ' ' + f.role}: {f.error}" for f in obs.faults if f.error]
    return Check(6, "every killed replica restarted and rejoined", tuple(problems))


CHECKS = (
    check_stock_never_negative,
    check_stock_balance,
    check_orders_retrievable,
    check_converged,
    check_no_failures,
    check_recovered,
)


def check_all(obs: Observations) -> list[Check]:
    """Every check, in order."""
    return [check(obs) for check in CHECKS]


# The report


def _at(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f}s"


def describe_fault(fault: Fault) -> str:
    """One line on a kill and its recovery."""
    line = f"kill -9 {fault.target or '?'} ({fault.service} {fault.role}, pid {fault.pid}) at {_at(fault.killed)}"
    if fault.failover is not None:
        line += f"; new primary at {_at(fault.failover)} (+{fault.failover - fault.killed:.2f}s)"
    line += f"; restarted at {_at(fault.restarted)}; answering at {_at(fault.ready)}"
    line += f"; back in the view at {_at(fault.rejoined)}"
    if fault.rejoined is not None and fault.killed is not None:
        line += f" ({fault.rejoined - fault.killed:.2f}s after the kill)"
    return line + (f"; ERROR: {fault.error}" if fault.error else "")


def report(obs: Observations, checks: list[Check]) -> list[str]:
    """The final report, as lines of text."""
    buys, reads = obs.buys, obs.reads
    other = sum(n for status, n in buys.items() if status not in ("200", "409", "503"))
    lines = ["faults (seconds since the load began):"]
    lines += [f"  {describe_fault(f)}" for f in obs.faults] or ["  none"]
    lines += [
        f"buys: {buys['200']} ok, {buys['409']} out of stock (409), "
        f"{buys['503']} unavailable (503), {other} other",
        f"reads: {reads['ok']} ok, {reads['failed']} failed",
        f"restocks: {sum(obs.restocks.values())} copies added"
        + (f", {len(obs.unresolved_restocks)} of unknown outcome" if obs.unresolved_restocks else ""),
        "invariants:",
    ]
    for check in checks:
        lines.append(f"  [{'ok' if check.ok else 'FAIL'}] {check.number}. {check.title}")
        lines += [f"         {problem}" for problem in check.problems]
    failed = [c for c in checks if not c.ok]
    lines.append(
        "result: all invariants hold"
        if not failed
        else f"result: VIOLATED: {', '.join(str(c.number) for c in failed)}"
    )
    return lines


# Talking to the cluster


async def call(http, method: str, url: str, body=None, headers=None, timeout=REQUEST_TIMEOUT):
    """
    One request; return ``(status, decoded JSON or None)``, or
    ``(None, reason)`` if no answer came.
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
    """A Deferred that fires after ``seconds`` (never blocks the reactor)."""
    from twisted.internet.task import deferLater

    return deferLater(clock, max(seconds, 0.0), lambda: None)


async def restart(reactor, config, process: launcher.Process) -> str:
    """
    Start ``process`` again with ``pygmy up``'s command, without blocking the
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


def _said(status, body) -> str:
    """A short description of an answer, for a problem line."""
    if status is None:
        return f"no answer ({body})"
    code = body.get("error", {}).get("code") if isinstance(body, dict) else None
    return f"{status}" + (f" {code}" if code else "")


# The run


class Run:
    """
    One chaos run against the cluster of ``config``.

    @param http: a treq ``HTTPClient``.
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
        for item_id, item in sorted(items.items()):
            target = SCARCE_STOCK if item_id == self.scarce else TOP_UP if item["stock"] < TOP_UP_BELOW else None
            if target is not None and target != item["stock"]:
                if not await self.update_stock(item_id, target - item["stock"]):
                    raise Abort(f"could not set the stock of item {item_id} to {target}")
                self.say(f"item {item_id} stock {item['stock']} -> {target}")
        self.obs.start_stock = {i: item["stock"] for i, item in (await self.listing()).items()}
        self.obs.orders_before = await self.order_table()
        self.say(f"snapshot: stock {self.obs.start_stock}, {len(self.obs.orders_before)} orders")

    async def listing(self) -> dict[int, dict]:
        """``GET /list`` through the front end, by item id."""
        status, body = await call(self.http, "GET", self.url + "/list")
        if status != 200:
            raise Abort(f"GET /list: {_said(status, body)}")
        return {item["id"]: item for item in body["items"]}

    async def view(self, service: str) -> dict:
        """The front end's view of ``service`` (``GET /status``)."""
        status, body = await call(self.http, "GET", self.url + "/status", timeout=5)
        if status != 200:
            raise Abort(f"GET /status of the front end: {_said(status, body)}")
        return body["services"][service]

    async def settled(self, service: str) -> dict:
        """Wait until ``service`` has a primary and every replica in its view."""
        names = {r.name for r in self.config.replicas[service]}

        async def probe():
            view = await self.view(service)
            members = {view["primary"], *view["backups"]}
            return view if view["primary"] and members == names else None

        return await self.poll(probe, SETTLE_TIMEOUT, f"{service} did not settle (all replicas in the view)")

    async def poll(self, probe, timeout: float, failure: str):
        """Call ``probe`` every 0.1 s until it returns something true; bounded."""
        deadline = self.reactor.seconds() + timeout
        while True:
            result = await probe()
            if result:
                return result
            if self.reactor.seconds() >= deadline:
                raise Abort(f"{failure} within {timeout:.0f}s")
            await sleep(self.reactor, 0.1)

    async def until(self, moment: float) -> None:
        """Sleep until ``moment`` seconds after the load began."""
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
            if book is not None and book.get("stock", 0) < 0:
                self.obs.negative_seen.append(f"lookup at {self.now():.2f}s: item {book['id']} stock {book['stock']}")
        elif dice < 0.80:
            await self.read(f"/search/{self.rng.choice(self.topics)}")
        elif dice < 0.85:
            await self.read("/list")
        else:
            order, item = self.rng.choice(self.orders)
            body = await self.read(f"/orders/{order}")
            if body is not None and body.get("order", {}).get("item_id") != item:
                self.obs.fail(f"GET /orders/{order}: item {body.get('order')} is not {item}")

    async def buy(self, item: int) -> None:
        """``POST /buy/<item>``; record the order of a 200."""
        status, body = await call(self.http, "POST", f"{self.url}/buy/{item}")
        self.obs.buys[str(status)] += 1
        if status in (409, 503):
            return
        if status != 200 or not isinstance(body, dict) or "order" not in body:
            self.obs.fail(f"POST /buy/{item}: {_said(status, body)}")
            return
        order = body["order"]["id"]
        if order in self.obs.bought:
            self.obs.duplicate_orders.append(order)
        self.obs.bought[order] = item
        self.orders.append((order, item))

    async def read(self, path: str):
        """A GET through the front end; return its body, or C{None} if it failed."""
        status, body = await call(self.http, "GET", self.url + path)
        if status == 200:
            self.obs.reads["ok"] += 1
            return body
        self.obs.reads["failed"] += 1
        self.obs.fail(f"GET {path} at {self.now():.2f}s: {_said(status, body)}")
        return None

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
        ``POST /update/<item>`` with one ``Idempotency-Key``, tried again
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
                self.obs.fail(f"POST {path} at {self.now():.2f}s: {_said(status, body)}")
                if status < 500:
                    return False
            if self.reactor.seconds() >= deadline:
                break
            await sleep(self.reactor, 0.2)
        self.obs.unresolved_restocks.append(f"{delta:+d} to item {item} (Idempotency-Key {key})")
        return False

    # Crashes

    async def crash_each(self) -> None:
        """Kill and restart each of :data:`FAULTS` in turn, spread over the run."""
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
        """``kill -9`` the replica ``fault`` names, wait ``down`` s, restart it, wait for its rejoin."""
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
        await self.poll(self.gone(pid), 10.0, f"pid {pid} did not exit")
        if fault.role == "primary":
            await self.poll(self.new_primary(fault.service, name), SETTLE_TIMEOUT, "no new primary")
            fault.failover = self.now()
            self.say(f"{fault.service}: new primary after {fault.failover - fault.killed:.2f}s")
        await self.until(fault.killed + down)
        fault.restarted = self.now()
        self.say(f"restarting {process.name}")
        error = await restart(self.reactor, self.config, process)
        if error:
            raise Abort(f"restart failed: {error}\n{launcher.log_tail(process, 10)}")
        await self.poll(self.answers(process.ready_url), SETTLE_TIMEOUT, f"{process.ready_url} did not answer")
        fault.ready = self.now()
        await self.settled(fault.service)
        fault.rejoined = self.now()
        self.say(f"{process.name} is back in the {fault.service} view ({fault.rejoined - fault.killed:.2f}s after the kill)")

    def gone(self, pid: int):
        """A probe: has ``pid`` exited?"""

        async def probe():
            return not launcher.pid_alive(pid)

        return probe

    def new_primary(self, service: str, old: str):
        """A probe: has the front end chosen a primary other than ``old``?"""

        async def probe():
            primary = (await self.view(service))["primary"]
            return primary is not None and primary != old

        return probe

    def answers(self, url: str):
        """A probe: does ``url`` answer 200?"""

        async def probe():
            return (await call(self.http, "GET", url, timeout=2))[0] == 200

        return probe

    # Checks

    async def check(self) -> None:
        """Gather what the checks need once the load has stopped."""
        from twisted.internet.defer import gatherResults, ensureDeferred

        await gatherResults([ensureDeferred(self.converge(s)) for s in ("catalog", "order")])
        try:
            self.obs.end_stock = {i: item["stock"] for i, item in (await self.listing()).items()}
            for replica in self.config.replicas["catalog"]:
                rows = await self.dump(replica)
                self.obs.replica_stock[replica.label] = {row["id"]: row["stock"] for row in rows}
            self.obs.orders_after = await self.order_table()
        except Abort as e:
            self.obs.fail(f"after the load: {e}")
        await self.retrieve_orders()

    async def converge(self, service: str) -> None:
        """Invariant 4: wait up to 5 s for the replicas of ``service`` to agree."""
        replicas = self.config.replicas[service]
        deadline = self.reactor.seconds() + CONVERGE_WITHIN
        while True:
            seen = {}
            for replica in replicas:
                status, body = await call(self.http, "GET", replica.url + "/status", timeout=2)
                seen[replica.name] = (body["applied_seq"], body["checksum"]) if status == 200 else None
            if None not in seen.values() and len(set(seen.values())) == 1:
                self.say(f"{service}: replicas agree at seq {seen[replicas[0].name][0]}")
                return
            if self.reactor.seconds() >= deadline:
                states = ", ".join(
                    f"{name} " + ("no answer" if s is None else f"seq {s[0]} checksum {s[1][:12]}")
                    for name, s in seen.items()
                )
                self.obs.divergence[service] = f"after {CONVERGE_WITHIN:.0f} s: {states}"
                return
            await sleep(self.reactor, 0.1)

    async def dump(self, replica) -> list[dict]:
        """A replica's ``GET /admin/dump`` rows."""
        status, body = await call(self.http, "GET", replica.url + "/admin/dump", headers=self.auth)
        if status != 200:
            raise Abort(f"GET {replica.url}/admin/dump ({replica.label}): {_said(status, body)}")
        return body["rows"]

    async def order_table(self) -> dict[int, int]:
        """Every order (id -> item id), from the order primary's dump."""
        primary = (await self.view("order"))["primary"] or self.config.replicas["order"][0].name
        rows = await self.dump(self.config.replica("order", primary))
        return {row["id"]: row["item_id"] for row in rows}

    async def retrieve_orders(self) -> None:
        """Invariant 3: ``GET /orders/<id>`` of every buy answered 200."""
        from twisted.internet.defer import DeferredList, DeferredSemaphore, ensureDeferred

        deadline = self.reactor.seconds() + 60.0

        async def one(order: int, item: int):
            if self.reactor.seconds() >= deadline:
                self.obs.unretrievable[order] = "not checked: out of time"
                return
            status, body = await call(self.http, "GET", f"{self.url}/orders/{order}")
            found = body.get("order", {}).get("item_id") if isinstance(body, dict) else None
            if status != 200:
                self.obs.unretrievable[order] = _said(status, body)
            elif found != item:
                self.obs.unretrievable[order] = f"item {found}, bought {item}"

        gate = DeferredSemaphore(max(self.clients, 16))
        await DeferredList(
            [gate.run(lambda o=o, i=i: ensureDeferred(one(o, i))) for o, i in self.obs.bought.items()]
        )
        self.say(f"{len(self.obs.bought)} orders read back, {len(self.obs.unretrievable)} not retrievable")


async def run_chaos(reactor, config, duration: float, clients: int, seed: int, echo) -> int:
    """Run one chaos run in ``reactor``; return the exit status."""
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
    """``pygmy chaos``: run :func:`run_chaos` under ``react``; return the exit status."""
    from twisted.internet.defer import ensureDeferred
    from twisted.internet.task import react

    seed = random.randrange(1, 2**31) if seed is None else seed
    outcome: list[int] = []

    def start(reactor):
        done = ensureDeferred(run_chaos(reactor, config, duration, clients, seed, echo))
        return done.addCallback(outcome.append)

    try:
        react(start)
    except SystemExit as e:
        if not outcome:
            return e.code if isinstance(e.code, int) and e.code else 1
    return outcome[0] if outcome else 1
