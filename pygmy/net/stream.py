"""
Replies written a piece at a time, and bodies read a record at a time, so
that neither end of a long transfer (a snapshot, a dump) holds more than a
piece of it, however large the whole.

 - L{stream_reply}: a route's reply made by a coroutine that hands each
   piece to C{send}; C{send} waits while the client reads slower than we
   write (the request's transport pauses its producer, a L{Pace}, when its
   buffer fills), so unsent pieces never pile up in memory.
 - L{JSONLines}: a response body of JSON records, one per line, handed one
   at a time to a handler.  While the handler's Deferred is pending the
   transport is paused, so TCP holds the sender back instead of records
   piling up here; no data for C{idle_timeout} seconds aborts the body.
"""

from __future__ import annotations

import json
from typing import Awaitable, Callable

from twisted.internet.defer import CancelledError, Deferred, fail, maybeDeferred, succeed
from twisted.internet.error import ConnectionClosed, ConnectionLost
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from zope.interface import implementer

from pygmy.errors import Unavailable

#: The longest record line L{JSONLines} takes (a page of rows is far less).
MAX_RECORD = 64 * 1024 * 1024

log = Logger()


class StreamBroken(Unavailable):
    """A streamed body that ended early, stalled, or did not parse."""


@implementer(IPushProducer)
class Pace:
    """
    The producer a streamed reply registers on its request: the transport
    pauses it when its buffer is full and resumes it once drained; L{ready}
    is what a writer awaits between pieces.
    """

    def __init__(self):
        self.paused = False
        self.stopped = False
        self._waiting: Deferred | None = None

    def ready(self) -> Deferred:
        """A Deferred that fires once more may be written (at once if not paused)."""
        if self.stopped:
            return fail(ConnectionLost("The client went away."))
        if not self.paused:
            return succeed(None)
        if self._waiting is None:
            self._waiting = Deferred()
        return self._waiting

    def pauseProducing(self) -> None:
        """The transport's buffer is full: hold the next piece."""
        self.paused = True

    def resumeProducing(self) -> None:
        """The transport has room again."""
        self.paused = False
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.callback(None)

    def stopProducing(self) -> None:
        """The connection is going away: no more pieces."""
        self.stopped = True
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.errback(ConnectionLost("The client went away."))


async def stream_reply(request, produce: Callable[[Callable[[bytes], Awaitable[None]]], Awaitable[None]], content_type):
    """
    Answer C{request} with what C{produce(send)} sends, piece by piece
    (chunked), at the pace the client reads.

    An error before the first piece propagates (the route answers it as
    usual, as JSON); after it the status is sent, so the connection is
    aborted instead: the client sees a body cut short, never one that looks
    complete.

    @param produce: a coroutine function that calls C{await send(data)} for
        every piece of the body, in order.
    @param content_type: the reply's C{Content-Type}, as bytes.
    """
    pace = Pace()
    started = False

    async def send(data: bytes) -> None:
        nonlocal started
        if not started:
            started = True
            request.setHeader(b"content-type", content_type)
            request.registerProducer(pace, True)
        request.write(data)
        await pace.ready()

    try:
        await produce(send)
    except CancelledError:
        raise  # the client went away, and Klein knows it
    except Exception:
        if not started:
            raise
        if not pace.stopped:
            uri = request.uri.decode("ascii", "replace")
            log.failure("{uri}: a streamed reply failed half-way; aborting it", uri=uri)
            request.channel.transport.abortConnection()
        if request.channel is not None:
            request.unregisterProducer()
            # Klein cancels this once the connection is gone, and writes nothing more.
            try:
                await request.notifyFinish()
            except ConnectionClosed:
                pass
        return
    if started and request.channel is not None:
        request.unregisterProducer()


class JSONLines(Protocol):
    """
    Receives a response body of JSON records, one per line, and hands each
    to C{handle}, one at a time, pausing the transport while a handler's
    Deferred is pending.

    @param handle: called with each record (a decoded JSON value); may
        return a Deferred; its failure ends the body with that failure.
    @param clock: an L{IReactorTime<twisted.internet.interfaces.IReactorTime>}.
    @param idle_timeout: seconds without data (while we wait for it) after
        which the body is aborted.
    @param name: who sends it, for messages.
    @ivar done: a Deferred that fires with the number of records once the
        body ended cleanly and every record was handled; fails with the
        handler's error, or L{StreamBroken}.
    """

    def __init__(self, handle: Callable, clock, idle_timeout: float, name: str, max_record: int = MAX_RECORD):
        self.handle = handle
        self.clock = clock
        self.idle_timeout = idle_timeout
        self.name = name
        self.max_record = max_record
        self.done = Deferred()
        self.records = 0
        self._buffer = bytearray()
        self._scanned = 0
        self._busy = False
        self._ended: Failure | None = None
        self._failed = False
        self._timer = None

    def connectionMade(self) -> None:
        """Start the idle timer."""
        self._arm()

    def dataReceived(self, data: bytes) -> None:
        """Buffer C{data}, and hand over the complete records in it."""
        if self._failed:
            return
        self._buffer += data
        if self._busy:
            # A read already under way may deliver more; ask again.
            self.transport.pauseProducing()
            return
        self._arm()
        self._next()

    def connectionLost(self, reason=None) -> None:
        """The body ended: cleanly (L{ResponseDone}) or not."""
        self._disarm()
        self._ended = reason
        if not self._busy:
            self._next()

    def _next(self) -> None:
        while not self._busy and not self._failed:
            end = self._buffer.find(b"\n", self._scanned)
            if end < 0:
                self._scanned = len(self._buffer)  # a large record arrives in many reads: scan each once
                if len(self._buffer) > self.max_record:
                    self._fail(StreamBroken(f"{self.name} sent a record over {self.max_record} bytes."))
                elif self._ended is not None:
                    self._finish()
                return
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            self._scanned = 0
            try:
                record = json.loads(line)
            except ValueError:
                self._fail(StreamBroken(f"{self.name} sent a record that is not JSON."))
                return
            self._busy = True
            self._disarm()
            if self._ended is None:
                self.transport.pauseProducing()
            maybeDeferred(self.handle, record).addCallbacks(self._handled, self._fail)

    def _handled(self, _) -> None:
        self._busy = False
        self.records += 1
        self._next()
        if not self._busy and not self._failed and self._ended is None:
            self._arm()
            self.transport.resumeProducing()

    def _finish(self) -> None:
        if self._buffer.strip():
            self._fail(StreamBroken(f"{self.name} ended its stream in the middle of a record."))
        elif not self._ended.check(ResponseDone):
            self._fail(StreamBroken(f"{self.name} broke off its stream: {self._ended.getErrorMessage()}"))
        else:
            self._failed = True  # nothing more is taken
            self.done.callback(self.records)

    def _fail(self, error) -> None:
        if self._failed:
            return
        self._failed = True
        self._busy = False
        self._disarm()
        self._buffer.clear()
        if self._ended is None and self.transport is not None:
            self.transport.stopProducing()
        self.done.errback(error)

    def _arm(self) -> None:
        self._disarm()
        if self._ended is None and not self._failed:
            self._timer = self.clock.callLater(self.idle_timeout, self._idle)

    def _disarm(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _idle(self) -> None:
        self._timer = None
        self._fail(StreamBroken(f"{self.name} sent nothing for {self.idle_timeout}s."))
