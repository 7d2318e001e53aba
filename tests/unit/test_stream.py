"""
L{pygmy.net.stream} on its own: a streamed reply waits while its transport
is paused and is aborted, never finished, when it fails half-way; a body
of JSON lines is handed over a record at a time with the transport paused
meanwhile, and ends cleanly, broken, or stalled.  C{StringTransport} and
C{Clock}, no sockets.
"""

from __future__ import annotations

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone, ResponseFailed

from pygmy.net.stream import JSONLines, Pace, StreamBroken, stream_reply
from tests.fakes import result


class FakeRequest:
    """The parts of a request L{stream_reply} uses, recorded."""

    uri = b"/admin/dump"

    def __init__(self):
        self.headers, self.written, self.events = {}, [], []
        self.producer = None
        self.channel = type("Channel", (), {})()
        self.channel.transport = self
        self._finished = []

    def setHeader(self, name, value):
        self.headers[name] = value

    def registerProducer(self, producer, streaming):
        assert self.producer is None and streaming
        self.producer = producer
        self.events.append("registered")

    def unregisterProducer(self):
        self.producer = None
        self.events.append("unregistered")

    def write(self, data):
        self.written.append(data)

    def abortConnection(self):
        self.events.append("aborted")

    def notifyFinish(self):
        self._finished.append(Deferred())
        return self._finished[-1]

    def lose(self):
        """The connection is gone."""
        self.channel = None
        for d in self._finished:
            d.errback(ConnectionLost())


def test_pace_is_ready_unless_paused_and_fails_once_stopped():
    pace = Pace()
    assert result(pace.ready()) is None
    pace.pauseProducing()
    waiting = pace.ready()
    assert not waiting.called and pace.ready() is waiting
    pace.resumeProducing()
    assert result(waiting) is None
    pace.pauseProducing()
    waiting = pace.ready()
    pace.stopProducing()
    with pytest.raises(ConnectionLost):
        result(waiting)
    with pytest.raises(ConnectionLost):
        result(pace.ready())


def test_a_streamed_reply_waits_while_the_transport_is_paused():
    request, made = FakeRequest(), []

    async def produce(send):
        for n in range(3):
            made.append(n)  # stands for reading page n
            await send(b"piece %d;" % n)

    request_paused = {"pause": True}

    async def run():
        await stream_reply(request, produce, b"application/json")

    def pause_on_first_write(data, write=request.write):
        write(data)
        if request_paused.pop("pause", False):
            request.producer.pauseProducing()  # the transport's buffer filled

    request.write = pause_on_first_write
    done = Deferred.fromCoroutine(run())
    assert request.headers == {b"content-type": b"application/json"}
    assert request.written == [b"piece 0;"] and made == [0] and not done.called
    request.producer.resumeProducing()
    assert result(done) is None
    assert request.written == [b"piece 0;", b"piece 1;", b"piece 2;"] and made == [0, 1, 2]
    assert request.events == ["registered", "unregistered"]


def test_an_error_before_the_first_piece_is_answered_as_usual():
    request = FakeRequest()

    async def produce(send):
        raise KeyError("nothing sent yet")

    with pytest.raises(KeyError):
        result(Deferred.fromCoroutine(stream_reply(request, produce, b"application/json")))
    assert request.written == [] and request.events == []


def test_an_error_half_way_aborts_the_connection_instead_of_finishing():
    request = FakeRequest()

    async def produce(send):
        await send(b'{"rows":[')
        raise RuntimeError("the disk went away")

    with capturedLogs() as events:
        done = Deferred.fromCoroutine(stream_reply(request, produce, b"application/json"))
    assert [e for e in events if e.get("log_failure") is not None]
    assert request.events == ["registered", "aborted", "unregistered"] and not done.called
    request.lose()
    assert result(done) is None  # Klein sees a finished request and writes nothing more


