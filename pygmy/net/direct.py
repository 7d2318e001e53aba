"""
Internal calls straight to an L{Agent<twisted.web.client.Agent>}, without
treq's per-call wrapping.

For every request, treq's C{HTTPClient.request} parses the URL with
hyperlink and prints it back, wraps the agent in a C{CookieAgent} and a
C{ContentDecoderAgent} (and with them, cookie-jar and header work), and
buffers the body through a protocol of its own.  A profile of a buy
(docs/performance.rst) put that at about a tenth of the CPU of the
processes a buy crosses.  Calls between Pygmy processes need none of it:
their URLs are made by L{pygmy.config.ReplicaConfig.url} plus a route,
no replica sets cookies or compresses, no call follows redirects.

L{DirectClient} takes the same C{request(...)} arguments as treq (the ones
L{pygmy.net.remote.Remote} passes) and answers with an object that has
C{code} and C{content()}, like treq's response.  A call with query
parameters or an unbuffered body (the streamed routes, off the hot path)
goes to treq as before.
"""

from __future__ import annotations

import re

from treq.content import collect
from twisted.web.http_headers import Headers

#: A URL sent as it is: printable ASCII that needs no quoting.  Any other
#: goes through treq, which quotes it.
_PLAIN_URL = re.compile(r"[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]+")


class DirectResponse:
    """
    What L{DirectClient.request} answers: the status and the body, read
    on demand, as treq's response has them.

    @ivar code: the HTTP status.
    """

    def __init__(self, response):
        self.code = response.code
        self.headers = response.headers
        self._response = response

    def content(self):
        """
        @return: a Deferred of the whole body (an end without a length,
            C{PotentialDataLoss}, counts as the end, as with treq).
        """
        chunks = []
        return collect(self._response, chunks.append).addCallback(lambda _: b"".join(chunks))


class DirectClient:
    """
    The C{request} of a treq C{HTTPClient}, for calls without query
    parameters straight to C{agent}.

    @param agent: the L{Agent<twisted.web.client.Agent>} (with its pool).
    @param fallback: the treq client for every other call.
    """

    def __init__(self, agent, fallback):
        self._agent = agent
        self._fallback = fallback
        self._urls: dict[str, bytes] = {}

    def request(
        self, method, url, *, headers, reactor, timeout=None, data=None, params=None, unbuffered=False, **kwargs
    ):
        """
        Send one request; a Deferred of a L{DirectResponse}.

        @param headers: C{{name: [value]}} as bytes.
        @param data: an C{IBodyProducer} or C{None}.
        @param timeout: seconds until the answer's head; then the call is
            cancelled (C{CancelledError}, or C{ConnectingCancelledError}
            while connecting), as treq does.
        @param kwargs: treq's other arguments; only
            C{allow_redirects=False} is taken here.
        """
        plain = url in self._urls or _PLAIN_URL.fullmatch(url)
        if (
            not plain
            or params
            or unbuffered
            or kwargs.get("allow_redirects", True)
            or set(kwargs) - {"allow_redirects"}
        ):
            return self._fallback.request(
                method,
                url,
                headers=headers,
                reactor=reactor,
                timeout=timeout,
                data=data,
                params=params,
                unbuffered=unbuffered,
                **kwargs,
            )
        encoded = self._urls.get(url)
        if encoded is None:
            encoded = url.encode("ascii")
            if len(self._urls) < 4096:
                self._urls[url] = encoded
        d = self._agent.request(method.encode("ascii"), encoded, Headers(headers), data)
        if timeout:
            delayed = reactor.callLater(timeout, d.cancel)

            def answered(result):
                if delayed.active():
                    delayed.cancel()
                return result

            d.addBoth(answered)
        return d.addCallback(DirectResponse)
