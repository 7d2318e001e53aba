"""
C{pygmy load}: concurrent clients against a front end, with a live
progress bar, a latency table per operation, an optional plot, and an
optional C{kill -9} of a service's primary in the middle of the run.

The clients are L{pygmy.cli.loadgen.drive} coroutines on one reactor
(Twisted + treq, no threads), sharing one treq C{HTTPClient} whose
C{HTTPConnectionPool} keeps a connection per client.  Each client picks
its next operation from the C{--mix} weights (search, lookup, buy, list)
and a book or topic from the catalog's C{/list}, read once before the
run.  C{--no-cache} sends C{Cache-Control: no-cache} with every read, so
the same run can be measured with and without the front end's cache.

C{--crash catalog} (or C{order}) kills that service's primary with
C{kill -9} at C{--crash-at} seconds (its pid from the pid file C{pygmy
up} keeps in C{data_dir}), restarts it C{--down} seconds later with the
command C{pygmy up} uses, and notes when the front end chose a new primary
and when the restarted replica was back in the view: the events of the
failover timeline in the report, the JSON and the plot.

rich (progress bar, tables) and matplotlib (L{pygmy.cli.plot}) come from
the optional C{load} extra and are imported only here, when the command
runs; the daemons never import them.  The bar is
L{pygmy.cli.load_progress}, the report (table, timeline, JSON, plot)
L{pygmy.cli.load_report}.
"""

from __future__ import annotations

import math
import os
import random
import sys
from dataclasses import dataclass, field
from urllib.parse import quote

from pygmy.cli.client import ClientError, Frontend, UsageError, react_for_status
from pygmy.cli.crash import Crash, LoadError
from pygmy.cli.frontends import Frontends, resolve_urls
from pygmy.cli.load_progress import ProgressBar, Tally
from pygmy.cli.load_report import finish
from pygmy.cli.loadgen import Request, drive

#: What a client can do, and the default weights of --mix.
OPERATIONS = ("search", "lookup", "buy", "list")
DEFAULT_MIX = "lookup=6,search=3,buy=1"
#: How often the progress bar is redrawn.
REFRESH = 0.1
EXTRA = "pip install 'pygmy[load]'"