def test_a_client_gone_stops_the_reply_without_an_abort_of_its_own():
    request = FakeRequest()

    async def produce(send):
        await send(b"one")
        request.producer.pauseProducing()
        await send(b"two")
        raise AssertionError("not reached")

    done = Deferred.fromCoroutine(stream_reply(request, produce, b"application/json"))
    request.producer.stopProducing()  # the transport is closing
    assert "aborted" not in request.events and not done.called
    request.lose()
    assert result(done) is None


# JSONLines


def receiving(handle=None, idle_timeout=5.0, **kwargs):
    handled = []

    def default(record):
        handled.append(record)

    clock, transport = Clock(), StringTransport()
    lines = JSONLines(handle or default, clock, idle_timeout, "catalog:A", **kwargs)
    lines.makeConnection(transport)
    return lines, transport, clock, handled


def test_records_are_handed_over_one_at_a_time_with_the_transport_paused_meanwhile():
    pending, seen = [], []

    def handle(record):
        seen.append(record)
        pending.append(Deferred())
        return pending[-1]

    lines, transport, clock, _ = receiving(handle)
    lines.dataReceived(b'{"a": 1}\n{"b": 2}\n{"c"')
    assert seen == [{"a": 1}] and transport.producerState == "paused"
    lines.dataReceived(b": 3}\n")  # the read under way delivers more: still paused
    assert seen == [{"a": 1}] and transport.producerState == "paused"
    pending[0].callback(None)
    assert seen == [{"a": 1}, {"b": 2}] and transport.producerState == "paused"
    pending[1].callback(None)
    pending[2].callback(None)
    assert seen[-1] == {"c": 3} and transport.producerState == "producing"
    lines.connectionLost(Failure(ResponseDone()))
    assert result(lines.done) == 3
    assert clock.getDelayedCalls() == []


def test_a_body_that_ends_while_a_record_is_handled_finishes_after_it():
    pending = Deferred()
    lines, transport, clock, _ = receiving(lambda record: pending if record == 1 else None)
    lines.dataReceived(b"1\n2\n")
    lines.connectionLost(Failure(ResponseDone()))
    assert not lines.done.called
    pending.callback(None)
    assert result(lines.done) == 2


@pytest.mark.parametrize(
    "data, reason, message",
    [
        (b'{"a": 1}\n', ResponseFailed([Failure(ConnectionLost())]), "broke off"),
        (b'{"a": 1}\n{"b"', ResponseDone(), "middle of a record"),
        (b"not json\n", None, "not JSON"),
        (b"x" * 65, None, "over 64 bytes"),
    ],
    ids=["cut", "half-a-record", "not-json", "too-long"],
)
def test_a_body_that_breaks_fails_with_stream_broken(data, reason, message):
    lines, transport, clock, handled = receiving(max_record=64)
    lines.dataReceived(data)
    if reason is not None:
        lines.connectionLost(Failure(reason))
    with pytest.raises(StreamBroken, match=message):
        result(lines.done)
    if reason is None:
        assert transport.producerState == "stopped"  # we hung up
    assert clock.getDelayedCalls() == []


def test_a_handler_that_fails_ends_the_body_with_its_failure():
    lines, transport, clock, _ = receiving(lambda record: succeed(None) if record else 1 / 0)
    lines.dataReceived(b"1\n0\n1\n")
    with pytest.raises(ZeroDivisionError):
        result(lines.done)
    assert lines.records == 1 and transport.producerState == "stopped"
    lines.connectionLost(Failure(ConnectionDone()))  # after we hung up: nothing more happens
    assert clock.getDelayedCalls() == []


def test_silence_aborts_the_body_but_not_while_a_record_is_being_handled():
    pending = Deferred()
    lines, transport, clock, _ = receiving(lambda record: pending, idle_timeout=5.0)
    clock.advance(4.9)
    lines.dataReceived(b"1\n")
    clock.advance(60)  # installing a page: we are not waiting for data
    assert not lines.done.called
    pending.callback(None)
    clock.advance(4.9)
    assert not lines.done.called
    clock.advance(0.1)
    with pytest.raises(StreamBroken, match="nothing for 5.0s"):
        result(lines.done)
    assert transport.producerState == "stopped" and clock.getDelayedCalls() == []
