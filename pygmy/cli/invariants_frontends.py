"""
The invariants of DESIGN.md section 6 that concern the front ends,
checked on what a chaos run recorded (L{FrontendObservations}, the
C{frontends} part of its L{Observations<pygmy.cli.invariants.Observations>}):

6. after a write is acknowledged, a lookup through any front end shows it:
   the run changes one book's cost again and again (each value new) and
   reads it back through every front end at once, and every lookup of that
   book by the load shows the last acknowledged cost or a newer one;
7. (with C{--frontend}) no acknowledged write is lost across C{kill -9}
   of the view manager: every buy answered 200 while a front end was down
   or coming back is in the order table and retrievable, and the book ends
   with the last cost acknowledged;
8. (with C{--frontend} and several front ends) C{kill -9} of any front
   end, the view manager included: no read fails (the load goes on to the
   next front end), writes never stop for longer than C{lease_ttl +
   heartbeat_timeout}, another front end manages the views within that
   time, the killed one comes back as a follower, no view number goes down
   (on any front end, nor from one manager to the next), and never do two
   front ends both say they manage the views at the same moment (every
   front end's C{/status} is polled through the run);
9. (with C{--frontend}) once quiet, every decrement in the catalog has
   exactly one order, although the load never retries a buy.

Nothing here does I/O; L{pygmy.cli.chaos_frontends} fills the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pygmy.cli.invariants import KEEP, Check, Observations, orders_placed


@dataclass(frozen=True)
class FrontendPoll:
    """
    One C{GET /status} of a front end: sent and answered at (seconds since
    the load began); C{role} is C{None} if it gave no answer.

    @ivar views: the view number of each service, as it reported them.
    """

    name: str
    sent: float
    answered: float
    role: str | None = None
    leader: str | None = None
    views: dict = field(default_factory=dict)
    #: It had not read the stored views yet (just restarted): its views say nothing.
    reading: bool = False


@dataclass(frozen=True)
class CostWrite:
    """A cost given to the watched book: sent at, acknowledged at (C{None}: no answer known)."""

    value: str
    sent: float
    acked: float | None


@dataclass(frozen=True)
class CostRead:
    """A lookup of the watched book through C{frontend}: sent and answered at, the cost it showed."""

    frontend: str
    sent: float
    answered: float
    cost: str


@dataclass
class FrontendObservations:
    """
    What a chaos run saw of the front ends.

    @ivar bound: C{lease_ttl + heartbeat_timeout}, or C{None} without a coordinator.
    @ivar writes: when each successful write (buy 200 or 409, update 200) was answered.
    """

    names: tuple[str, ...] = ()
    bound: float | None = None
    polls: list[FrontendPoll] = field(default_factory=list)
    writes: list[float] = field(default_factory=list)
    cost_item: int | None = None
    cost_writes: list[CostWrite] = field(default_factory=list)
    cost_reads: list[CostRead] = field(default_factory=list)

    @property
    def several(self) -> bool:
        """Whether the cluster has more than one front end."""
        return len(self.names) > 1


def _problems(found: list[str]) -> tuple[str, ...]:
    """At most L{KEEP} problems, and how many more."""
    kept = found[:KEEP]
    return tuple(kept + ([f"... and {len(found) - KEEP} more"] if len(found) > KEEP else []))


# 6. Visible through any front end


def stale_reads(ledger: FrontendObservations) -> list[str]:
    """
    Every recorded lookup of the watched book that shows a cost older than
    the last one acknowledged before it was sent: allowed are that cost and
    any written after it was sent and before the lookup was answered.
    """
    writes = sorted(ledger.cost_writes, key=lambda w: w.sent)
    found = []
    for read in ledger.cost_reads:
        acked = [w for w in writes if w.acked is not None and w.acked <= read.sent]
        if not acked:
            continue
        last = acked[-1]
        allowed = {last.value} | {w.value for w in writes if w.sent > last.sent and w.sent < read.answered}
        if read.cost not in allowed:
            found.append(
                f"lookup of item {ledger.cost_item} through {read.frontend} at {read.sent:.2f}s: cost {read.cost}, "
                f"but {last.value} was acknowledged at {last.acked:.2f}s"
            )
    return found


def check_visible_everywhere(obs: Observations) -> Check:
    """Invariant 6: no lookup through any front end shows a cost older than one acknowledged before it."""
    ledger = obs.frontends
    problems = stale_reads(ledger)
    if not any(w.acked is not None for w in ledger.cost_writes):
        problems.append("no cost update was acknowledged: nothing was checked")
    return Check(6, "an acknowledged write shows through every front end (no stale cache entry)", _problems(problems))


# 7. No acknowledged write lost across a front-end kill


def frontend_windows(obs: Observations) -> list[tuple[float, float]]:
    """(killed, rejoined or the end) of every front-end fault, in seconds since the load began."""
    end = max([f.rejoined or 0.0 for f in obs.faults] + [obs.frontends.writes[-1] if obs.frontends.writes else 0.0])
    return [(f.killed, f.rejoined or end) for f in obs.faults if f.service == "frontend" and f.killed is not None]


def check_kept_across_frontend_kills(obs: Observations) -> Check:
    """Invariant 7: the buys answered during a front-end outage are kept, and the last acknowledged cost too."""
    problems = []
    windows = frontend_windows(obs)
    for order, at in sorted(obs.bought_at.items()):
        if any(start <= at <= end for start, end in windows):
            if order not in obs.orders_after:
                problems.append(f"order {order} answered 200 at {at:.2f}s (a front end down) is not in the table")
            elif order in obs.unretrievable:
                problems.append(f"order {order} answered 200 at {at:.2f}s: GET /orders: {obs.unretrievable[order]}")
    acked = sorted((w for w in obs.frontends.cost_writes if w.acked is not None), key=lambda w: w.sent)
    if acked and obs.final_cost is not None and obs.final_cost != acked[-1].value:
        later = [w.value for w in obs.frontends.cost_writes if w.sent > acked[-1].sent]
        if obs.final_cost not in later:
            problems.append(
                f"item {obs.frontends.cost_item} ends with cost {obs.final_cost}, "
                f"not {acked[-1].value} acknowledged at {acked[-1].acked:.2f}s"
            )
    if not windows:
        problems.append("no front end was killed")
    return Check(7, "no acknowledged write lost across kill -9 of a front end", _problems(problems))


# 8. Several front ends


def write_pause(writes: list[float], start: float, end: float) -> float:
    """The longest time in [C{start}, C{end}] without a successful write answered, from C{start} on."""
    inside = sorted(t for t in writes if start <= t <= end)
    if not inside:
        return end - start
    moments = [start, *inside]
    return max(b - a for a, b in zip(moments, moments[1:], strict=False))


def two_managers(polls: list[FrontendPoll]) -> list[str]:
    """Every pair of answers from two front ends that both said "leader" over overlapping moments."""
    leaders = sorted((p for p in polls if p.role == "leader"), key=lambda p: p.sent)
    found = []
    for i, one in enumerate(leaders):
        for other in leaders[i + 1 :]:
            if other.sent > one.answered:
                break
            if other.name != one.name:
                found.append(
                    f"{one.name} ({one.sent:.2f}-{one.answered:.2f}s) and {other.name} "
                    f"({other.sent:.2f}-{other.answered:.2f}s) both said they manage the views"
                )
    return found


def views_going_down(polls: list[FrontendPoll]) -> list[str]:
    """
    Every view number lower than one reported before it, by the same front
    end or by a manager since.  A front end that says it has not read the
    stored views yet (C{views_read} false: just restarted, answering before
    it loaded them) says nothing of the views, and is skipped; any other
    view 0 after a higher one is a view going down.
    """
    found = []
    last: dict[tuple[str, str], tuple[int, float]] = {}
    managed: dict[str, tuple[int, str, float]] = {}
    for poll in sorted((p for p in polls if p.role is not None and not p.reading), key=lambda p: p.answered):
        for service, number in sorted(poll.views.items()):
            before = last.get((poll.name, service))
            if before is not None and number < before[0]:
                found.append(
                    f"{poll.name}: {service} view {number} at {poll.answered:.2f}s "
                    f"after {before[0]} at {before[1]:.2f}s"
                )
            last[(poll.name, service)] = (max(number, before[0]) if before else number, poll.answered)
            if poll.role == "leader":
                top = managed.get(service)
                if top is not None and number < top[0]:
                    found.append(
                        f"{service}: manager {poll.name} at view {number} at {poll.answered:.2f}s, "
                        f"after manager {top[1]} had view {top[0]} at {top[2]:.2f}s"
                    )
                if top is None or number >= top[0]:
                    managed[service] = (number, poll.name, poll.answered)
    return found


def summary(obs: Observations) -> list[str]:
    """The report's lines on the front ends: the polls, and the longest pause of the writes around each kill."""
    ledger = obs.frontends
    lines = [f"front ends: {len(ledger.polls)} status polls, {len(ledger.cost_writes)} cost updates read back"]
    for fault in (f for f in obs.faults if f.service == "frontend" and f.killed is not None):
        end = fault.rejoined if fault.rejoined is not None else fault.killed + 3 * ledger.bound
        pause = write_pause(ledger.writes, fault.killed, end)
        lines.append(f"  {fault.target} ({fault.role}): writes paused at most {pause:.2f}s (bound {ledger.bound:g}s)")
    return lines


