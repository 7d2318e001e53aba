"""
A client of etcd's v3 JSON gateway (C{/v3/kv/range}, C{/v3/kv/txn},
C{/v3/lease/...}, C{/v3/watch}) with treq.

The gateway speaks the gRPC API's messages as JSON: keys and values are
base64, and every 64-bit number (a revision, a lease ID, a TTL) is a JSON
string; a field at its zero value is left out (a failed txn has no
C{succeeded}, a key never created no C{kvs}).  C{/v3/watch} is one POST
whose answer is a stream of JSON objects, one a line, each
C{{"result": {...}}}.  The C{v3alpha} and C{v3beta} paths are gone since
etcd 3.4 and 3.5; only C{/v3/} is used.

L{Gateway} goes to the next endpoint of its list when one cannot be reached
(refused, reset, timed out) or answers that it cannot serve now (no leader:
gRPC C{UNAVAILABLE}); every call has a deadline, measured on the reactor's
clock, after which it fails with L{EtcdUnavailable}.  Every request it sends
is safe to send twice (the txns compare before they write), so a request
whose answer was lost may be tried again.
"""

from __future__ import annotations

import json

from twisted.internet import error
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.web.client import ResponseDone

from pygmy.coordination.etcd_wire import (
    MAX_LINE,
    RETRY_ELSEWHERE,
    EtcdError,
    EtcdUnavailable,
    b64,
    parse_endpoints,
    prefix_end,
)
from pygmy.net.remote import NETWORK_ERRORS

log = Logger()


