"""
The invariants of DESIGN.md section 6, checked on what a chaos run recorded.

An L{Observations} is the ledger of one run: the snapshot of stock
and orders taken before the load, every answer the clients got, every kill
and restart, and what the replicas hold once the load has stopped.  Its
C{record_*} methods turn one answer into ledger entries.  The checks are
plain functions of it:

1. no stock below zero (every lookup seen, the end, every replica's table);
2. per item: starting stock + restocks = current stock + orders placed;
3. every buy answered 200 has its order in the order table and is
   retrievable through C{GET /orders/<id>};
4. within 5 s all replicas of a service report the same C{applied_seq} and
   C{checksum};
5. no read failed, and no request got a 5xx other than 503 (or no answer);
6.-8. what concerns the front ends (L{pygmy.cli.invariants_frontends});
9. (with C{--frontend}; also L{pygmy.cli.invariants_frontends}) once
   quiet, every decrement in the catalog has exactly one order: per item,
   starting stock + restocks - current stock = orders placed, although the
   load never retries a buy (its buys carry no C{Idempotency-Key}), so no
   client ever makes up for a buy that its front end abandoned.

And, unnumbered, every killed process came back (a run whose faults did
not happen proves little).  While a front end is down
(L{Observations.frontend_down}), a buy that gets no answer is counted as
expected unavailability, not as a failure; with the lone front end down,
a read that gets none or a C{503} too (with several, a read goes on to
the next front end and must not fail).

L{report} formats the verdicts.  Nothing here does I/O or touches a
reactor, so all of it can be tested on synthetic data; L{pygmy.cli.chaos}
runs the load and the kills that fill the ledger.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

#: Invariant 4: seconds within which the replicas must agree once quiet.
CONVERGE_WITHIN = 5.0
#: At most this many problems are kept per kind.
KEEP = 20
#: The key under which answers lost to a front end that is down are counted.
DOWN = "front end down"


def describe_answer(status, body) -> str:
    """
    A short description of an answer, for a problem line: the status and
    the error code, or C{no answer (why)} when C{status} is C{None}.
    """
    if status is None:
        return f"no answer ({body})"
    code = body.get("error", {}).get("code") if isinstance(body, dict) else None
    return f"{status}" + (f" {code}" if code else "")


# The snapshot


def stock_levels(items: dict[int, dict]) -> dict[int, int]:
    """Item id -> stock, from books keyed by id (C{GET /list} items)."""
    return {item_id: item["stock"] for item_id, item in items.items()}


def row_stock(rows: list[dict]) -> dict[int, int]:
    """Item id -> stock, from a catalog replica's C{/admin/dump} rows."""
    return {row["id"]: row["stock"] for row in rows}


def order_items(rows: list[dict]) -> dict[int, int]:
    """Order id -> item id, from an order replica's C{/admin/dump} rows."""
    return {row["id"]: row["item_id"] for row in rows}


def replicas_agree(seen: dict[str, tuple[int, str] | None]) -> bool:
    """
    Whether every replica answered and all report the same
    C{(applied_seq, checksum)}; C{None} stands for no answer.
    """
    return None not in seen.values() and len(set(seen.values())) == 1


def describe_states(seen: dict[str, tuple[int, str] | None]) -> str:
    """One line on each replica's C{(applied_seq, checksum)}, for a divergence."""
    return ", ".join(
        f"{name} " + ("no answer" if state is None else f"seq {state[0]} checksum {state[1][:12]}")
        for name, state in seen.items()
    )


