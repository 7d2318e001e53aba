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
runs; the daemons never import them.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
from dataclasses import dataclass, field
from urllib.parse import quote

from pygmy.cli.client import ClientError, Frontend, UsageError, react_for_status, resolve_url
from pygmy.cli.crash import Crash, Event, LoadError
from pygmy.cli.loadgen import Request, Sample, drive, overall, summarise, timeline

#: What a client can do, and the default weights of --mix.
OPERATIONS = ("search", "lookup", "buy", "list")
DEFAULT_MIX = "lookup=6,search=3,buy=1"
#: How often the progress bar is redrawn, and the width of a timeline slice.
REFRESH = 0.1
SLICE = 0.25
EXTRA = "pip install 'pygmy[load]'"
#: The line under the table.
NOTE = "latency in ms; errors by status (no answer: refused, reset or timed out)"


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


def describe_mix(mix: dict[str, float]) -> str:
    """C{lookup=6 search=3 buy=1}."""
    return " ".join(f"{name}={weight:g}" for name, weight in mix.items())


@dataclass(frozen=True)
class Settings:
    """One run of C{pygmy load}, checked (see L{settings})."""

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


def settings(args, url: str) -> Settings:
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
    return Settings(
        url=url,
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


# The live progress bar


class Tally:
    """Requests and failures so far (an C{on_sample} hook of L{drive})."""

    def __init__(self):
        self.requests = 0
        self.errors = 0

    def __call__(self, sample: Sample) -> None:
        self.requests += 1
        self.errors += 0 if sample.ok else 1


class ProgressBar:
    """
    A rich progress bar on C{console}, redrawn by the caller's timer (rich's
    own refresh thread is off): elapsed time of a C{--duration} run, or
    requests of a C{--count} run, with the rate and the failures.
    """

    def __init__(self, console, settings: Settings, tally: Tally, clock):
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

        self.settings, self.tally, self.clock = settings, tally, clock
        self.started = clock.seconds()
        self.progress = Progress(
            TextColumn("[bold]load"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn(
                "{task.fields[requests]:>7} requests {task.fields[rate]:>7.0f} req/s {task.fields[errors]:>5} errors"
            ),
            TimeElapsedColumn(),
            console=console,
            auto_refresh=False,
            disable=not console.is_terminal,
        )
        total = settings.count if settings.duration is None else settings.duration
        self.task = self.progress.add_task("load", total=total, requests=0, rate=0.0, errors=0)

    def start(self) -> None:
        """Show the bar."""
        self.progress.start()

    def tick(self) -> None:
        """Redraw with the figures so far."""
        elapsed = max(self.clock.seconds() - self.started, 1e-9)
        done = self.tally.requests if self.settings.duration is None else min(elapsed, self.settings.duration)
        rate = self.tally.requests / elapsed
        self.progress.update(
            self.task, completed=done, requests=self.tally.requests, rate=rate, errors=self.tally.errors
        )
        self.progress.refresh()

    def note(self, line: str) -> None:
        """Print a line above the bar."""
        self.progress.console.print(line, highlight=False, markup=False)

    def stop(self) -> None:
        """Draw the final state and stop (again: nothing)."""
        self.tick()
        self.progress.stop()


# The report


def error_columns(summary: dict) -> list[str]:
    """Every error key of a summary: statuses in order, then C{no answer}."""
    keys = {key for figures in summary.values() for key in figures["errors"]}
    return sorted(keys, key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k))


def summary_table(summary: dict, total: dict | None):
    """
    A rich C{Table}: per operation (and for all of them) the requests, the
    2xx answers, the errors by status, requests/s and latency in ms.
    """
    from rich import box
    from rich.table import Table

    errors = error_columns(summary)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    table.add_column("operation")
    for name in ["requests", "ok", *(errors or ["errors"]), "req/s", "mean", "p50", "p90", "p99", "max"]:
        table.add_column(name, justify="right")

    def add(name: str, figures: dict) -> None:
        failed = [str(figures["errors"].get(key, 0)) for key in errors] or ["0"]
        latency = [f"{figures[k] * 1000:.2f}" for k in ("mean", "p50", "p90", "p99", "max")]
        table.add_row(name, str(figures["count"]), str(figures["ok"]), *failed, f"{figures['rps']:.1f}", *latency)

    for name, figures in summary.items():
        add(name, figures)
    if total and len(summary) > 1:
        table.add_section()
        add("all", total)
    return table


def headline(settings: Settings, seconds: float) -> str:
    """The first line of the report: what ran, for how long."""
    cache = "cache bypassed (Cache-Control: no-cache)" if settings.no_cache else "cache used"
    limit = f"{seconds:.1f} s" + (f", at most {settings.count} requests" if settings.count else "")
    return (
        f"pygmy load: {settings.url}, {settings.clients} client{'s' if settings.clients > 1 else ''}, {limit}, "
        f"mix {describe_mix(settings.mix)}, {cache}, seed {settings.seed}"
    )


def document(settings: Settings, seconds: float, samples: list[Sample], events: list[Event], error) -> dict:
    """The raw summary C{--json} writes (latencies in seconds)."""
    found = {
        "url": settings.url,
        "clients": settings.clients,
        "seconds": round(seconds, 3),
        "count_limit": settings.count,
        "mix": settings.mix,
        "cache": not settings.no_cache,
        "seed": settings.seed,
        "operations": summarise(samples, seconds),
        "all": overall(samples, seconds),
    }
    if settings.crash:
        found["crash"] = {
            "service": settings.crash,
            "at": settings.crash_at,
            "down": settings.down,
            "events": [{"at": e.at, "what": e.what} for e in events],
            "error": error,
            "timeline": timeline(samples, SLICE, seconds),
        }
    return found


def report(console, settings: Settings, seconds: float, samples: list[Sample], events: list[Event]) -> None:
    """Print the headline, the table and the failover timeline on C{console}."""
    console.print(headline(settings, seconds), highlight=False, markup=False, soft_wrap=True)
    if not samples:
        console.print("no request was sent", highlight=False)
        return
    console.print(summary_table(summarise(samples, seconds), overall(samples, seconds)))
    console.print(NOTE, highlight=False, markup=False, soft_wrap=True)
    if events:
        console.print("failover timeline:", highlight=False)
        for event in events:
            console.print(f"  {event.at:7.2f}s  {event.what}", highlight=False, markup=False, soft_wrap=True)
        late = [e for e in events if e.at > seconds]
        if late:
            console.print(
                f"  (after the load ended at {seconds:.2f}s: use a longer --duration to see it under load)",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )


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
        api = Frontend(http, settings.url, min(settings.timeout, 5.0))
        items, topics = await catalog(api)
        crash = None
        if settings.crash:
            crash = Crash(reactor, api, config, settings.crash, lambda line: print(line, file=err))
            await crash.target()
        plan = Plan(settings.url, settings.mix, items, topics, random.Random(settings.seed), settings.no_cache)
        samples, seconds = await under_load(reactor, settings, http, plan, crash, Console(file=err, highlight=False))
    finally:
        await pool.closeCachedConnections()
    events, error = (crash.events, crash.error) if crash else ([], None)
    finish(settings, seconds, samples, events, error, out)
    if error:
        print(f"pygmy load: --crash {settings.crash}: {error}", file=err)
    return 1 if error else 0


async def under_load(reactor, settings: Settings, http, plan: Plan, crash: Crash | None, console):
    """
    Drive the clients (and the crash, if any) with the progress bar on
    C{console}; return the samples and the seconds the load took.
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
        )
        seconds = reactor.seconds() - started
        if crashing is not None:
            await crashing
    finally:
        ticker.stop()
        bar.stop()
        reactor.removeSystemEventTrigger(trigger)
    return samples, seconds


def finish(settings: Settings, seconds: float, samples, events, error, out) -> None:
    """Print the report (unless the JSON goes to stdout), write the JSON and the plot."""
    from rich.console import Console

    if settings.json != "-":
        console = Console(file=out, highlight=False, width=None if out.isatty() else 120)
        report(console, settings, seconds, samples, events)
    if settings.json is not None:
        text = json.dumps(document(settings, seconds, samples, events, error), indent=2)
        if settings.json == "-":
            print(text, file=out)
        else:
            with open(settings.json, "w") as f:
                f.write(text + "\n")
    if settings.plot:
        from pygmy.cli import plot

        plot.draw(settings.plot, samples, headline(settings, seconds), [(e.at, e.what) for e in events], seconds)
        if settings.json != "-":
            print(f"plot: {settings.plot}", file=out)


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
        url = resolve_url(args.url, args.config)
        chosen = settings(args, url)
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
