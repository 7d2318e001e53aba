"""
The everyday client commands of C{pygmy}: search, lookup, buy, order,
list and status against a front end's public API (DESIGN.md section 3).

Each command is one small coroutine that makes one request and returns the
decoded reply (L{search}, L{lookup} ...), and one function that
turns that reply into readable text (L{pygmy.cli.formats}); L{run} ties
them together with the error handling, and L{main} runs it under
C{react} with a treq client of its own.  Only Twisted and treq are needed
(the tables here are plain text, so the optional C{load} extra is not).

Exit status: 0 done, 1 the front end answered with an error (its message
is printed), 2 bad usage or config file, 3 the front end cannot be reached.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import quote

from pygmy.cli.formats import dump_json, format_book, format_list, format_order, format_search, format_status

#: The front end a command talks to when there is neither --url nor a config file.
DEFAULT_URL = "http://127.0.0.1:8080"
#: The config file read when --config is not given (if it exists).
DEFAULT_CONFIG = "config.ini"
#: Seconds one request may take (--timeout).
DEFAULT_TIMEOUT = 10.0

OK, FAILED, USAGE, UNREACHABLE = 0, 1, 2, 3


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
    """No answer from the front end (refused, reset, timed out, no such host)."""

    status = UNREACHABLE


class UsageError(ClientError):
    """Bad arguments or config file."""

    status = USAGE


# Where the front end is


def base_url(url: str) -> str:
    """C{url} without trailing slashes, with C{http://} if it has no scheme."""
    url = url.strip().rstrip("/")
    if not url:
        raise UsageError("--url is empty")
    return url if "://" in url else f"http://{url}"


def resolve_url(url: str | None, config_path: str | None) -> str:
    """
    The front end's base URL: C{url} if given; else C{[frontend] host} and
    C{port} of C{config_path} (default C{./config.ini}, skipped if it does
    not exist); else L{DEFAULT_URL}.

    @raise UsageError: if a config file named by C{--config} is missing or
        a config file is invalid.
    """
    if url is not None:
        return base_url(url)
    if config_path is None:
        if not Path(DEFAULT_CONFIG).is_file():
            return DEFAULT_URL
        config_path = DEFAULT_CONFIG
    from pygmy import config as configuration

    try:
        return configuration.load(config_path).frontend.url
    except configuration.ConfigError as e:
        raise UsageError(str(e)) from None


# Talking to the front end


@dataclass
class Frontend:
    """
    The public API of one front end, through a treq C{HTTPClient}.

    @ivar timeout: seconds per request, or C{None}.
    """

    http: object
    url: str
    timeout: float | None = DEFAULT_TIMEOUT

    async def call(self, method: str, path: str, headers=None, params=None) -> dict:
        """
        One request; the decoded JSON of a 2xx reply.

        @raise ServerError: on any other status.
        @raise Unreachable: if no answer came.
        """
        limit = {} if self.timeout is None else {"timeout": self.timeout}
        try:
            response = await self.http.request(method, self.url + path, headers=headers or {}, params=params, **limit)
            content = await response.content()
        except Exception as e:  # any transport failure means "no answer"
            raise Unreachable(f"cannot reach the front end at {self.url} ({describe_failure(e)})") from None
        try:
            body = json.loads(content)
        except ValueError:
            body = None
        if not 200 <= response.code < 300:
            raise ServerError(response.code, body)
        if body is None:
            raise ServerError(response.code, None)
        return body


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


def _segment(value: str) -> str:
    """C{value} quoted as one path segment."""
    return quote(str(value), safe="")


async def search(api: Frontend, topic: str) -> dict:
    """C{GET /search?topic=}: C{{"topic", "items": [{"id", "title"}]}}."""
    return await api.call("GET", "/search", params={"topic": topic})


async def lookup(api: Frontend, item_id: str) -> dict:
    """C{GET /lookup/<id>}: one book."""
    return await api.call("GET", f"/lookup/{_segment(item_id)}")


async def buy(api: Frontend, item_id: str, key: str | None = None) -> dict:
    """C{POST /buy/<id>}, with C{Idempotency-Key: key} if given: C{{"order"}}."""
    headers = {} if key is None else {"Idempotency-Key": key}
    return await api.call("POST", f"/buy/{_segment(item_id)}", headers=headers)


async def order(api: Frontend, order_id: str) -> dict:
    """C{GET /orders/<order_id>}: C{{"order"}}."""
    return await api.call("GET", f"/orders/{_segment(order_id)}")


async def listing(api: Frontend, limit: int | None = None) -> dict:
    """
    C{GET /list?after=A&limit=N} page after page, each from the C{next} of
    the one before, until C{next} is null.

    @param limit: books per page, or C{None} for the front end's default.
    @return: C{{"items": [book, ...], "next": None}}, the books of every page.
    @raise ServerError: if a page's C{next} does not move forward.
    """
    items: list = []
    after = 0
    while True:
        params = {"after": str(after)} if after else {}
        if limit is not None:
            params["limit"] = str(limit)
        body = await api.call("GET", "/list", params=params)
        items.extend(body.get("items") or [])
        following = body.get("next")
        if following is None:
            return {"items": items, "next": None}
        if not isinstance(following, int) or isinstance(following, bool) or following <= after:
            raise ServerError(200, {"error": {"code": "bad_reply", "message": f"next {following!r} after {after}"}})
        after = following


async def status(api: Frontend) -> dict:
    """C{GET /status}: the cluster as the front end sees it."""
    return await api.call("GET", "/status")


#: Per command: what it asks (api, args) -> body, and how its reply is shown.
COMMANDS: dict[str, tuple[Callable, Callable[[dict], str]]] = {
    "search": (lambda api, a: search(api, " ".join(a.topic)), format_search),
    "lookup": (lambda api, a: lookup(api, a.id), format_book),
    "buy": (lambda api, a: buy(api, a.id, a.key), format_order),
    "order": (lambda api, a: order(api, a.id), format_order),
    "list": (lambda api, a: listing(api, a.limit), format_list),
    "status": (lambda api, a: status(api), format_status),
}


async def run(api: Frontend, args, out=None, err=None) -> int:
    """
    Do C{args.command} against C{api}; print its reply (as a table, or
    JSON with C{args.json}) on C{out}, or one error line on C{err}.

    @return: the exit status.
    """
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    ask, show = COMMANDS[args.command]
    try:
        body = await ask(api, args)
    except ServerError as e:
        if args.json and e.body is not None:
            print(dump_json(e.body), file=out)
        print(f"pygmy {args.command}: {e}", file=err)
        return e.status
    except ClientError as e:
        print(f"pygmy {args.command}: {e}", file=err)
        return e.status
    print(dump_json(body) if args.json else show(body), file=out)
    return OK


def main(args, out=None, err=None) -> int:
    """
    Run one client command (C{args} from L{pygmy.cli}) under
    C{react}, with a treq client whose pool is closed at the end.

    @return: the exit status.
    """
    err = sys.stderr if err is None else err
    try:
        url = resolve_url(args.url, args.config)
    except ClientError as e:
        print(f"pygmy {args.command}: {e}", file=err)
        return e.status

    async def command(reactor) -> int:
        from treq.client import HTTPClient
        from twisted.web.client import Agent, HTTPConnectionPool

        pool = HTTPConnectionPool(reactor)
        pool.maxPersistentPerHost = 1
        http = HTTPClient(Agent(reactor, pool=pool, connectTimeout=args.timeout))
        try:
            return await run(Frontend(http, url, args.timeout), args, out, err)
        finally:
            await pool.closeCachedConnections()

    return react_for_status(command)


def react_for_status(command) -> int:
    """
    Run the coroutine function C{command(reactor)} under C{react} and
    return the exit status it returns (C{react} itself ends with
    C{SystemExit}).
    """
    from twisted.internet.defer import ensureDeferred
    from twisted.internet.task import react

    outcome: list[int] = []

    async def guarded(reactor) -> int:
        try:
            return await command(reactor)
        except BrokenPipeError:  # the reader went away (C{| head}): nothing more to say
            return FAILED

    def start(reactor):
        return ensureDeferred(guarded(reactor)).addCallback(outcome.append)

    try:
        react(start)
    except SystemExit as e:
        if not outcome:
            return e.code if isinstance(e.code, int) and e.code else 1
    return outcome[0] if outcome else 1
