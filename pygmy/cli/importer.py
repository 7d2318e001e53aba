"""
C{pygmy import FILE}: add the books of a CSV or JSON lines file through the
front end's C{POST /books} (DESIGN.md section 3), many requests at a time.

The file is read a line at a time (L{pygmy.cli.import_file}): each row is
checked first by the rules the route applies, so a bad row costs no
request and is reported with its line number, and the lines after it go
on.  C{--concurrency} workers (coroutines on one reactor) take the next
row each and send it, so at most that many rows are in memory or in
flight whatever the size of the file.

Every row carries an C{Idempotency-Key} made from its line number and its
book (L{pygmy.cli.import_file.row_key}): a rerun of the same file -- after
a crash of the command, a C{503} or a C{Ctrl-C} -- sends the same keys, and
the front end answers the rows it has seen with their first answer instead
of adding them again.  A 503 (the store is failing over) or a request with
no answer is retried with back-off, and the same key, up to C{--retries}
times; C{Retry-After} is honoured.  Any other refusal (4xx) is final for
its row and not retried (L{pygmy.cli.import_sender}).  A row given up
after its retries stops the import (the store is down: the rows after it
would fare no better), and so do 401 (the secret is wrong) and 404 (the
front end has no C{POST /books}): the summary says which rows are not
confirmed and the line it stopped after; the same command again finishes
the file.  Ctrl-C or SIGTERM ends it the same way, with the summary so
far.

Exit status: 0 every row added; 1 a row refused or not confirmed, or the
import stopped; 2 bad usage, a file that cannot be read or a bad CSV
header; 3 the front end could not be reached.
"""

from __future__ import annotations

import os
import sys
from argparse import ArgumentTypeError
from collections import deque
from dataclasses import dataclass
from itertools import islice

from twisted.internet.defer import Deferred, DeferredList, DeferredLock
from twisted.internet.task import LoopingCall, deferLater
from twisted.internet.threads import deferToThreadPool

from pygmy.cli.client import FAILED, OK, UNREACHABLE, USAGE, ClientError, UsageError
from pygmy.cli.import_file import FileError, Row, Rows, choose_format
from pygmy.cli.import_report import Refusal, Summary, progress_for
from pygmy.cli.import_sender import Outcome, Sender

DEFAULT_CONCURRENCY = 8
DEFAULT_RETRIES = 8
DEFAULT_TIMEOUT = 10.0
#: Rows refused before sending in a row, after which the reactor gets a turn.
YIELD_EVERY = 256
#: Rows read from the file in one trip to a thread.
READ_AHEAD = 64


@dataclass(frozen=True)
class Settings:
    """
    One run of C{pygmy import}, checked.

    @ivar url: the first front end; @ivar urls: every front end, tried in
        turn when one does not answer (empty: C{url} alone).
    """

    path: str
    form: str
    url: str
    secret: str
    concurrency: int = DEFAULT_CONCURRENCY
    retries: int = DEFAULT_RETRIES
    timeout: float = DEFAULT_TIMEOUT
    json: bool = False
    urls: tuple[str, ...] = ()

    @property
    def frontends(self) -> tuple[str, ...]:
        """Every front end a row may go to."""
        return self.urls or (self.url,)