def check_frontend_kills(obs: Observations) -> Check:
    """Invariant 8: the kill -9 of each front end, from what the load and the polls saw."""
    ledger, problems = obs.frontends, []
    bound = ledger.bound
    for fault in (f for f in obs.faults if f.service == "frontend" and f.killed is not None):
        who = f"{fault.target} ({fault.role})"
        end = fault.rejoined if fault.rejoined is not None else fault.killed + 3 * bound
        pause = write_pause(ledger.writes, fault.killed, end)
        if pause > bound:
            problems.append(f"{who}: no write answered for {pause:.2f}s, above {bound:.2f}s")
        if fault.role == "manager":
            if fault.failover is None:
                problems.append(f"{who}: no other front end took over the views")
            elif fault.failover - fault.killed > bound:
                problems.append(
                    f"{who}: a new view manager after {fault.failover - fault.killed:.2f}s, above {bound:.2f}s"
                )
        if fault.rejoined is None and not fault.error:
            problems.append(f"{who}: did not come back as a follower")
    problems += [f"failed read while a front end was down: {f}" for f in obs.failures_while_down]
    problems += two_managers(ledger.polls)
    problems += views_going_down(ledger.polls)
    if not any(p.role == "leader" for p in ledger.polls):
        problems.append("no front end ever said it manages the views")
    title = f"kill -9 of a front end: reads go on, writes and a new manager within {bound:g}s, one manager"
    return Check(8, title, _problems(problems))


# 9. Exactly once


def check_exactly_once(obs: Observations) -> Check:
    """
    Invariant 9: once quiet, the copies gone from each item's stock
    (start + restocks - now) are exactly its orders placed in the run.
    """
    problems = [f"restock of unknown outcome, so the count is uncertain: {what}" for what in obs.unresolved_restocks]
    placed = orders_placed(obs)
    for item in sorted(set(obs.start_stock) | set(placed)):
        start, end = obs.start_stock.get(item), obs.end_stock.get(item)
        if start is None or end is None:
            problems.append(f"item {item}: no {'starting' if start is None else 'current'} stock")
            continue
        taken, sold = start + obs.restocks[item] - end, placed[item]
        if taken > sold:
            problems.append(
                f"item {item}: {taken} decrements but {sold} orders: {taken - sold} decrement(s) without an order"
            )
        elif sold > taken:
            problems.append(
                f"item {item}: {sold} orders but {taken} decrements: {sold - taken} order(s) without a decrement"
            )
    return Check(9, "every decrement has exactly one order (no client retries)", tuple(problems))