class Gateway:
    """
    Calls to an etcd cluster's JSON gateway.

    @param endpoints: the members' base URLs, comma-separated or a list.
    @param client: a treq C{HTTPClient} (or C{StubTreq}).
    @param reactor: schedules the deadlines (a C{Clock} in tests).
    @param timeout: seconds each call may take, over all the endpoints it tries.
    """

    def __init__(self, endpoints, client, reactor, timeout: float = 2.0):
        self.endpoints = parse_endpoints(endpoints)
        self.client = client
        self.reactor = reactor
        self.timeout = timeout
        #: The endpoint that answered last: calls begin there.
        self.current = 0

    def call(self, path: str, body: dict, timeout: float | None = None) -> Deferred:
        """
        POST C{body} to C{path} (C{/v3/kv/range} ...) and fire with the
        decoded answer.  An unreachable endpoint, or one that answers
        C{UNAVAILABLE}, sends the call on to the next, until each was tried
        once or C{timeout} (default L{timeout}) has passed.

        @return: a Deferred of the answer (a C{dict}); it fails with
            L{EtcdUnavailable} when no endpoint answered, or L{EtcdError}
            for any other error etcd answered.
        """
        timeout = self.timeout if timeout is None else timeout
        problems: list[str] = []
        data = json.dumps(body).encode("utf-8")
        tries = iter(range(len(self.endpoints)))
        attempt = Deferred()
        timed_out = False

        def give_up():
            nonlocal timed_out
            timed_out = True
            attempt.cancel()

        def cancel(_):
            if deadline.active():
                deadline.cancel()
            attempt.cancel()

        done = Deferred(cancel)
        deadline = self.reactor.callLater(timeout, give_up)

        def next_try():
            nonlocal attempt
            if next(tries, None) is None:
                finish(EtcdUnavailable(f"etcd did not answer {path}: " + "; ".join(problems)))
                return
            url = self.endpoints[self.current]
            attempt = self._post(url + path, data)
            attempt.addCallbacks(finish, failed, errbackArgs=(url,))

        def failed(failure, url):
            if timed_out:
                # The next call begins at the next endpoint: this one may
                # have lost its leader, or be cut off.
                problems.append(f"{url}: no answer within {timeout:g}s")
                self.current = (self.current + 1) % len(self.endpoints)
                finish(EtcdUnavailable(f"etcd did not answer {path}: " + "; ".join(problems)))
            elif done.called:
                pass  # cancelled by the caller
            elif (
                failure.check(EtcdError)
                and not failure.check(EtcdUnavailable)
                and failure.value.code not in RETRY_ELSEWHERE
            ):
                finish(failure.value)
            else:
                problems.append(failure.getErrorMessage() or f"{url}: {failure.type.__name__}")
                self.current = (self.current + 1) % len(self.endpoints)
                next_try()

        def finish(result):
            if deadline.active():
                deadline.cancel()
            if done.called:
                return
            if isinstance(result, Exception):
                done.errback(result)
            else:
                done.callback(result)

        next_try()
        return done

    def _post(self, url: str, data: bytes) -> Deferred:
        """One POST and its decoded answer; an error answer fails with L{EtcdError}."""
        d = self.client.request("POST", url, data=data, headers={b"content-type": [b"application/json"]})

        def read(response):
            return response.content().addCallback(decode, response.code)

        def decode(raw, code):
            try:
                answer = json.loads(raw)
            except ValueError:
                raise EtcdError(f"{url} answered {code} without JSON", None) from None
            if not isinstance(answer, dict):
                raise EtcdError(f"{url} answered {code} with {raw[:200]!r}", None)
            if code != 200 or "error" in answer:
                grpc = answer.get("code") if isinstance(answer.get("code"), int) else None
                message = f"{url}: {answer.get('message') or answer.get('error') or f'HTTP {code}'}"
                if code >= 500 or grpc in RETRY_ELSEWHERE:
                    raise EtcdUnavailable(message, grpc)
                raise EtcdError(message, grpc)
            return answer

        return d.addCallback(read).addErrback(_network_error, url)

    # The calls Pygmy makes

    def range(self, key: str, prefix: bool = False, timeout: float | None = None) -> Deferred:
        """The keys at C{key} (with C{prefix}: every key that starts with it)."""
        body = {"key": b64(key)}
        if prefix:
            body["range_end"] = prefix_end(key)
        return self.call("/v3/kv/range", body, timeout)

    def txn(self, compare: list, success: list, failure: list, timeout: float | None = None) -> Deferred:
        """A transaction: C{success} if every C{compare} holds, else C{failure}."""
        return self.call("/v3/kv/txn", {"compare": compare, "success": success, "failure": failure}, timeout)

    def grant(self, ttl: int, timeout: float | None = None) -> Deferred:
        """A new lease of C{ttl} seconds; its answer has C{ID} and the C{TTL} etcd granted."""
        return self.call("/v3/lease/grant", {"TTL": str(ttl)}, timeout)

    def keepalive(self, lease: int, timeout: float | None = None) -> Deferred:
        """Renew C{lease}; the answer's C{result.TTL} is 0 (absent) once the lease is gone."""
        return self.call("/v3/lease/keepalive", {"ID": str(lease)}, timeout)

    def revoke(self, lease: int, timeout: float | None = None) -> Deferred:
        """End C{lease} and delete its keys."""
        return self.call("/v3/lease/revoke", {"ID": str(lease)}, timeout)

    def watch(self, key: str, start_revision: int, message, prefix: bool = True) -> WatchStream:
        """
        Watch C{key} (a prefix) from C{start_revision} on the current
        endpoint: C{message(result)} is called with every C{result} of the
        stream.  See L{WatchStream}.
        """
        create = {"key": b64(key), "start_revision": str(start_revision), "progress_notify": True}
        if prefix:
            create["range_end"] = prefix_end(key)
        url = self.endpoints[self.current] + "/v3/watch"
        return WatchStream(self, url, json.dumps({"create_request": create}).encode("utf-8"), message)


def _final(failure) -> bool:
    """Whether an answer's error stands whatever endpoint is asked (not unreachable, not UNAVAILABLE)."""
    return bool(failure.check(EtcdError)) and not failure.check(EtcdUnavailable)