class Import:
    """
    One import on C{reactor}: C{--concurrency} workers share the file's
    rows; the tally is L{Summary}.

    The file is read off the reactor thread (a slow disk or a network file
    system must not stall the requests in flight), L{READ_AHEAD} rows at a
    time, one read at a time.

    @param read: runs C{f(*args)} off the reactor thread and returns a
        Deferred of its result; by default in C{reactor}'s thread pool.
    """

    def __init__(self, reactor, http, settings: Settings, rows: Rows, rng=None, read=None):
        self.reactor, self.settings, self.rows = reactor, settings, rows
        self.summary = Summary(settings.path, settings.form)
        self.sender = Sender(reactor, http, settings, self.summary, lambda: self.summary.stop is not None, rng)
        self._rows = iter(rows)
        self._read = read or (lambda f, *args: deferToThreadPool(reactor, reactor.getThreadPool(), f, *args))
        self._ahead: deque[Row] = deque()
        self._ended = False
        self._unreadable: str | None = None
        self._reading = DeferredLock()
        #: The lines of the rows sent and not yet answered.
        self.in_flight: set[int] = set()

    async def run(self, progress=None) -> Summary:
        """
        Send every row (until the import stops) and return the tally.

        @param progress: a L{pygmy.cli.import_report.PlainProgress} or
            C{BarProgress}, ticked while it runs.
        """
        started = self.reactor.seconds()
        ticker = None
        if progress is not None:
            progress.start()
            ticker = LoopingCall(progress.tick)
            ticker.clock = self.reactor
            ticker.start(progress.every, now=False)
        try:
            workers = [Deferred.fromCoroutine(self._worker()) for _ in range(self.settings.concurrency)]
            results = await DeferredList(workers, consumeErrors=True)
        finally:
            if ticker is not None:
                ticker.stop()
            if progress is not None:
                progress.stop()
        self.summary.seconds = self.reactor.seconds() - started
        for ok, result in results:
            if not ok:
                result.raiseException()
        return self.summary

    async def _worker(self) -> None:
        """Take the next row and deal with it, until the rows end or the import stops."""
        local = 0
        while self.summary.stop is None:
            row = await self._next()
            if row is None:
                return
            if row.error is not None:
                self.summary.refused.append(Refusal(row.line, row.error))
                local += 1
                if local % YIELD_EVERY == 0:
                    await deferLater(self.reactor, 0)
                continue
            local = 0
            self.in_flight.add(row.line)
            try:
                outcome = await self.sender.send(row)
            finally:
                self.in_flight.discard(row.line)
            self.record(outcome)

    async def _next(self) -> Row | None:
        """The next row of the file, or C{None} at its end (or if it cannot be read on)."""
        if not self._ahead and not self._ended:
            await self._reading.run(self._read_ahead)
        if not self._ahead:
            if self._unreadable is not None and self.summary.stop is None:
                self.summary.stop = Refusal(self.summary.last_line, self._unreadable)
            return None
        row = self._ahead.popleft()
        self.summary.rows += 1
        self.summary.last_line = max(self.summary.last_line, row.line)
        return row

    async def _read_ahead(self) -> None:
        """Read the next rows in a thread, unless another worker just did."""
        if self._ahead or self._ended:
            return
        rows, error = await self._read(self._take)
        self._ahead.extend(rows)
        self._ended = error is not None or len(rows) < READ_AHEAD
        if error is not None:
            # The rows before it are sent; then the import stops.
            self._unreadable = f"cannot read {self.settings.path}: {error.strerror}"

    def _take(self) -> tuple[list[Row], OSError | None]:
        """Up to L{READ_AHEAD} rows, and the error that ended them if one did (in a thread)."""
        rows: list[Row] = []
        try:
            rows.extend(islice(self._rows, READ_AHEAD))
        except OSError as e:
            return rows, e
        return rows, None

    def interrupt(self) -> None:
        """
        The reactor is stopping (Ctrl-C, SIGTERM) with rows in flight:
        they are not confirmed, and the import stopped.
        """
        if self.summary.stop is None:
            self.summary.stop = Refusal(self.summary.last_line, "interrupted", None, "interrupted")
        for line in sorted(self.in_flight):
            self.summary.unconfirmed.append(Refusal(line, "in flight when interrupted", None, "interrupted"))
        self.in_flight.clear()

    def record(self, outcome: Outcome) -> None:
        """Count C{outcome}; the first that stops the import says why."""
        if outcome.added:
            self.summary.added += 1
            return
        (self.summary.refused if outcome.final else self.summary.unconfirmed).append(outcome.refusal)
        if outcome.stops and self.summary.stop is None:
            self.summary.stop = outcome.refusal


def exit_status(summary: Summary) -> int:
    """0 if every row was added; 3 if it stopped for want of an answer; 1 otherwise."""
    if summary.clean:
        return OK
    if summary.stop is not None and summary.stop.code == "unreachable":
        return UNREACHABLE
    return FAILED


# The command


def resolve_secret(given: str | None, config_path: str | None, environ=None) -> str:
    """
    The shared secret: C{--secret}, else C{$PYGMY_SECRET}, else C{[cluster]
    secret} of C{config_path} (default C{./config.ini} if it exists), else
    the default secret of a config file without one.

    @raise UsageError: if a config file is missing (when named) or invalid.
    """
    from pygmy import config as configuration
    from pygmy.cli.client import DEFAULT_CONFIG

    environ = os.environ if environ is None else environ
    if given:
        return given
    if environ.get("PYGMY_SECRET"):
        return environ["PYGMY_SECRET"]
    if config_path is None:
        if not os.path.isfile(DEFAULT_CONFIG):
            return configuration.DEFAULT_SECRET
        config_path = DEFAULT_CONFIG
    try:
        return configuration.load(config_path, environ).cluster.secret
    except configuration.ConfigError as e:
        raise UsageError(str(e)) from None


