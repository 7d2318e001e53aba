"""
How C{pygmy import} sends one row: C{POST /books} with the secret and the
row's C{Idempotency-Key}; a 5xx or no answer (refused, reset, timed out
after C{--timeout}) tried again with back-off and the same key, at least
C{Retry-After} later, up to C{--retries} times; any other answer final.
With several front ends, a row that gets no answer from one goes at once
to the next, with the same key (L{pygmy.cli.frontends.Frontends}, shared
by every worker, so they all move on together); one try is every front
end once.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater

from pygmy.cli.frontends import Frontends, Unreachable
from pygmy.cli.import_file import Row
from pygmy.cli.import_report import Refusal, Summary

if TYPE_CHECKING:
    from pygmy.cli.importer import Settings

#: The first pause before a retry, and the longest, in seconds (doubling, with jitter).
FIRST_BACKOFF = 0.25
MOST_BACKOFF = 8.0
#: The longest C{Retry-After} waited for.
MOST_RETRY_AFTER = 30.0
#: Statuses that no other row would escape either: the import stops.
STOPPING = frozenset({401, 403, 404, 405})


@dataclass(frozen=True)
class Outcome:
    """
    What became of one row that was sent.

    @ivar added: whether the front end answered 2xx.
    @ivar refusal: why not, or C{None}.
    @ivar final: whether the refusal is the front end's answer (the row
        was not added) rather than a give-up (perhaps it was).
    @ivar stops: whether the import must stop.
    """

    added: bool
    refusal: Refusal | None = None
    final: bool = True
    stops: bool = False


class Sender:
    """
    Sends one row to C{POST /books}, retrying a 5xx or a missing answer
    with back-off and the same key.

    @param http: a treq C{HTTPClient} (or C{StubTreq}).
    @param stopping: a callable that says whether the import is stopping
        (then a row does not wait for another try).
    """

    def __init__(self, reactor, http, settings: Settings, summary: Summary, stopping, rng=None):
        self.reactor, self.http, self.settings, self.summary = reactor, http, settings, summary
        self.stopping = stopping
        self.rng = rng or random.Random()
        self.frontends = Frontends(settings.frontends)
        self.headers = {
            "Authorization": f"Bearer {settings.secret}",
            "Content-Type": "application/json",
        }

    async def send(self, row: Row) -> Outcome:
        """Send C{row} until it is answered, refused or given up."""
        request = {
            "headers": {**self.headers, "Idempotency-Key": row.key},
            "data": json.dumps(row.book, ensure_ascii=False).encode("utf-8"),
        }
        tries = 0
        while True:
            tries += 1
            try:
                status, content, retry_after = await self._post(request)
            except Unreachable as e:  # no front end answered (a transport failure or the timeout)
                where = ", ".join(f"{url} ({why})" for url, why in e.failures)
                failure = Refusal(row.line, f"no answer from {where}", None, "unreachable")
                wait = 0.0
            else:
                if 200 <= status < 300:
                    return Outcome(True)
                failure = refusal_of(row.line, status, content)
                if status < 500:
                    return Outcome(False, failure, final=True, stops=status in STOPPING)
                wait = retry_after
            if tries > self.settings.retries or self.stopping():
                given_up = Refusal(row.line, f"{failure.message} (after {_tries(tries)})", failure.status, failure.code)
                return Outcome(False, given_up, final=False, stops=True)
            self.summary.retries += 1
            await deferLater(self.reactor, self.pause(tries, wait))

    def pause(self, tries: int, retry_after: float) -> float:
        """Seconds before try C{tries + 1}: doubling from L{FIRST_BACKOFF}, with jitter, at least C{Retry-After}."""
        backoff = min(MOST_BACKOFF, FIRST_BACKOFF * 2 ** (tries - 1)) * self.rng.uniform(0.5, 1.0)
        return max(backoff, min(retry_after, MOST_RETRY_AFTER))

    async def _post(self, request: dict) -> tuple[int, bytes, float]:
        """
        One request: (status, body, seconds of C{Retry-After} or 0), from
        the first front end that answers within C{--timeout}.

        @raise Unreachable: if none did.
        """

        async def exchange(url: str):
            response = await self.http.request("POST", url + "/books", **request)
            content = await response.content()
            return response.code, content, retry_after_of(response.headers.getRawHeaders(b"retry-after"))

        def attempt(url: str) -> Deferred:
            answer = Deferred.fromCoroutine(exchange(url))
            answer.addTimeout(self.settings.timeout, self.reactor)
            return answer

        return await self.frontends.first(attempt)


def refusal_of(line: int, status: int, content: bytes) -> Refusal:
    """The L{Refusal} of an error reply: its code and message, or a note that it was not Pygmy's JSON."""
    try:
        error = json.loads(content).get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return Refusal(line, error["message"], status, str(error.get("code", "error")))
    return Refusal(line, f"HTTP {status}, and not a Pygmy JSON reply", status, "error")


def retry_after_of(values) -> float:
    """C{Retry-After} in seconds (a number of seconds; a date or garbage counts as 0)."""
    if not values:
        return 0.0
    try:
        seconds = float(values[0])
    except ValueError:
        return 0.0
    return seconds if 0 <= seconds < float("inf") else 0.0


def _tries(n: int) -> str:
    return "1 try" if n == 1 else f"{n} tries"
