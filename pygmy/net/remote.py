"""
Calls from one Pygmy process to a replica: JSON over HTTP with treq.

One L{HTTPClientService} per process owns a persistent connection pool
(sized for load: treq's default of two connections per host starves a busy
front end) and closes it on stop.  A L{Remote} speaks to one replica,
adds the shared secret, applies a timeout, and turns answers back into the
domain errors of L{pygmy.errors}:

- an error body from the replica raises the same error here;
- no answer at all (refused, reset, timed out) raises L{ReplicaDown},
  which callers may retry on another replica.

Calls on the hot path of a buy go through L{Remote.batched}, which lets
concurrent calls to the same route share one request
(L{pygmy.net.batching}).
"""

from __future__ import annotations

import json
from http.cookiejar import CookieJar

from treq.client import HTTPClient
from twisted.application.service import Service
from twisted.internet import error
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import CancelledError, succeed
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.interfaces import IStreamClientEndpoint, ITCPTransport
from twisted.web.client import (
    Agent,
    HTTPConnectionPool,
    RequestTransmissionFailed,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.error import SchemeNotSupported
from twisted.web.iweb import IAgentEndpointFactory, IBodyProducer
from zope.interface import implementer

from pygmy.config import ReplicaConfig
from pygmy.errors import ERRORS_BY_CODE, PygmyError, Unauthorized, Unavailable
from pygmy.net.batching import Batcher
from pygmy.net.direct import DirectClient
from pygmy.net.stream import JSONLines
from pygmy.net.twisted_private import RequestNotSent
from pygmy.net.web import json_bytes

POOL_SIZE = 64

#: What a call that got no usable answer fails with.
NETWORK_ERRORS = (
    error.ConnectError,
    error.ConnectionLost,
    error.ConnectionDone,
    error.TimeoutError,
    ResponseFailed,
    RequestNotSent,
    RequestTransmissionFailed,
    ResponseNeverReceived,
)


class ReplicaDown(Unavailable):
    """A replica did not answer: refused, reset or timed out."""


@implementer(IStreamClientEndpoint)
class QuietEndpoint:
    """
    A client endpoint whose connections log nothing and send at once.

    L{HTTPConnectionPool} makes a new factory for every connection it opens,
    and a factory logs C{Starting factory} and C{Stopping factory} unless its
    public C{noisy} is false: two lines per connection.  The pool hands each
    of those factories to an endpoint's C{connect}, so that is where they
    are quietened.

    Each connection also gets Nagle's algorithm turned off: a request goes
    out as two writes (head, then body), and with Nagle on the second waits
    for the peer's delayed ACK: 40 ms per call.  Twisted 24.10 and later
    do this themselves (twisted/twisted#12311); pyproject.toml still allows
    24.3.

    @ivar endpoint: the endpoint that makes the connections.
    """

    def __init__(self, endpoint: IStreamClientEndpoint):
        self.endpoint = endpoint

    def __repr__(self):
        return f"<QuietEndpoint {self.endpoint!r}>"

    def connect(self, protocolFactory):
        """
        Connect C{protocolFactory}'s protocol through L{endpoint}, quietly.

        @return: a Deferred of the connected protocol, its TCP transport
            (if it has one) with C{TCP_NODELAY} set.
        """
        protocolFactory.noisy = False
        return self.endpoint.connect(protocolFactory).addCallback(_no_delay)


def _no_delay(protocol):
    """Turn Nagle's algorithm off on C{protocol}'s TCP transport; C{protocol}."""
    transport = protocol.transport
    if ITCPTransport.providedBy(transport):
        transport.setTcpNoDelay(True)
    return protocol


@implementer(IAgentEndpointFactory)
class Endpoints:
    """
    One quiet client endpoint per host and port, made once.

    Agent's default makes a new C{HostnameEndpoint} (with IDNA encoding of
    the host) for every request, even when a pooled connection serves it;
    replicas are addressed by IP in config.ini, so a plain TCP endpoint,
    kept, does the same for much less.  A host name gets a
    C{HostnameEndpoint}, kept too.  Replica URLs are always C{http://}
    (L{ReplicaConfig.url}); any other scheme is refused.
    """

    def __init__(self, reactor):
        self._reactor = reactor
        self._endpoints = {}

    def endpointForURI(self, uri):
        """
        The endpoint that connects to C{uri}'s host and port.

        @param uri: a L{twisted.web.client.URI}.
        @return: a L{QuietEndpoint}.
        @raise SchemeNotSupported: if C{uri} is not C{http://}.
        """
        key = (uri.scheme, uri.host, uri.port)
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            endpoint = self._endpoints[key] = QuietEndpoint(self._connecting(uri))
        return endpoint

    def _connecting(self, uri) -> IStreamClientEndpoint:
        if uri.scheme != b"http":
            raise SchemeNotSupported(f"Unsupported scheme: {uri.scheme!r}")
        host = uri.host.decode("ascii")
        if isIPAddress(host):
            return TCP4ClientEndpoint(self._reactor, host, uri.port)
        if isIPv6Address(host):
            return TCP6ClientEndpoint(self._reactor, host, uri.port)
        return HostnameEndpoint(self._reactor, host, uri.port)


class _NoCookies(CookieJar):
    """
    A cookie jar that keeps nothing: replicas set no cookies, and treq
    would otherwise parse headers for them on every call.
    """

    def add_cookie_header(self, request):
        pass

    def extract_cookies(self, response, request):
        pass


@implementer(IBodyProducer)
class _BytesProducer:
    """
    A request body written at once, in the same turn as the request head
    (treq's own producer for bytes writes it a reactor turn later).
    """

    def __init__(self, body: bytes):
        self.body = body
        self.length = len(body)

    def startProducing(self, consumer):
        consumer.write(self.body)
        return succeed(None)

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass

    def stopProducing(self):
        pass


class HTTPClientService(Service):
    """
    A treq client over one persistent connection pool, closed on stop.
    """

    def __init__(self, reactor, size: int = POOL_SIZE):
        self.reactor = reactor
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = size
        agent = Agent.usingEndpointFactory(reactor, Endpoints(reactor), pool=self.pool)
        #: Plain calls straight to the agent; the rest through treq.
        self.client = DirectClient(agent, HTTPClient(agent, cookiejar=_NoCookies()))

    @staticmethod
    def body(data: bytes):
        """What to hand treq as the request body C{data}."""
        return _BytesProducer(data)

    def stopService(self):
        """Stop, and close the pool's connections; a Deferred of their closing."""
        super().stopService()
        return self.pool.closeCachedConnections()


class Remote:
    """
    JSON requests to one replica, authorised with the shared secret.

    @param http: the process's L{HTTPClientService}.
    @param replica: where the replica is.

    @ivar name: the replica's label (C{catalog:A}), for messages.
    @ivar replica: the replica's name (C{A}).
    """

    def __init__(self, http: HTTPClientService, replica: ReplicaConfig, secret: str, timeout: float):
        self.name = replica.label
        self.replica = replica.name
        self.url = replica.url
        self._http = http
        self._headers = {
            b"authorization": [b"Bearer " + secret.encode("utf-8")],
            b"content-type": [b"application/json"],
        }
        self._timeout = timeout
        self._batchers: dict[str, Batcher] = {}

    def __repr__(self):
        return f"<Remote {self.name} {self.url}>"

    async def get(self, path: str, params: dict | None = None):
        """GET C{path} and return the decoded JSON body."""
        return await self._call("GET", path, params=params)

    async def post(self, path: str, body: dict):
        """POST C{body} as JSON to C{path} and return the decoded JSON body."""
        return await self._call("POST", path, data=self._http.body(json_bytes(body)))

    async def stream(self, path: str, params: dict | None, handle) -> int:
        """
        GET C{path}, whose answer is JSON records one per line, and hand
        each record to C{handle} as it arrives, one at a time (the body
        waits on the wire while C{handle}'s Deferred is pending; see
        L{JSONLines}).

        @return: the number of records, once the body ended cleanly and
            each was handled.
        @raise ReplicaDown: no answer within the timeout.
        @raise pygmy.net.stream.StreamBroken: the body stalled for the
            timeout, broke off, or did not parse.
        """
        http = self._http
        try:
            response = await http.client.request(
                "GET",
                self.url + path,
                params=params,
                headers=self._headers,
                timeout=self._timeout,
                reactor=http.reactor,
                allow_redirects=False,
                unbuffered=True,
            )
            if response.code >= 400:
                raw = await response.content()
        except (CancelledError, error.ConnectingCancelledError):
            raise ReplicaDown(f"{self.name} did not answer within {self._timeout}s.") from None
        except NETWORK_ERRORS as e:
            raise ReplicaDown(f"{self.name} is unreachable: {e.__class__.__name__}.") from None
        if response.code >= 400:
            try:
                body = json.loads(raw)
            except ValueError:
                raise ReplicaDown(f"{self.name} answered {response.code} without JSON.") from None
            raise _error_from(self.name, response.code, body)
        receiver = JSONLines(handle, http.reactor, self._timeout, self.name)
        response.deliverBody(receiver)
        return await receiver.done

    def batched(self, path: str, body: dict):
        """
        POST C{body} to the batch route C{path} together with the other
        calls made to it meanwhile; a Deferred of this call's own answer,
        or of its own error.
        """
        batcher = self._batchers.get(path)
        if batcher is None:
            send = lambda bodies: self._post_batch(path, bodies)  # noqa: E731
            batcher = self._batchers[path] = Batcher(send, self._http.reactor)
        return batcher.call(body)

    async def _post_batch(self, path: str, bodies: list) -> list:
        reply = await self.post(path, {"requests": bodies})
        results = reply.get("results") if isinstance(reply, dict) else None
        if not isinstance(results, list) or len(results) != len(bodies):
            raise ReplicaDown(f"{self.name} answered a batch of {len(bodies)} calls without as many results.")
        return [self._outcome(result) for result in results]

    def _outcome(self, result):
        """One call's answer in a batch, or its error."""
        if isinstance(result, dict) and "ok" in result:
            return result["ok"]
        return _error_from(self.name, None, result)

    async def _call(self, method: str, path: str, **kwargs):
        http = self._http
        try:
            response = await http.client.request(
                method,
                self.url + path,
                headers=self._headers,
                timeout=self._timeout,
                reactor=http.reactor,
                allow_redirects=False,
                **kwargs,
            )
            raw = await response.content()
        except (CancelledError, error.ConnectingCancelledError):
            # treq's timeout cancels the call; while still connecting, that
            # fails with ConnectingCancelledError (no CancelledError).
            raise ReplicaDown(f"{self.name} did not answer within {self._timeout}s.") from None
        except NETWORK_ERRORS as e:
            raise ReplicaDown(f"{self.name} is unreachable: {e.__class__.__name__}.") from None
        try:
            body = json.loads(raw)
        except ValueError:
            raise ReplicaDown(f"{self.name} answered {response.code} without JSON.") from None
        if response.code >= 400:
            raise _error_from(self.name, response.code, body)
        return body


def _error_from(name: str, status: int | None, body) -> PygmyError:
    """
    The domain error a replica's error body stands for (C{status} is
    C{None} for one call's error in a batch).
    """
    answered = "answered" if status is None else f"answered {status}"
    try:
        code, message = body["error"]["code"], body["error"]["message"]
    except (TypeError, KeyError):
        return ReplicaDown(f"{name} {answered} with an unexpected body.")
    cls = ERRORS_BY_CODE.get(code)
    if cls is Unauthorized:
        # Our own secret was refused: a misconfigured cluster, not the
        # client's fault, so the client must not see a 401.
        return ReplicaDown(f"{name} refused the cluster secret.")
    if cls is None:
        return ReplicaDown(f"{name} failed ({code}): {message}")
    return cls(message)