# The ledger


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
    frontend_down: bool = False
    #: L{pygmy.cli.invariants_frontends.FrontendObservations}, or C{None}.
    frontends: object = None
    bought_at: dict[int, float] = field(default_factory=dict)
    final_cost: str | None = None
    failures_while_down: list[str] = field(default_factory=list)

    @property
    def several(self) -> bool:
        """Whether the cluster has several front ends."""
        return self.frontends is not None and self.frontends.several

    def outage(self, counter: Counter, status, expected=(None,)) -> bool:
        """
        Whether an answer is the expected unavailability of a front end
        that is down (C{status} in C{expected} while L{frontend_down});
        if so it is counted in C{counter} under C{"front end down"}.
        """
        if self.frontend_down and status in expected:
            counter[DOWN] += 1
            return True
        return False

    def fail(self, what: str) -> None:
        """Record a failed read or an unexpected answer."""
        self.failure_count += 1
        if len(self.failures) < KEEP:
            self.failures.append(what)

    def record_buy(self, item: int, status, body, at: float | None = None) -> int | None:
        """
        Record the answer to C{POST /buy/<item>}, answered at C{at} s.

        @return: the id of the order a 200 placed, or C{None} (409, 503 or
            a failure).
        """
        if self.outage(self.buys, status):
            return None
        self.buys[str(status)] += 1
        if status in (409, 503):
            return None
        if status != 200 or not isinstance(body, dict) or "order" not in body:
            self.fail(f"POST /buy/{item}: {describe_answer(status, body)}")
            return None
        order = body["order"]["id"]
        if order in self.bought:
            self.duplicate_orders.append(order)
        self.bought[order] = item
        if at is not None:
            self.bought_at[order] = at
        return order

    def record_read(self, path: str, at: float, status, body):
        """Record the answer to C{GET path} at C{at} s; return its body, or C{None} if it failed."""
        if status == 200:
            self.reads["ok"] += 1
            return body
        if not self.several and self.outage(self.reads, status, (None, 503)):
            return None
        self.reads["failed"] += 1
        self.fail(f"GET {path} at {at:.2f}s: {describe_answer(status, body)}")
        if self.frontend_down and len(self.failures_while_down) < KEEP:
            self.failures_while_down.append(f"GET {path} at {at:.2f}s: {describe_answer(status, body)}")
        return None

    def record_lookup(self, book: dict | None, at: float) -> None:
        """Note a book read at C{at} s whose stock is below zero (invariant 1)."""
        if book is not None and book.get("stock", 0) < 0:
            self.negative_seen.append(f"lookup at {at:.2f}s: item {book['id']} stock {book['stock']}")

    def record_order_read(self, order: int, item: int, body: dict | None) -> None:
        """Note a C{GET /orders/<order>} body that does not name the item bought."""
        if body is not None and body.get("order", {}).get("item_id") != item:
            self.fail(f"GET /orders/{order}: item {body.get('order')} is not {item}")

    def record_retrieval(self, order: int, item: int, status, body) -> None:
        """Record the after-load C{GET /orders/<order>} of a buy of C{item} (invariant 3)."""
        found = body.get("order", {}).get("item_id") if isinstance(body, dict) else None
        if status != 200:
            self.unretrievable[order] = describe_answer(status, body)
        elif found != item:
            self.unretrievable[order] = f"item {found}, bought {item}"


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


def orders_placed(obs: Observations) -> Counter:
    """Item id -> orders placed in the run (in the table after it, not before)."""
    return Counter(item for order, item in obs.orders_after.items() if order not in obs.orders_before)


def check_stock_balance(obs: Observations) -> Check:
    """Invariant 2: per item, start + restocks = now + orders placed in the run."""
    problems = [f"restock of unknown outcome: {what}" for what in obs.unresolved_restocks]
    lost = sorted(set(obs.orders_before) - set(obs.orders_after))
    if lost:
        problems.append(f"orders that existed before the run are gone: {lost[:KEEP]}")
    placed = orders_placed(obs)
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
    return Check(4, f"replicas agree on applied_seq and checksum within {CONVERGE_WITHIN:.0f} s", tuple(problems))


def check_no_failures(obs: Observations) -> Check:
    """Invariant 5: no failed read, no 5xx but 503, no request left unanswered."""
    problems = list(obs.failures)
    if obs.failure_count > len(obs.failures):
        problems.append(f"... and {obs.failure_count - len(obs.failures)} more")
    return Check(5, "no read failed; no 5xx other than 503", tuple(problems))


