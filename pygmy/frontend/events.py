"""
The timeline of the cluster that the dashboard shows (C{GET /events}).

L{EventRing} keeps the last few hundred events of the front end, each with an
increasing id, so that a page can poll for what is new
(C{/events?after=<id>}) and memory stays bounded however long the front end
runs.  L{Timeline} fills it from the view manager: the hooks of each
L{ServiceView<pygmy.frontend.views.ServiceView>} (a replica declared dead, a
replica back, a promotion, a catch-up, a new view decided) and the
L{Monitor<pygmy.frontend.monitor.Monitor>}'s pushes of the views it stored.
A view change, a failover and a catch-up are recorded when their view is
pushed, since only then does anyone act on it; a failover's duration runs
from the death of the old primary (the last time it was heard from, when it
fell silent) to that push, and a catch-up's from the replica coming back to
the push of the view that has it in sync.
"""

from __future__ import annotations

import time
from collections import deque
from itertools import islice
from uuid import uuid4

from twisted.logger import Logger

from pygmy.replication.tables import utc_timestamp

log = Logger()

#: Events kept; older ones are dropped first.
CAPACITY = 500

#: Views decided but not pushed yet that are remembered per service.
PENDING = 16


class EventRing:
    """
    The last L{CAPACITY} events, oldest first, with ids 1, 2, 3, ...

    @param wall: the wall clock that stamps each event's C{time}.
    @ivar run: a random name of this ring, which a restarted front end
        changes: ids begin again from 1 with a new run.
    """

    def __init__(self, capacity: int = CAPACITY, wall=time.time):
        self._events: deque[dict] = deque(maxlen=capacity)
        self._wall = wall
        self.last_id = 0
        self.run = uuid4().hex[:16]

    def __len__(self) -> int:
        return len(self._events)

    def add(self, kind: str, service: str, replica: str | None, view: int, message: str, duration=None) -> dict:
        """
        Record one event and return it.

        @param duration: seconds, for a failover or a catch-up; else L{None}.
        """
        self.last_id += 1
        event = {
            "id": self.last_id,
            "time": utc_timestamp(self._wall()),
            "kind": kind,
            "service": service,
            "replica": replica,
            "view": view,
            "duration": None if duration is None else round(duration, 3),
            "message": message,
        }
        self._events.append(event)
        return event

    def after(self, after: int, limit: int) -> tuple[list[dict], int]:
        """
        At most C{limit} events with an id above C{after}, oldest first, and
        the C{after} to ask with next (the last id returned, or C{after}).
        An C{after} beyond the newest id comes from before a restart and is
        read as 0.
        """
        if after > self.last_id:
            after = 0
        if not self._events:
            return [], after
        start = max(0, after - self._events[0]["id"] + 1)
        events = list(islice(self._events, start, start + limit))
        return events, events[-1]["id"] if events else after


class Timeline:
    """
    Turns what the view manager decides into events of an L{EventRing}.

    @param clock: monotonic: durations are measured on it (the same clock as
        the heartbeats', so a replica's last beat compares with now).
    """

    def __init__(self, ring: EventRing, clock):
        self.ring = ring
        self.clock = clock
        #: Per service, the primary that died and when, until a new one is pushed.
        self._died: dict[str, tuple[str, float]] = {}
        #: Per (service, replica), when it came back, until it is in sync.
        self._back: dict[tuple[str, str], float] = {}
        self._seen: set[tuple[str, str]] = set()
        #: Per service, what happened in the next view to be decided.
        self._next: dict[str, dict] = {}
        #: Per service, the views decided and not pushed yet, by number.
        self._decided: dict[str, dict[int, dict]] = {}

    def noted(self, view, kind: str, replica: str | None, **details) -> None:
        """
        A hook of L{ServiceView<pygmy.frontend.views.ServiceView>}: C{kind}
        is C{"dead"} (with C{why}, C{primary} and C{since}, the last time it
        was heard from if it fell silent), C{"back"} (C{state}, C{seq}),
        C{"promoted"}, C{"caught_up"} (C{seq}) or C{"view"} (C{why}).
        Never raises: the timeline must not get in the way of the views.
        """
        try:
            self._noted(view, kind, replica, details)
        except Exception:
            log.failure("Recording {kind} of {service}:{replica}", kind=kind, service=view.service, replica=replica)

    def _noted(self, view, kind: str, replica: str | None, details: dict) -> None:
        service, now = view.service, self.clock.seconds()
        name = f"{service}:{replica}"
        if kind == "dead":
            self._back.pop((service, replica), None)
            role = ", the primary" if details["primary"] else ""
            if details["primary"]:
                since = details.get("since")
                self._died[service] = (replica, now if since is None else since)
            self.ring.add("dead", service, replica, view.number, f"{name}{role}, declared dead: {details['why']}.")
        elif kind == "back":
            first = (service, replica) not in self._seen
            self._seen.add((service, replica))
            self._back[(service, replica)] = now
            verb = "is up" if first else "is back"
            text = f"{name} {verb} ({details['state']}, applied seq {details['seq']})."
            self.ring.add("back", service, replica, view.number, text)
        elif kind in ("promoted", "caught_up"):
            self._next.setdefault(service, {})[kind] = (replica, details.get("seq"))
        elif kind == "view":
            decided = self._decided.setdefault(service, {})
            decided[view.number] = {**self._next.pop(service, {}), "why": details["why"]}
            while len(decided) > PENDING:
                del decided[min(decided)]

    def pushed(self, service: str, stored) -> None:
        """
        The view C{stored} of C{service} was stored and pushed: record it, and
        the failover or catch-up it completes (also of any earlier view
        decided meanwhile, which it supersedes).  Never raises.
        """
        try:
            self._pushed(service, stored)
        except Exception:
            log.failure("Recording view {number} of {service}", number=stored.number, service=service)

    def _pushed(self, service: str, stored) -> None:
        now = self.clock.seconds()
        decided = self._decided.get(service, {})
        numbers = sorted(n for n in decided if n <= stored.number)
        done = [decided.pop(n) for n in numbers]
        why = f" ({done[-1]['why']})" if numbers and numbers[-1] == stored.number else ""
        backups = ", ".join(stored.backups) or "none"
        text = f"{service} view {stored.number}: primary {stored.primary or 'none'}, backups {backups}{why}."
        self.ring.add("view", service, stored.primary, stored.number, text)
        for happened in done:
            if "promoted" in happened:
                self._failover(service, happened["promoted"][0], stored.number, now)
            if "caught_up" in happened:
                replica, seq = happened["caught_up"]
                self._caught_up(service, replica, seq, stored.number, now)

    def _failover(self, service: str, replica: str, number: int, now: float) -> None:
        died = self._died.pop(service, None)
        if died is None:
            # A promotion with no death seen: the view manager began from a
            # stored view (a restart), which is no failover.
            return
        old, when = died
        who = "is primary again" if old == replica else "took over as primary"
        text = f"{service}:{replica} {who} in view {number}, {now - when:.3f} s after {service}:{old} died."
        self.ring.add("failover", service, replica, number, text, now - when)

    def _caught_up(self, service: str, replica: str, seq, number: int, now: float) -> None:
        came_back = self._back.pop((service, replica), None)
        after = "" if came_back is None else f", {now - came_back:.3f} s after it came back"
        text = f"{service}:{replica} caught up to seq {seq} and joined the in-sync set in view {number}{after}."
        duration = None if came_back is None else now - came_back
        self.ring.add("catch_up", service, replica, number, text, duration)