def _network_error(failure, url):
    """A call that got no answer at all fails with L{EtcdUnavailable}; others pass through."""
    if failure.check(*NETWORK_ERRORS, error.ConnectionRefusedError, error.DNSLookupError):
        raise EtcdUnavailable(f"{url.rsplit('/v3/', 1)[0]}: unreachable ({failure.type.__name__})")
    return failure


class WatchStream:
    """
    One open C{/v3/watch} stream.

    @ivar ended: fires (with C{None}) when the stream ends, however it ends:
        closed by etcd, lost, refused, or stopped by L{stop}.  A stream
        that could not be opened, or broke, fires it with the reason (a
        L{EtcdError}) instead; L{Gateway.current} then moves to the next
        endpoint.
    """

    def __init__(self, gateway: Gateway, url: str, data: bytes, message):
        self.url = url
        self.ended = Deferred()
        self._gateway = gateway
        self._message = message
        self._lines: _Lines | None = None
        self._stopped = False
        d = gateway.client.request("POST", url, data=data, headers={b"content-type": [b"application/json"]})
        self._opening = d.addTimeout(gateway.timeout, gateway.reactor)
        d.addCallbacks(self._opened, self._failed)

    def _opened(self, response):
        if response.code != 200:
            self._end(EtcdError(f"{self.url} answered {response.code} to a watch"))
            return response.content()
        self._lines = _Lines(self._deliver)
        self._lines.done.addBoth(self._closed)
        response.deliverBody(self._lines)

    def _deliver(self, result: dict) -> None:
        if not self._stopped:
            self._message(result)

    def _closed(self, reason):
        if reason is None or self._stopped:
            self._end(None)
        else:
            self._failed(reason)

    def _failed(self, failure):
        if self._stopped:
            self._end(None)
            return
        if failure.check(EtcdError):
            self._end(failure.value)
            return
        gateway = self._gateway
        gateway.current = (gateway.current + 1) % len(gateway.endpoints)
        self._end(EtcdUnavailable(f"{self.url}: watch lost ({failure.getErrorMessage() or failure.type.__name__})"))

    def _end(self, result):
        if self.ended.called:
            return
        if isinstance(result, Exception):
            self.ended.errback(result)
        else:
            self.ended.callback(None)

    def stop(self) -> None:
        """Close the stream; L{ended} fires with C{None}."""
        self._stopped = True
        if self._lines is not None:
            self._lines.stop()
        else:
            self._opening.cancel()  # no-op once it has fired; forwarded while it waits
        self._end(None)


class _Lines(Protocol):
    """A response body read as newline-delimited JSON; each C{result} goes to C{message}."""

    def __init__(self, message):
        self.message = message
        self.done = Deferred()
        self._buffer = b""

    def dataReceived(self, data: bytes) -> None:
        """Split into lines; hand on each one's C{result}, or end on an C{error} line."""
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        if len(self._buffer) > MAX_LINE:
            self._fail(EtcdError("etcd sent a watch line over 4 MiB"))
            return
        for line in lines:
            if line.strip() and not self.done.called:
                self._line(line)

    def _line(self, line: bytes) -> None:
        try:
            decoded = json.loads(line)
        except ValueError:
            self._fail(EtcdError(f"etcd sent a watch line that is not JSON: {line[:200]!r}"))
            return
        result = decoded.get("result") if isinstance(decoded, dict) else None
        if not isinstance(result, dict):
            error = decoded.get("error") if isinstance(decoded, dict) else None
            self._fail(EtcdError(f"etcd ended the watch: {error or line[:200]!r}"))
            return
        try:
            self.message(result)
        except Exception:
            log.failure("etcd watch: handling {result}", result=result)

    def _fail(self, reason: Exception) -> None:
        if not self.done.called:
            self.done.errback(reason)
        self.stop()

    def stop(self) -> None:
        """Close the connection the body comes on."""
        if self.transport is not None:
            self.transport.stopProducing()

    def connectionLost(self, reason) -> None:
        """The body ended (C{ResponseDone}) or broke."""
        if not self.done.called:
            if reason.check(ResponseDone):
                self.done.callback(None)
            else:
                self.done.errback(reason)
