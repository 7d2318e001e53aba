"""
A monotonic clock for every timeout and liveness decision.

Twisted's reactor tells wall-clock time (C{reactor.seconds()} is
C{time.time()}), and the wall clock steps: NTP, an operator, a VM resumed.
Measured on it, a step forward declares every replica dead at once, and a
step back hides a silent one.  L{MonotonicClock} answers C{seconds()} from
C{time.monotonic()} and leaves scheduling to the reactor: C{callLater} takes
a delay, not a moment, so the two never mix (C{LoopingCall} and
C{deferLater} only ever hand it delays).  Timestamps that people read
(an order's C{created}) stay on the wall clock, and so does the order of
L{ordered_id}s, which is only a hint.
"""

from __future__ import annotations

import os
import time
from typing import Callable

from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer


@implementer(IReactorTime)
class MonotonicClock:
    """
    C{IReactorTime} whose C{seconds()} is monotonic; calls are scheduled on
    C{reactor}.
    """

    def __init__(self, reactor, now=time.monotonic):
        self.reactor = reactor
        self._now = now

    def seconds(self) -> float:
        """Seconds on a clock that never steps (its zero means nothing)."""
        return self._now()

    def callLater(self, delay, f, *args, **kwargs):
        """Call C{f} after C{delay} seconds, scheduled by the reactor."""
        return self.reactor.callLater(delay, f, *args, **kwargs)

    def getDelayedCalls(self):
        """The reactor's scheduled calls."""
        return self.reactor.getDelayedCalls()


def monotonic(reactor) -> IReactorTime:
    """
    C{reactor} as a clock to measure durations on: itself where it is a
    test's clock (no C{run} method, as L{twisted.internet.task.Clock}), else
    a L{MonotonicClock} over it.
    """
    if isinstance(reactor, MonotonicClock) or not hasattr(reactor, "run"):
        return reactor
    return MonotonicClock(reactor)


def ordered_id(now: Callable[[], int] = time.time_ns, noise: Callable[[int], bytes] = os.urandom) -> str:
    """
    A new unique id of 32 hex digits (like a UUID's) that sorts by when it
    was made: the wall clock's nanoseconds, then 64 random bits.

    Request ids are keys of several indexes on every replica (the intents
    of buys, the requests kept for replays, the digest's row hashes).
    Random ones (C{uuid4}) send each insert to a page of its own, so a
    batch of writes dirties, and writes to the WAL, a page per write and
    index; ids made one after the other land on the last few pages.  The
    order is only a hint (the wall clock steps): uniqueness is the random
    part's.
    """
    return f"{now() & (2**64 - 1):016x}{noise(8).hex()}"
