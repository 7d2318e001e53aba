"""
The everyday client commands of C{pygmy}: search, lookup, buy, order,
list, update and status against a front end's public API (DESIGN.md
section 3).

Each command is one small coroutine that makes one request and returns the
decoded reply (L{search}, L{lookup} ...), and one function that
turns that reply into readable text (L{pygmy.cli.formats}); L{run} ties
them together with the error handling, and L{main} runs it under
C{react} with a treq client of its own.  Only Twisted and treq are needed
(the tables here are plain text, so the optional C{load} extra is not).

With several front ends (C{--url} repeated, or a config file with several
C{[frontend:NAME]}), a request that finds one front end unreachable goes
to the next (L{pygmy.cli.frontends}); an error answer is final.

Exit status: 0 done, 1 the front end answered with an error (its message
is printed), 2 bad usage or config file, 3 no front end can be reached.
"""

from __future__ import annotations

import json
import sys
from typing import Callable, Sequence
from urllib.parse import quote

from pygmy.cli.formats import dump_json, format_book, format_list, format_order, format_search, format_status

# Re-exported: the client commands' errors and URLs, used as client.X.
from pygmy.cli.frontends import (  # noqa: F401
    DEFAULT_CONFIG,
    DEFAULT_URL,
    FAILED,
    OK,
    UNREACHABLE,
    USAGE,
    ClientError,
    Frontends,
    ServerError,
    Unreachable,
    UsageError,
    base_url,
    describe_failure,
    resolve_url,
    resolve_urls,
)
from pygmy.clock import ordered_id

#: Seconds one request may take (--timeout).
DEFAULT_TIMEOUT = 10.0


class Frontend:
    """
    The public API of the front ends a command uses, through a treq
    C{HTTPClient}: each request goes to the current front end, and on a
    connection error to the next (L{Frontends.first}).

    @ivar frontends: the L{Frontends}.
    @ivar timeout: seconds per request to one front end, or C{None}.
    """

    def __init__(self, http, urls: Frontends | Sequence[str] | str, timeout: float | None = DEFAULT_TIMEOUT):
        self.http = http
        self.frontends = urls if isinstance(urls, Frontends) else Frontends(urls)
        self.timeout = timeout

    @property
    def url(self) -> str:
        """The front end tried first (the one that answered last)."""
        return self.frontends.url

    async def call(self, method: str, path: str, headers=None, params=None, data: bytes | None = None) -> dict:
        """
        One request, sent again as it is (same headers, so the same
        C{Idempotency-Key}) to the next front end while one does not
        answer; the decoded JSON of a 2xx reply.

        @raise ServerError: on any other status (never tried elsewhere).
        @raise Unreachable: if no front end answered.
        """
        limit = {} if self.timeout is None else {"timeout": self.timeout}
        body = {} if data is None else {"data": data}

        async def exchange(url: str):
            response = await self.http.request(
                method, url + path, headers=headers or {}, params=params, **body, **limit
            )
            return response, await response.content()

        response, content = await self.frontends.first(exchange)
        try:
            body = json.loads(content)
        except ValueError:
            body = None
        if not 200 <= response.code < 300:
            raise ServerError(response.code, body)
        if body is None:
            raise ServerError(response.code, None)
        return body


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
    """
    C{POST /buy/<id>}, with C{Idempotency-Key: key} if given: C{{"order"}}.
    Without a key but with several front ends, a new key (L{ordered_id}), so that
    the buy sent again to the next front end after a connection error is
    done once.
    """
    if key is None and api.frontends.several:
        key = ordered_id()
    headers = {} if key is None else {"Idempotency-Key": key}
    return await api.call("POST", f"/buy/{_segment(item_id)}", headers=headers)


async def update(
    api: Frontend, item_id: str, secret: str, cost: str | None = None, stock_delta: int | None = None, key=None
) -> dict:
    """
    C{POST /update/<id>} with C{{"cost"}} and/or C{{"stock_delta"}}, the
    Bearer C{secret} and C{Idempotency-Key: key} if given (a new one with
    several front ends, as for L{buy}): C{{"item"}}.

    @raise UsageError: if neither C{cost} nor C{stock_delta} is given.
    """
    change = {name: value for name, value in (("cost", cost), ("stock_delta", stock_delta)) if value is not None}
    if not change:
        raise UsageError("give --cost and/or --stock-delta")
    if key is None and api.frontends.several:
        key = ordered_id()
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return await api.call("POST", f"/update/{_segment(item_id)}", headers=headers, data=json.dumps(change).encode())


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
    "update": (
        lambda api, a: update(api, a.id, a.secret, a.cost, a.stock_delta, a.key),
        lambda body: format_book(body.get("item") or {}),
    ),
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
        urls = resolve_urls(args.url, args.config)
        if args.command == "update":
            from pygmy.cli.importer import resolve_secret

            args.secret = resolve_secret(args.secret, args.config)
    except ClientError as e:
        print(f"pygmy {args.command}: {e}", file=err)
        return e.status

    async def command(reactor) -> int:
        from treq.client import HTTPClient
        from twisted.web.client import Agent, HTTPConnectionPool

        pool = HTTPConnectionPool(reactor)
        pool.maxPersistentPerHost = 1  # per front end
        http = HTTPClient(Agent(reactor, pool=pool, connectTimeout=args.timeout))
        try:
            return await run(Frontend(http, urls, args.timeout), args, out, err)
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
