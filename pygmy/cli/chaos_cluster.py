"""
What the pieces of one C{pygmy chaos} run share (L{Context}: the reactor,
the config, the HTTP client, the clock of the run, the observations), and
how they talk to the cluster (L{Cluster}: the front end's views, the
catalog, stock updates, the replicas' tables).

The pieces are L{pygmy.cli.chaos_load} (the clients and the restocker),
L{pygmy.cli.chaos_faults} (the kills and restarts) and
L{pygmy.cli.chaos_checks} (what is read back once the load has stopped);
L{pygmy.cli.chaos} puts them together.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from uuid import uuid4

from pygmy.cli import lifecycle
from pygmy.cli.frontends import Frontends, Unreachable
from pygmy.cli.invariants import Observations, describe_answer, order_items

#: Seconds to wait for the cluster to settle, a restart to answer, a rejoin.
SETTLE_TIMEOUT = 30.0
#: Seconds one client request may take.
REQUEST_TIMEOUT = 30.0
#: Tries of one stock update.
RESTOCK_TRIES = 100


class Abort(Exception):
    """The run cannot start or go on (cluster not up, set-up failed)."""


async def exchange(http, method: str, url: str, body=None, headers=None, timeout=REQUEST_TIMEOUT):
    """One request; C{(status, decoded JSON or None)}; raises if no answer came."""
    data = None if body is None else json.dumps(body).encode()
    response = await http.request(method, url, data=data, headers=headers or {}, timeout=timeout)
    content = await response.content()
    try:
        return response.code, json.loads(content)
    except ValueError:
        return response.code, None


async def call(http, method: str, url: str, body=None, headers=None, timeout=REQUEST_TIMEOUT):
    """
    One request; return C{(status, decoded JSON or None)}, or
    C{(None, reason)} if no answer came.
    """
    try:
        return await exchange(http, method, url, body, headers, timeout)
    except Exception as e:  # any transport failure is "no answer"
        return None, f"{type(e).__name__}: {e}"


async def through(http, fronts: Frontends, method: str, path: str, body=None, headers=None, timeout=REQUEST_TIMEOUT):
    """
    C{path} through the front ends C{fronts}: the current one, then (no
    answer) the next with the same headers; C{(status, body)} of the first
    answer, or C{(None, reason)} if none answered.
    """
    try:
        return await fronts.first(lambda url: exchange(http, method, url + path, body, headers, timeout))
    except Unreachable as e:
        return None, str(e)


@dataclass
class Context:
    """
    What the pieces of one chaos run share.

    @ivar http: a treq C{HTTPClient}.
    @ivar rng: the run's C{random.Random}.
    @ivar echo: prints one line.
    @ivar obs: what the run saw, for the checks.
    @ivar started: C{reactor.seconds()} when the load began, or C{None} before.
    """

    reactor: object
    config: object
    http: object
    rng: object
    echo: object
    obs: Observations = field(default_factory=Observations)
    started: float | None = None

    def now(self) -> float:
        """Seconds since the load began (0 before)."""
        return 0.0 if self.started is None else self.reactor.seconds() - self.started

    def say(self, text: str) -> None:
        """Print a progress line, stamped with the time since the load began."""
        self.echo(f"[{self.now():6.2f}s] {text}" if self.started else f"[ set-up] {text}")

    async def until(self, moment: float) -> None:
        """Sleep until C{moment} seconds after the load began."""
        await lifecycle.sleep(self.reactor, moment - self.now())


class Cluster:
    """
    The cluster of C{run.config} as a chaos run reads and writes it: through
    the front ends (any that answers), and each replica's C{/status} and
    C{/admin/dump}.

    @ivar frontends: every front end of the config, for the requests that
        may go to any of them.
    """

    def __init__(self, run: Context):
        self.run = run
        self.frontends = Frontends([front.url for front in run.config.frontends.values()])
        self.auth = {"Authorization": f"Bearer {run.config.cluster.secret}"}
        #: The keys of the updates whose outcome is unknown (no answer until the end of their tries).
        self.unknown: set[str] = set()

    @property
    def url(self) -> str:
        """The front end tried first."""
        return self.frontends.url

    async def ask(self, method: str, path: str, body=None, headers=None, timeout=REQUEST_TIMEOUT):
        """C{path} through any front end that answers (L{through}): C{(status, body)} or C{(None, reason)}."""
        return await through(self.run.http, self.frontends, method, path, body, headers, timeout)

    async def fetch(self, url: str | None, what: str, path: str = "", **kwargs) -> dict:
        """
        C{GET url + path} (C{url} C{None}: any front end that answers); its
        JSON body, or L{Abort} naming C{what} if it is not a 200.
        """
        if url is None:
            status, body = await self.ask("GET", path, **kwargs)
        else:
            status, body = await call(self.run.http, "GET", url + path, **kwargs)
        if status != 200:
            raise Abort(f"{what}: {describe_answer(status, body)}")
        return body

    async def listing(self) -> dict[int, dict]:
        """Every book through the front end (C{GET /list}, page after page), by item id."""
        books: dict[int, dict] = {}
        after = 0
        while True:
            body = await self.fetch(None, "GET /list", f"/list?after={after}")
            books.update((item["id"], item) for item in body["items"])
            following = body.get("next")
            if following is None:
                return books
            if not isinstance(following, int) or following <= after:
                raise Abort(f"GET /list: next {following!r} after {after}")
            after = following

    async def view(self, service: str, url: str | None = None) -> dict:
        """The view of C{service} (C{GET /status}) of the front end at C{url}, or of any that answers."""
        body = await self.fetch(url, "GET /status of the front end", "/status", timeout=5)
        return body["services"][service]

    async def poll(self, timeout: float, failure: str, probe, *args):
        """Await C{probe(*args)} every 0.1 s until it returns something true; bounded."""
        result = await lifecycle.poll(self.run.reactor, lambda: probe(*args), timeout, every=0.1)
        if not result:
            raise Abort(f"{failure} within {timeout:.0f}s")
        return result

    async def settled(self, service: str) -> dict:
        """Wait until C{service} has a primary and every replica in its view; return the view."""
        failure = f"{service} did not settle (all replicas in the view)"
        return await self.poll(SETTLE_TIMEOUT, failure, self.full_view, service)

    async def full_view(self, service: str, url: str | None = None) -> dict | None:
        """A probe: the view of C{service} if it has a primary and every replica."""
        view = await self.view(service, url)
        names = {r.name for r in self.run.config.replicas[service]}
        return view if view["primary"] and {view["primary"], *view["backups"]} == names else None

    async def serving(self, service: str, url: str | None = None) -> dict | None:
        """A probe: the view of C{service} if it is full and the front end (at C{url}) hears every replica."""
        try:
            view = await self.full_view(service, url)
        except Abort:  # not answering yet
            return None
        return view if view and all(r["alive"] for r in view["replicas"].values()) else None

    async def new_primary(self, service: str, old: str) -> bool:
        """A probe: has the front end chosen a primary other than C{old}?"""
        primary = (await self.view(service))["primary"]
        return primary is not None and primary != old

    async def update_stock(self, item: int, delta: int) -> bool:
        """C{POST /update/<item>} C{{"stock_delta": delta}}: see L{update}."""
        key = uuid4().hex
        if await self.update(item, {"stock_delta": delta}, key):
            return True
        if key in self.unknown:
            self.run.obs.unresolved_restocks.append(f"{delta:+d} to item {item} (Idempotency-Key {key})")
        return False

    async def update(self, item: int, change: dict, key: str) -> bool:
        """
        C{POST /update/<item>} with C{change} and one C{Idempotency-Key},
        through any front end that answers, tried again after a 503 or no
        answer until it is known to have been applied (True) or refused
        (False); bounded in tries and time (then C{key} goes to
        L{unknown}).
        """
        run = self.run
        headers = {**self.auth, "Idempotency-Key": key}
        path = f"/update/{item}"
        deadline = run.reactor.seconds() + SETTLE_TIMEOUT
        for _ in range(RESTOCK_TRIES):
            status, body = await self.ask("POST", path, change, headers)
            if status == 200:
                if run.obs.frontends is not None:
                    run.obs.frontends.writes.append(run.now())
                return True
            if status not in (None, 503):
                run.obs.fail(f"POST {path} at {run.now():.2f}s: {describe_answer(status, body)}")
                if status < 500:
                    return False
            if run.reactor.seconds() >= deadline:
                break
            await lifecycle.sleep(run.reactor, 0.2)
        self.unknown.add(key)
        return False

    async def dump(self, replica) -> list[dict]:
        """A replica's C{GET /admin/dump} rows."""
        url = replica.url + "/admin/dump"
        return (await self.fetch(url, f"GET {url} ({replica.label})", headers=self.auth))["rows"]

    async def order_table(self) -> dict[int, int]:
        """Every order (id -> item id), from the order primary's dump."""
        config = self.run.config
        primary = (await self.view("order"))["primary"] or config.replicas["order"][0].name
        return order_items(await self.dump(config.replica("order", primary)))