def check_recovered(obs: Observations) -> Check:
    """Not a numbered invariant: every killed process was restarted and rejoined."""
    problems = [f"{f.target or f.service + ' ' + f.role}: {f.error}" for f in obs.faults if f.error]
    return Check(0, "every killed process restarted and rejoined", tuple(problems))


#: Every check, in the order of DESIGN.md section 6.
CHECKS = (
    check_stock_never_negative,
    check_stock_balance,
    check_orders_retrievable,
    check_converged,
    check_no_failures,
    check_recovered,
)


def check_all(obs: Observations, frontend: bool = False) -> list[Check]:
    """
    Every check, by number: with C{obs.frontends}, 6; with C{frontend}
    (front ends were killed), 7 and 9, and 8 with several front ends.
    """
    from pygmy.cli import invariants_frontends as ends

    chosen = list(CHECKS)
    if obs.frontends is not None:
        chosen.append(ends.check_visible_everywhere)
        if frontend:
            chosen.append(ends.check_kept_across_frontend_kills)
            if obs.several:
                chosen.append(ends.check_frontend_kills)
    if frontend:
        chosen.append(ends.check_exactly_once)
    return sorted((check(obs) for check in chosen), key=lambda c: c.number or 100)


# The report


def _at(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.2f}s"


def _down(counts: Counter) -> str:
    """The answers lost while the front end was down, if any, for a report line."""
    return f", {counts[DOWN]} lost while the front end was down (expected)" if counts[DOWN] else ""


def describe_fault(fault: Fault) -> str:
    """One line on a kill and its recovery."""
    frontend = fault.service == "frontend"
    what = fault.role if frontend else f"{fault.service} {fault.role}"
    line = f"kill -9 {fault.target or '?'} ({what}, pid {fault.pid}) at {_at(fault.killed)}"
    if fault.failover is not None:
        new = "view manager" if frontend else "primary"
        line += f"; new {new} at {_at(fault.failover)} (+{fault.failover - fault.killed:.2f}s)"
    line += f"; restarted at {_at(fault.restarted)}; answering at {_at(fault.ready)}"
    line += f"; {'hears every replica' if frontend else 'back in the view'} at {_at(fault.rejoined)}"
    if fault.rejoined is not None and fault.killed is not None:
        line += f" ({fault.rejoined - fault.killed:.2f}s after the kill)"
    return line + (f"; ERROR: {fault.error}" if fault.error else "")


def report(obs: Observations, checks: list[Check]) -> list[str]:
    """The final report, as lines of text."""
    buys, reads = obs.buys, obs.reads
    other = sum(n for status, n in buys.items() if status not in ("200", "409", "503", DOWN))
    lines = ["faults (seconds since the load began):"]
    lines += [f"  {describe_fault(f)}" for f in obs.faults] or ["  none"]
    lines += [
        f"buys: {buys['200']} ok, {buys['409']} out of stock (409), {buys['503']} unavailable (503), {other} other"
        + _down(buys),
        f"reads: {reads['ok']} ok, {reads['failed']} failed" + _down(reads),
        f"restocks: {sum(obs.restocks.values())} copies added"
        + (f", {len(obs.unresolved_restocks)} of unknown outcome" if obs.unresolved_restocks else ""),
    ]
    if obs.several:
        from pygmy.cli.invariants_frontends import summary

        lines += summary(obs)
    lines += [
        "invariants:",
    ]
    for check in checks:
        number = f"{check.number}. " if check.number else ""
        lines.append(f"  [{'ok' if check.ok else 'FAIL'}] {number}{check.title}")
        lines += [f"         {problem}" for problem in check.problems]
    failed = [str(c.number or "restarts") for c in checks if not c.ok]
    lines.append("result: all invariants hold" if not failed else f"result: VIOLATED: {', '.join(failed)}")
    return lines
