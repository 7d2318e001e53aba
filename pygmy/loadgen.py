"""
A load generator on Twisted and treq: concurrent clients, no threads.

:func:`drive` runs ``clients`` coroutines that each send the requests a
``plan`` gives them, for a duration or a number of requests, and records
one :class:`Sample` per answer.  :func:`summarise` turns samples into
counts, errors by status, requests per second and latency percentiles per
operation.  ``pygmy load`` and the benchmarks build on these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from twisted.internet.defer import Deferred, DeferredList


@dataclass(frozen=True)
class Sample:
    """One answered (or failed) request."""

    operation: str
    status: int  # 0: no answer
    seconds: float
    at: float


@dataclass(frozen=True)
class Request:
    """What a client sends next."""

    operation: str
    method: str
    url: str
    headers: dict = field(default_factory=dict)


def percentile(ordered: list[float], p: float) -> float:
    """
    The ``p``-th percentile (0-100) of ``ordered`` (sorted ascending), by
    linear interpolation between closest ranks.

    @raise ValueError: if ``ordered`` is empty.
    """
    if not ordered:
        raise ValueError("no samples")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} outside 0-100")
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarise(samples: list[Sample], seconds: float) -> dict:
    """
    Per operation: ``count``, ``ok`` (2xx), ``errors`` by status, ``rps``
    over ``seconds``, and ``mean``, ``p50``, ``p90``, ``p99``, ``max`` of the
    latency in seconds.
    """
    by_operation: dict[str, list[Sample]] = {}
    for sample in samples:
        by_operation.setdefault(sample.operation, []).append(sample)
    summary = {}
    for operation, found in sorted(by_operation.items()):
        latencies = sorted(s.seconds for s in found)
        errors: dict[str, int] = {}
        for s in found:
            if not 200 <= s.status < 300:
                key = str(s.status) if s.status else "no answer"
                errors[key] = errors.get(key, 0) + 1
        summary[operation] = {
            "count": len(found),
            "ok": len(found) - sum(errors.values()),
            "errors": errors,
            "rps": len(found) / seconds if seconds > 0 else 0.0,
            "mean": sum(latencies) / len(latencies),
            "p50": percentile(latencies, 50),
            "p90": percentile(latencies, 90),
            "p99": percentile(latencies, 99),
            "max": latencies[-1],
        }
    return summary


async def drive(
    reactor,
    http,
    plan: Callable[[int], Request],
    clients: int,
    duration: float | None = None,
    count: int | None = None,
    on_sample: Callable[[Sample], None] | None = None,
) -> list[Sample]:
    """
    Run ``clients`` concurrent clients until ``duration`` seconds have
    passed or ``count`` requests were sent (whichever is given; both bound
    the run).  ``plan(n)`` gives the ``n``-th request.
    """
    if duration is None and count is None:
        raise ValueError("give a duration or a count")
    samples: list[Sample] = []
    started = reactor.seconds()
    until = math.inf if duration is None else started + duration
    numbers = iter(range(count if count is not None else 2**62))

    async def client():
        for n in numbers:
            if reactor.seconds() >= until:
                return
            request = plan(n)
            sent = reactor.seconds()
            try:
                response = await http.request(request.method, request.url, headers=request.headers)
                await response.content()
                status = response.code
            except Exception:
                status = 0
            sample = Sample(request.operation, status, reactor.seconds() - sent, sent - started)
            samples.append(sample)
            if on_sample is not None:
                on_sample(sample)

    await DeferredList([Deferred.fromCoroutine(client()) for _ in range(clients)])
    return samples
