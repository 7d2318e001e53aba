"""
A load generator on Twisted and treq: concurrent clients, no threads.

L{drive} runs C{clients} coroutines that each send the requests a
C{plan} gives them, for a duration or a number of requests, and records
one L{Sample} per answer.  L{summarise} turns samples into
counts, errors by status, requests per second and latency percentiles per
operation; L{timeline} cuts the run into time slices (for the failover
plot of C{pygmy load --crash}).  C{pygmy load} (L{pygmy.cli.load}) and
the benchmarks build on these.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from twisted.internet.defer import Deferred, DeferredList

from pygmy.cli.frontends import Frontends


@dataclass(frozen=True)
class Sample:
    """One answered (or failed) request."""

    operation: str
    status: int  # 0: no answer
    seconds: float
    at: float

    @property
    def ok(self) -> bool:
        """Whether the answer was a 2xx."""
        return 200 <= self.status < 300


@dataclass(frozen=True)
class Request:
    """What a client sends next."""

    operation: str
    method: str
    url: str
    headers: dict = field(default_factory=dict)
    body: bytes | None = None


def percentile(ordered: list[float], p: float) -> float:
    """
    The C{p}-th percentile (0-100) of C{ordered} (sorted ascending), by
    linear interpolation between closest ranks.

    @raise ValueError: if C{ordered} is empty.
    """
    if not ordered:
        raise ValueError("no samples")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} outside 0-100")
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def error_key(status: int) -> str:
    """How L{summarise} names a failed answer: C{"503"}, or C{"no answer"}."""
    return str(status) if status else "no answer"


def _statistics(found: list[Sample], seconds: float) -> dict:
    """The counts and latency figures of one group of samples."""
    latencies = sorted(s.seconds for s in found)
    errors: dict[str, int] = {}
    for s in found:
        if not s.ok:
            key = error_key(s.status)
            errors[key] = errors.get(key, 0) + 1
    return {
        "count": len(found),
        "ok": len(found) - sum(errors.values()),
        "errors": errors,
        "rps": len(found) / seconds if seconds > 0 else 0.0,
        "mean": sum(latencies) / len(latencies),
        "p50": percentile(latencies, 50),
        "p90": percentile(latencies, 90),
        "p95": percentile(latencies, 95),
        "p99": percentile(latencies, 99),
        "max": latencies[-1],
    }


def summarise(samples: list[Sample], seconds: float) -> dict:
    """
    Per operation: C{count}, C{ok} (2xx), C{errors} by status, C{rps}
    over C{seconds}, and C{mean}, C{p50}, C{p90}, C{p95}, C{p99}, C{max} of the
    latency in seconds.
    """
    by_operation: dict[str, list[Sample]] = {}
    for sample in samples:
        by_operation.setdefault(sample.operation, []).append(sample)
    return {operation: _statistics(found, seconds) for operation, found in sorted(by_operation.items())}


def overall(samples: list[Sample], seconds: float) -> dict | None:
    """The figures of L{summarise} for every sample together; C{None} if there are none."""
    return _statistics(samples, seconds) if samples else None


def timeline(samples: list[Sample], width: float, until: float | None = None) -> list[dict]:
    """
    The run cut into slices of C{width} seconds (by when each request was
    sent): per slice its C{start}, C{count}, C{errors}, C{rps} and the
    C{p50} and C{max} latency (C{None} in an empty slice).

    @param until: the end of the last slice (default: the last sample's send time).
    """
    if width <= 0:
        raise ValueError(f"slice width {width} is not above 0")
    end = max((s.at for s in samples), default=0.0) if until is None else until
    slices = [[] for _ in range(max(1, math.floor(end / width) + 1))]
    for sample in samples:
        index = min(max(0, math.floor(sample.at / width)), len(slices) - 1)
        slices[index].append(sample)
    rows = []
    for number, found in enumerate(slices):
        latencies = sorted(s.seconds for s in found)
        rows.append(
            {
                "start": number * width,
                "count": len(found),
                "errors": sum(1 for s in found if not s.ok),
                "rps": len(found) / width,
                "p50": percentile(latencies, 50) if latencies else None,
                "max": latencies[-1] if latencies else None,
            }
        )
    return rows


async def send(http, request: Request, base: str, limit: dict) -> int:
    """Send C{request} (its URL after C{base}); the status of the answer, read to its end."""
    body = {} if request.body is None else {"data": request.body}
    response = await http.request(request.method, base + request.url, headers=request.headers, **body, **limit)
    await response.content()
    return response.code


async def drive(
    reactor,
    http,
    plan: Callable[[int], Request],
    clients: int,
    duration: float | None = None,
    count: int | None = None,
    on_sample: Callable[[Sample], None] | None = None,
    timeout: float | None = None,
    frontends: Frontends | None = None,
) -> list[Sample]:
    """
    Run C{clients} concurrent clients until C{duration} seconds have
    passed or C{count} requests were sent (whichever is given; both bound
    the run).  C{plan(n)} gives the C{n}-th request (its C{headers}, and
    its C{body} if any, are sent with it).

    @param on_sample: called with each L{Sample} as it is recorded.
    @param timeout: seconds one request may take before it counts as
        "no answer" (status 0); C{None}: no limit of its own.
    @param frontends: with it, each request's C{url} is a path, sent to
        the client's current front end and, while one gives no answer, to
        the next (L{Frontends.first}); client C{i} starts at front end C{i}
        (L{Frontends.spread}), and every move is added to
        C{frontends.moves}.  A sample is "no answer" only if no front end
        answered, and its latency covers every front end tried.
    """
    if duration is None and count is None:
        raise ValueError("give a duration or a count")
    samples: list[Sample] = []
    started = reactor.seconds()
    until = math.inf if duration is None else started + duration
    numbers = iter(range(count if count is not None else 2**62))
    limit = {} if timeout is None else {"timeout": timeout}

    async def client(number: int):
        mine = None if frontends is None else frontends.spread(number)
        for n in numbers:
            if reactor.seconds() >= until:
                return
            request = plan(n)
            sent = reactor.seconds()
            try:
                if mine is None:
                    status = await send(http, request, "", limit)
                else:
                    status = await mine.first(lambda base, request=request: send(http, request, base, limit))
            except Exception:
                status = 0
            finally:
                if mine is not None:
                    frontends.moves += mine.moves
                    mine.moves = 0
            sample = Sample(request.operation, status, reactor.seconds() - sent, sent - started)
            samples.append(sample)
            if on_sample is not None:
                on_sample(sample)

    await DeferredList([Deferred.fromCoroutine(client(number)) for number in range(clients)])
    return samples