def open_rows(path: str, form: str) -> Rows:
    """
    The file at C{path} opened for reading, its CSV header read.

    @raise UsageError: if it cannot be opened or its header is bad.
    """
    try:
        stream = open(path, "rb")  # closed by main, after the run
    except OSError as e:
        raise UsageError(f"{path}: cannot read: {e.strerror}") from None
    try:
        rows = Rows(stream, form, os.fstat(stream.fileno()).st_size, path)
        rows.read_header()
    except FileError as e:
        stream.close()
        raise UsageError(str(e)) from None
    except OSError as e:
        stream.close()
        raise UsageError(f"{path}: cannot read: {e.strerror}") from None
    return rows


def write_summary(summary: Summary, as_json: bool, out) -> None:
    """Write C{summary} on C{out}, as text or JSON, a piece at a time; delete its files."""
    try:
        if as_json:
            out.writelines(summary.json_pieces())
            out.write("\n")
        else:
            out.writelines(line + "\n" for line in summary.lines())
        out.flush()
    finally:
        summary.close()


def _count(low: int):
    """An argparse type: a whole number of C{low} or more."""

    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise ArgumentTypeError(f"{text} is not a whole number of {low} or more")
        return value

    parse.__name__ = "whole number"
    return parse


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 < value < float("inf"):
        raise ArgumentTypeError(f"{text} is not a number of seconds above 0")
    return value


def add_arguments(parser) -> None:
    """The arguments of C{pygmy import} but C{--url} and C{--config} (L{pygmy.cli.command} adds those)."""
    parser.add_argument("file", metavar="FILE", help="the books: a CSV file with a header row, or JSON lines")
    parser.add_argument(
        "--format", choices=("csv", "jsonl"), default=None, help="the file's format (default: by its ending)"
    )
    parser.add_argument(
        "--secret",
        default=None,
        help="the cluster's secret (default: $PYGMY_SECRET, else [cluster] secret of the config file)",
    )
    parser.add_argument(
        "--concurrency",
        "-n",
        type=_count(1),
        default=DEFAULT_CONCURRENCY,
        metavar="N",
        help="requests in flight at once (default: %(default)s)",
    )
    parser.add_argument(
        "--retries",
        type=_count(0),
        default=DEFAULT_RETRIES,
        metavar="N",
        help="tries after the first for a 5xx or no answer, same key (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help="seconds a request may take before it counts as no answer (default: %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def main(args, out=None, err=None) -> int:
    """C{pygmy import} (C{args} from L{pygmy.cli}) under C{react}; return the exit status."""
    from pygmy.cli.client import react_for_status, resolve_urls

    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    try:
        form = choose_format(args.file, args.format)
        urls = resolve_urls(args.url, args.config)
        settings = Settings(
            path=args.file,
            form=form,
            url=urls[0],
            urls=urls,
            secret=resolve_secret(args.secret, args.config),
            concurrency=args.concurrency,
            retries=args.retries,
            timeout=args.timeout,
            json=args.json,
        )
        rows = open_rows(args.file, form)
    except FileError as e:
        print(f"pygmy import: {e}", file=err)
        return USAGE
    except ClientError as e:
        print(f"pygmy import: {e}", file=err)
        return e.status

    async def command(reactor) -> int:
        from treq.client import HTTPClient
        from twisted.web.client import Agent, HTTPConnectionPool

        pool = HTTPConnectionPool(reactor)
        pool.maxPersistentPerHost = settings.concurrency
        http = HTTPClient(Agent(reactor, pool=pool, connectTimeout=settings.timeout))
        job = Import(reactor, http, settings, rows)
        progress = progress_for(err, job.summary, rows, reactor)

        def interrupted():
            # Ctrl-C or SIGTERM stops the reactor: the cursor back, then what was done so far.
            progress.stop()
            job.interrupt()
            write_summary(job.summary, settings.json, out)

        trigger = reactor.addSystemEventTrigger("before", "shutdown", interrupted)
        try:
            summary = await job.run(progress)
        finally:
            reactor.removeSystemEventTrigger(trigger)
            await pool.closeCachedConnections()
        write_summary(summary, settings.json, out)
        return exit_status(summary)

    try:
        return react_for_status(command)
    finally:
        rows.stream.close()
