"""
Which front ends a C{pygmy} client talks to, and how a request finds one
that answers (DESIGN.md section 8).

The front ends are the C{--url} options, in order (C{--url} may be
repeated), or every front end of the config file (C{--config}, else
C{./config.ini} if it exists: the lone C{[frontend]} or each
C{[frontend:NAME]}), or L{DEFAULT_URL}.  L{Frontends} keeps them in order
with the one that answered last: a request goes there first, and on a
connection error (refused, reset, closed before an answer, timed out, no
such host) to the next one, each at most once.  An HTTP answer, whatever
its status (a 4xx, a 503), is the answer: it is never taken to another
front end, since the front end that gave it has done (or refused) the
request.  A write sent again to another front end carries the same
C{Idempotency-Key}, so it is done once however many front ends saw it
(the key is the write's request id in the replicas, across every front
end).

The errors every client command shares are here too: L{ClientError} and
its kinds, with the exit status each one means.
"""

from __future__ import annotations

from pathlib import Path
from typing import Awaitable, Callable, Sequence, TypeVar

#: The front end a command talks to when there is neither --url nor a config file.
DEFAULT_URL = "http://127.0.0.1:8080"
#: The config file read when --config is not given (if it exists).
DEFAULT_CONFIG = "config.ini"

OK, FAILED, USAGE, UNREACHABLE = 0, 1, 2, 3

T = TypeVar("T")


class ClientError(Exception):
    """A command could not be done; C{str()} is the line to print, C{status} the exit status."""

    status = FAILED


class ServerError(ClientError):
    """
    The front end answered with an error.

    @ivar code: the HTTP status; @ivar body: the decoded reply, if it was JSON.
    """

    status = FAILED

    def __init__(self, code: int, body):
        self.code = code
        self.body = body
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            text = f"{code} {error.get('code', 'error')}"
            if error.get("message"):
                text += f": {error['message']}"
        else:
            text = f"HTTP {code} from the front end, and not a Pygmy JSON reply"
        super().__init__(text)


class Unreachable(ClientError):
    """
    No answer from any front end (refused, reset, timed out, no such host).

    @ivar failures: C{(url, why)} of each front end tried, in order.
    """

    status = UNREACHABLE

    def __init__(self, text: str, failures: Sequence[tuple[str, str]] = ()):
        super().__init__(text)
        self.failures = tuple(failures)


class UsageError(ClientError):
    """Bad arguments or config file."""

    status = USAGE


def describe_failure(error: Exception) -> str:
    """A few words for a transport failure: C{connection refused}, C{timed out} ..."""
    from twisted.internet import error as errors
    from twisted.internet.defer import CancelledError
    from twisted.web.client import ResponseNeverReceived

    if isinstance(error, ResponseNeverReceived) and error.reasons:
        error = error.reasons[0].value
    if isinstance(error, errors.ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, (CancelledError, errors.TimeoutError)):
        return "timed out"
    if isinstance(error, errors.DNSLookupError):
        return "unknown host"
    if isinstance(error, (errors.ConnectionLost, errors.ConnectionDone)):
        return "connection closed before an answer"
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def describe_unreachable(failures: Sequence[tuple[str, str]]) -> str:
    """
    The one line of an L{Unreachable}: C{cannot reach the front end at URL
    (why)} for one front end, C{cannot reach any front end: URL (why), ...}
    for several.
    """
    if len(failures) == 1:
        url, why = failures[0]
        return f"cannot reach the front end at {url} ({why})"
    return "cannot reach any front end: " + ", ".join(f"{url} ({why})" for url, why in failures)


# Where the front ends are


def base_url(url: str) -> str:
    """C{url} without trailing slashes, with C{http://} if it has no scheme."""
    url = url.strip().rstrip("/")
    if not url:
        raise UsageError("--url is empty")
    return url if "://" in url else f"http://{url}"


def resolve_urls(urls: Sequence[str] | str | None, config_path: str | None) -> tuple[str, ...]:
    """
    The front ends' base URLs, in order: the C{--url} options given
    (duplicates dropped); else every front end of C{config_path} (default
    C{./config.ini}, skipped if it does not exist), in file order; else
    L{DEFAULT_URL}.

    @raise UsageError: if a URL is empty, a config file named by
        C{--config} is missing, or a config file is invalid.
    """
    if isinstance(urls, str):
        urls = [urls]
    if urls:
        return tuple(dict.fromkeys(base_url(url) for url in urls))
    if config_path is None:
        if not Path(DEFAULT_CONFIG).is_file():
            return (DEFAULT_URL,)
        config_path = DEFAULT_CONFIG
    from pygmy import config as configuration

    try:
        config = configuration.load(config_path)
    except configuration.ConfigError as e:
        raise UsageError(str(e)) from None
    return tuple(front.url for front in config.frontends.values())


def resolve_url(url: str | None, config_path: str | None) -> str:
    """The first of L{resolve_urls}: where a one-front-end tool goes."""
    return resolve_urls(url, config_path)[0]


# Going to the next one


class Frontends:
    """
    The front ends one client uses, in order, and the one that answered
    last (where its next request goes first).

    @ivar urls: their base URLs.
    @ivar current: the index in C{urls} of the one tried first.
    @ivar moves: how many requests went on to another front end.
    """

    def __init__(self, urls: Sequence[str] | str, start: int = 0):
        self.urls = (urls,) if isinstance(urls, str) else tuple(urls)
        if not self.urls:
            raise UsageError("no front end to talk to")
        self.current = start % len(self.urls)
        self.moves = 0

    @property
    def url(self) -> str:
        """The front end tried first."""
        return self.urls[self.current]

    @property
    def several(self) -> bool:
        """Whether a request may go to another front end."""
        return len(self.urls) > 1

    def rotation(self) -> list[str]:
        """Every front end once, from the current one on, wrapping round."""
        n = len(self.urls)
        return [self.urls[(self.current + i) % n] for i in range(n)]

    def spread(self, number: int) -> Frontends:
        """A copy for client C{number} of several, starting at front end C{number} (so the load spreads)."""
        return Frontends(self.urls, number)

    async def first(self, attempt: Callable[[str], Awaitable[T]]) -> T:
        """
        C{await attempt(url)} for each front end of L{rotation} until one
        returns; the one that did becomes the current one.  C{attempt}
        must return any answer (an error status too) and raise only for
        no answer: whatever it raises counts as "this front end is
        unreachable", and the next one is tried.

        @raise Unreachable: if every front end failed, naming each and why.
        """
        failures = []
        for tried, url in enumerate(self.rotation()):
            try:
                result = await attempt(url)
            except Exception as e:  # no answer from this one: the next
                failures.append((url, describe_failure(e)))
                continue
            if tried:
                self.moves += 1
                self.current = self.urls.index(url)
            return result
        raise Unreachable(describe_unreachable(failures), failures)
