"""
L{pygmy.net.direct.DirectClient}: plain internal calls go straight to the
agent (the URL, headers and body as given; treq's timeout), every other
call goes to treq.  No sockets: a recording agent and a Clock.
"""

from __future__ import annotations

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http_headers import Headers

from pygmy.net.direct import DirectClient

HEADERS = {b"authorization": [b"Bearer s"], b"content-type": [b"application/json"]}


class RecordingAgent:
    """An agent that records each request and answers when told."""

    def __init__(self):
        self.calls = []

    def request(self, method, uri, headers=None, bodyProducer=None):
        d = Deferred()
        self.calls.append((method, uri, headers, bodyProducer, d))
        return d


class RecordingFallback:
    def __init__(self):
        self.calls = []

    def request(self, method, url, **kwargs):
        self.calls.append((method, url, kwargs))
        return Deferred()


def client():
    agent, fallback = RecordingAgent(), RecordingFallback()
    return DirectClient(agent, fallback), agent, fallback


class FakeResponse:
    """An IResponse whose body is C{body}, delivered at once."""

    def __init__(self, code: int, body: bytes):
        self.code = code
        self.headers = Headers({})
        self.body = body
        self.length = len(body)

    def deliverBody(self, protocol):
        protocol.dataReceived(self.body)
        protocol.connectionLost(Failure(ResponseDone()))


def _response(code: int, body: bytes) -> FakeResponse:
    return FakeResponse(code, body)


def test_a_plain_call_goes_to_the_agent_as_given():
    direct, agent, fallback = client()
    body = object()
    got = []
    direct.request(
        "POST",
        "http://127.0.0.1:9/orders/buy",
        headers=HEADERS,
        reactor=Clock(),
        timeout=5,
        data=body,
        allow_redirects=False,
    ).addCallback(got.append)
    [(method, uri, headers, producer, d)] = agent.calls
    assert (method, uri, producer) == (b"POST", b"http://127.0.0.1:9/orders/buy", body)
    assert headers.getRawHeaders(b"authorization") == [b"Bearer s"]
    assert fallback.calls == []
    d.callback(_response(201, b'{"ok":1}'))
    [response] = got
    assert response.code == 201
    contents = []
    response.content().addCallback(contents.append)
    assert contents == [b'{"ok":1}']


def test_the_timeout_cancels_the_call_and_is_cleared_by_an_answer():
    direct, agent, _ = client()
    clock = Clock()
    failures = []
    direct.request(
        "GET", "http://127.0.0.1:9/status", headers=HEADERS, reactor=clock, timeout=2, allow_redirects=False
    ).addErrback(failures.append)
    clock.advance(1.9)
    assert failures == []
    clock.advance(0.2)
    [failure] = failures
    assert failure.check(CancelledError)
    direct.request(
        "GET", "http://127.0.0.1:9/status", headers=HEADERS, reactor=clock, timeout=2, allow_redirects=False
    ).addErrback(failures.append)
    agent.calls[-1][-1].callback(_response(200, b"{}"))
    assert clock.getDelayedCalls() == []


def test_calls_with_parameters_quoting_or_redirects_go_to_treq():
    direct, agent, fallback = client()
    clock = Clock()
    direct.request(
        "GET", "http://127.0.0.1:9/books", headers=HEADERS, reactor=clock, params={"topic": "x"}, allow_redirects=False
    )
    direct.request("GET", "http://127.0.0.1:9/books/é", headers=HEADERS, reactor=clock, allow_redirects=False)
    direct.request("GET", "http://127.0.0.1:9/a b", headers=HEADERS, reactor=clock, allow_redirects=False)
    direct.request(
        "GET", "http://127.0.0.1:9/snapshot", headers=HEADERS, reactor=clock, unbuffered=True, allow_redirects=False
    )
    direct.request("GET", "http://127.0.0.1:9/status", headers=HEADERS, reactor=clock)
    assert agent.calls == []
    assert [url for _, url, _ in fallback.calls] == [
        "http://127.0.0.1:9/books",
        "http://127.0.0.1:9/books/é",
        "http://127.0.0.1:9/a b",
        "http://127.0.0.1:9/snapshot",
        "http://127.0.0.1:9/status",
    ]
    assert fallback.calls[0][2]["params"] == {"topic": "x"}
