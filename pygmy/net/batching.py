"""
Many calls to one route of one replica carried by one HTTP request.

A buy crosses three processes, and on a two-core machine the fixed cost of
each HTTP exchange (parsing and writing a request and an answer on both
ends, a trip through the reactor) is what limits throughput, not the work
a call does.  So calls that are made while the route is busy share a
request, the way group commit lets concurrent writes share a transaction:

- L{Batcher} (the caller's side) gathers the calls made in one
  reactor turn and sends them together at the end of it.  Two batches may
  be on their way at once (so the next stage of a buy works on one while
  the other is still in an earlier stage); while two are, new calls wait
  for one to come back and then go together.  Under light load nothing
  waits but for the end of the current turn; under heavy load one request
  carries dozens of calls.
- L{answer_batch} (the replica's side) runs every call of a batch at
  once and answers each separately, so one call's error (out of stock, not
  the primary any more) is that call's alone.

On the wire, a batch is C{{"requests": [body, ...]}} and its answer
C{{"results": [{"ok": answer} | {"error": {"code", "message"}}, ...]}}, in
the same order; every body and answer is what the single call would carry.
"""

from __future__ import annotations

from typing import Awaitable, Callable

from twisted.internet.defer import CancelledError, Deferred, FirstError, gatherResults
from twisted.logger import Logger
from twisted.python.failure import Failure

from pygmy.errors import BadRequest, PygmyError
from pygmy.net.web import json_response, read_json_body

#: The most calls one request carries (well under the replicas' body limit:
#: a call's body is at most a few hundred bytes).
BATCH_LIMIT = 64

#: How many batches to one route may be on their way at once.  One would
#: make the biggest batches; two let consecutive batches overlap (measured
#: with benchmarks/throughput.py: 10-20% more buys per second, at 10 clients
#: and at 64).
PARALLEL = 2

log = Logger()


class Batcher:
    """
    Coalesces calls to one route into batches.

    @param send: sends a list of call bodies as one request; returns (a
        Deferred or coroutine of) one outcome per body, in order: the
        answer, or the L{PygmyError} of that call.  If the request as a
        whole fails, every call of the batch fails with that error.
    @param clock: schedules the send at the end of the current turn.
    @param limit: the most calls in one batch.
    @param parallel: how many batches may be on their way at once.
    """

    def __init__(
        self, send: Callable[[list], Awaitable[list]], clock, limit: int = BATCH_LIMIT, parallel: int = PARALLEL
    ):
        self._send = send
        self._clock = clock
        self._limit = limit
        self._parallel = parallel
        self._queue: list[tuple[object, Deferred]] = []
        self._flying = 0
        self._scheduled = False

    def call(self, body) -> Deferred:
        """Queue a call; a Deferred of its answer, or of its error."""
        d = Deferred()
        self._queue.append((body, d))
        self._schedule()
        return d

    def _schedule(self) -> None:
        if self._scheduled or self._flying >= self._parallel or not self._queue:
            return
        self._scheduled = True
        self._clock.callLater(0, self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        while self._queue and self._flying < self._parallel:
            batch, self._queue = self._queue[: self._limit], self._queue[self._limit :]
            self._flying += 1
            d = Deferred.fromCoroutine(self._round_trip([body for body, _ in batch]))
            d.addBoth(self._answered, [waiter for _, waiter in batch])

    async def _round_trip(self, bodies: list) -> list:
        outcomes = await self._send(bodies)
        if len(outcomes) != len(bodies):
            raise PygmyError(f"A batch of {len(bodies)} calls got {len(outcomes)} answers.")
        return outcomes

    def _answered(self, outcomes, waiters: list[Deferred]) -> None:
        self._flying -= 1
        if isinstance(outcomes, Failure):
            outcomes = [outcomes] * len(waiters)
        # A waiter its caller cancelled meanwhile ignores what it gets here.
        for outcome, waiter in zip(outcomes, waiters, strict=True):
            if isinstance(outcome, Failure):
                waiter.errback(outcome)
            elif isinstance(outcome, BaseException):
                waiter.errback(Failure(outcome))
            else:
                waiter.callback(outcome)
        self._schedule()


async def answer_batch(request, handle: Callable[[dict], Awaitable[dict]]) -> bytes:
    """
    The reply to a batch route: C{handle} run on every call of the
    request's body, each answered on its own.
    """
    return json_response(request, await answer_each(requests_of(read_json_body(request)), handle))


def requests_of(body) -> list:
    """The call bodies of a batch request, checked."""
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list) or not 1 <= len(requests) <= BATCH_LIMIT:
        raise BadRequest(f"requests must be a list of 1 to {BATCH_LIMIT} calls.")
    return requests


async def answer_each(requests: list, handle: Callable[[dict], Awaitable[dict]]) -> dict:
    """
    Run C{handle} on every call of a batch at once.

    A call whose body is not an object gets its own 400.

    @return: the batch's answer: C{{"results": [...]}}, in call order.
    """
    calls = [Deferred.fromCoroutine(_answer(handle, body)) for body in requests]
    try:
        return {"results": await gatherResults(calls, consumeErrors=True)}
    except FirstError as e:
        # Only a cancellation gets here (every other error is a call's
        # answer): show it as one, which Klein expects of a caller gone.
        e.subFailure.raiseException()


async def _answer(handle, body) -> dict:
    try:
        if not isinstance(body, dict):
            raise BadRequest("Each call of a batch must be a JSON object.")
        return {"ok": await handle(body)}
    except PygmyError as e:
        return e.as_json()
    except CancelledError:
        raise  # the caller went away: nobody to answer
    except Exception:
        log.failure("A call of a batch failed")
        return {"error": {"code": "internal", "message": "Internal server error."}}
