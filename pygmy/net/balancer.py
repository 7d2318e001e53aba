"""
Load-balancing policies for reads: in which order to try the replicas.

Each policy gets the names of the candidate replicas (the live members of
the service's view) and returns them best first; the caller tries them in
that order until one answers.  Policies also hear when a call starts and
ends, to count connections and time answers.

- C{round_robin}: each call starts one further along the list;
- C{least_connections}: fewest calls in flight first;
- C{least_latency}: lowest moving average of answer time first (a replica
  never timed counts as fastest, so that every one gets measured).
"""

from __future__ import annotations

from typing import Protocol


class Policy(Protocol):
    """What L{pygmy.net.routing.ServiceRoutes} needs of a balancer."""

    name: str

    def order(self, candidates: list[str]) -> list[str]:
        """C{candidates}, best first."""

    def started(self, replica: str) -> None:
        """A call to C{replica} starts."""

    def finished(self, replica: str, seconds: float, ok: bool) -> None:
        """A call to C{replica} ended after C{seconds}."""


class RoundRobin:
    """Each call starts one further along the list."""

    name = "round_robin"

    def __init__(self):
        self._turn = 0

    def order(self, candidates):
        """The candidates, rotated one further each call."""
        if not candidates:
            return []
        self._turn = (self._turn + 1) % len(candidates)
        return candidates[self._turn :] + candidates[: self._turn]

    def started(self, replica):
        """A call to C{replica} started (round robin keeps no count)."""
        pass

    def finished(self, replica, seconds, ok):
        """A call to C{replica} ended after C{seconds}, C{ok} or not (nothing to record)."""
        pass


class LeastConnections(RoundRobin):
    """Fewest calls in flight first; ties rotate."""

    name = "least_connections"

    def __init__(self):
        super().__init__()
        self.in_flight: dict[str, int] = {}

    def order(self, candidates):
        """The candidates with the fewest calls in flight first."""
        rotated = super().order(candidates)
        return sorted(rotated, key=lambda name: self.in_flight.get(name, 0))

    def started(self, replica):
        """Count one more call in flight to C{replica}."""
        self.in_flight[replica] = self.in_flight.get(replica, 0) + 1

    def finished(self, replica, seconds, ok):
        """Count one call fewer in flight to C{replica}."""
        self.in_flight[replica] = max(0, self.in_flight.get(replica, 0) - 1)


class LeastLatency(RoundRobin):
    """
    Lowest exponentially weighted moving average of answer time first.

    @param weight: how much the newest sample counts (0 to 1).
    @param penalty: seconds recorded for a failed call.
    """

    name = "least_latency"

    def __init__(self, weight: float = 0.2, penalty: float = 1.0):
        super().__init__()
        self.weight = weight
        self.penalty = penalty
        self.average: dict[str, float] = {}

    def order(self, candidates):
        """The candidates with the lowest moving average first."""
        rotated = super().order(candidates)
        return sorted(rotated, key=lambda name: self.average.get(name, 0.0))

    def finished(self, replica, seconds, ok):
        """Fold this call's time (or the penalty, if it failed) into C{replica}'s average."""
        sample = seconds if ok else max(seconds, self.penalty)
        old = self.average.get(replica)
        self.average[replica] = sample if old is None else old + self.weight * (sample - old)


POLICIES = {cls.name: cls for cls in (RoundRobin, LeastConnections, LeastLatency)}


def make_policy(name: str) -> Policy:
    """The policy called C{name} in config.ini."""
    return POLICIES[name]()