def require(module: str, what: str):
    """
    Import C{module} of the optional C{load} extra.

    @raise UsageError: one line naming the missing package and the install command.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UsageError(f"{what} needs {module.split('.')[0]}, which is not installed: {EXTRA}") from None


# Settings


def parse_mix(text: str) -> dict[str, float]:
    """
    C{"lookup=6,search=3,buy=1"} -> C{{"lookup": 6.0, ...}}: weights of
    L{OPERATIONS}, each a number of 0 or more, at least one above 0.

    @raise ValueError: with a sentence saying what is wrong.
    """
    mix: dict[str, float] = {}
    for part in text.split(","):
        name, equals, weight = part.strip().partition("=")
        name = name.strip()
        if name not in OPERATIONS:
            raise ValueError(f"unknown operation {name!r} in {text!r} (one of {', '.join(OPERATIONS)})")
        if name in mix:
            raise ValueError(f"{name} appears twice in {text!r}")
        try:
            value = float(weight) if equals else 1.0
        except ValueError:
            raise ValueError(f"weight {weight.strip()!r} of {name} is not a number") from None
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"weight of {name} must be a number of 0 or more, not {weight.strip()}")
        mix[name] = value
    if not any(mix.values()):
        raise ValueError(f"no operation has a weight above 0 in {text!r}")
    return mix


@dataclass(frozen=True)
class Settings:
    """
    One run of C{pygmy load}, checked (see L{settings}).

    @ivar url: the first front end.
    @ivar urls: every front end the clients use (client C{i} starts at the
        C{i}-th and goes to the next on a connection error); empty: C{url}.
    """

    url: str
    clients: int = 10
    duration: float | None = 10.0
    count: int | None = None
    mix: dict = field(default_factory=lambda: parse_mix(DEFAULT_MIX))
    no_cache: bool = False
    seed: int = 1
    timeout: float = 10.0
    plot: str | None = None
    json: str | None = None  # a file name, or "-" for stdout
    crash: str | None = None
    crash_at: float = 0.0
    down: float = 2.0
    urls: tuple[str, ...] = ()

    @property
    def frontends(self) -> tuple[str, ...]:
        """Every front end the clients use."""
        return self.urls or (self.url,)


def settings(args, urls) -> Settings:
    """
    The L{Settings} of parsed C{args}: 10 s if neither C{--duration}
    nor C{--count} is given; the kill at a third of the run by default.

    @raise UsageError: for arguments that do not fit together.
    """
    duration, count = args.duration, args.count
    if duration is None and count is None:
        duration = 10.0
    crash_at = args.crash_at
    if args.crash:
        if duration is None:
            raise UsageError("--crash needs --duration (the kill and restart are timed within it)")
        crash_at = duration / 3 if crash_at is None else crash_at
        if crash_at >= duration:
            raise UsageError(f"--crash-at {crash_at:g} is not within the --duration of {duration:g} s")
    if args.plot and not args.plot.lower().endswith(".png"):
        raise UsageError(f"--plot {args.plot}: the file name must end in .png")
    for name in (args.plot, None if args.json in (None, "-") else args.json):
        if name and not os.path.isdir(os.path.dirname(os.path.abspath(name))):
            raise UsageError(f"{name}: no such directory")
    urls = (urls,) if isinstance(urls, str) else tuple(urls)
    return Settings(
        url=urls[0],
        urls=urls,
        clients=args.clients,
        duration=duration,
        count=count,
        mix=args.mix,
        no_cache=args.no_cache,
        seed=random.randrange(1, 2**31) if args.seed is None else args.seed,
        timeout=args.timeout,
        plot=args.plot,
        json=args.json,
        crash=args.crash,
        crash_at=crash_at or 0.0,
        down=args.down,
    )


# What the clients send


class Plan:
    """
    The requests of a run: C{plan(n)} picks an operation by the mix's
    weights, and a book or topic of the catalog, with a seeded generator.
    """

    def __init__(self, url: str, mix: dict[str, float], items: list[int], topics: list[str], rng, no_cache=False):
        self.url = url
        self.names = [name for name, weight in mix.items() if weight > 0]
        self.weights = [mix[name] for name in self.names]
        self.items = items
        self.topics = topics
        self.rng = rng
        self.read_headers = {"Cache-Control": "no-cache"} if no_cache else {}

    def __call__(self, n: int) -> Request:
        """The C{n}-th request."""
        name = self.rng.choices(self.names, self.weights)[0]
        if name == "search":
            topic = quote(self.rng.choice(self.topics), safe="")
            return Request(name, "GET", f"{self.url}/search?topic={topic}", self.read_headers)
        if name == "lookup":
            return Request(name, "GET", f"{self.url}/lookup/{self.rng.choice(self.items)}", self.read_headers)
        if name == "buy":
            return Request(name, "POST", f"{self.url}/buy/{self.rng.choice(self.items)}")
        return Request(name, "GET", f"{self.url}/list", self.read_headers)


# The run


async def catalog(api: Frontend) -> tuple[list[int], list[str]]:
    """The book ids and topics the clients choose from (C{GET /list})."""
    items = (await api.call("GET", "/list")).get("items") or []
    if not items:
        raise LoadError(f"the catalog at {api.url} has no books to ask for")
    return sorted(i["id"] for i in items), sorted({i["topic"] for i in items})


async def run(reactor, settings: Settings, config=None, out=None, err=None) -> int:
    """
    One run of C{pygmy load} on C{reactor}: read the catalog, load (and
    crash), report.  Return the exit status: 0, or 1 if the crash failed.

    @raise ClientError: if the front end cannot be reached or answers with
        an error before the load, or C{--crash} has no primary to kill.
    """
    from rich.console import Console
    from treq.client import HTTPClient
    from twisted.web.client import Agent, HTTPConnectionPool

    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    pool = HTTPConnectionPool(reactor)
    pool.maxPersistentPerHost = settings.clients + 2  # + the crash's status polls
    http = HTTPClient(Agent(reactor, pool=pool, connectTimeout=settings.timeout))
    try:
        api = Frontend(http, settings.frontends, min(settings.timeout, 5.0))
        items, topics = await catalog(api)
        crash = None
        if settings.crash:
            crash = Crash(reactor, api, config, settings.crash, lambda line: print(line, file=err))
            await crash.target()
        plan = Plan("", settings.mix, items, topics, random.Random(settings.seed), settings.no_cache)
        frontends = Frontends(settings.frontends)
        console = Console(file=err, highlight=False)
        samples, seconds = await under_load(reactor, settings, http, plan, crash, console, frontends)
    finally:
        await pool.closeCachedConnections()
    events, error = (crash.events, crash.error) if crash else ([], None)
    finish(settings, seconds, samples, events, error, out)
    if frontends.moves:
        print(f"pygmy load: {frontends.moves} requests went on to another front end", file=err)
    if error:
        print(f"pygmy load: --crash {settings.crash}: {error}", file=err)
    return 1 if error else 0


async def under_load(reactor, settings: Settings, http, plan: Plan, crash: Crash | None, console, frontends=None):
    """
    Drive the clients (and the crash, if any) with the progress bar on
    C{console}; return the samples and the seconds the load took.

    @param frontends: the L{Frontends} the plan's paths go to, or C{None}
        if the plan gives whole URLs.
    """
    from twisted.internet.defer import ensureDeferred
    from twisted.internet.task import LoopingCall

    tally = Tally()
    bar = ProgressBar(console, settings, tally, reactor)
    ticker = LoopingCall(bar.tick)
    ticker.clock = reactor
    # Ctrl-C stops the reactor: give the terminal its cursor back first.
    trigger = reactor.addSystemEventTrigger("before", "shutdown", bar.stop)
    bar.start()
    started = bar.started = reactor.seconds()
    ticker.start(REFRESH)
    crashing = None
    if crash is not None:
        crash.started, crash.note = started, bar.note
        crashing = ensureDeferred(crash.run(settings.crash_at, settings.down))
    try:
        samples = await drive(
            reactor,
            http,
            plan,
            settings.clients,
            settings.duration,
            settings.count,
            on_sample=tally,
            timeout=settings.timeout,
            frontends=frontends,
        )
        seconds = reactor.seconds() - started
        if crashing is not None:
            await crashing
    finally:
        ticker.stop()
        bar.stop()
        reactor.removeSystemEventTrigger(trigger)
    return samples, seconds


def main(args, out=None, err=None) -> int:
    """C{pygmy load} (C{args} from L{pygmy.cli}) under C{react}; return the exit status."""
    err = sys.stderr if err is None else err
    try:
        require("rich", "pygmy load")
        if args.plot:
            require("matplotlib", "pygmy load --plot")
        config = None
        if args.crash:
            config = load_config(args.config)
        chosen = settings(args, resolve_urls(args.url, args.config))
    except ClientError as e:
        print(f"pygmy load: {e}", file=err)
        return e.status

    async def command(reactor) -> int:
        try:
            return await run(reactor, chosen, config, out, err)
        except ClientError as e:
            print(f"pygmy load: {e}", file=err)
            return e.status

    return react_for_status(command)


def load_config(path: str | None):
    """The config file C{--crash} needs (pid files, restart command)."""
    from pygmy import config as configuration

    try:
        return configuration.load(path or "config.ini")
    except configuration.ConfigError as e:
        raise UsageError(f"--crash needs the cluster's config file: {e}") from None
