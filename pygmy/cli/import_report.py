"""
What C{pygmy import} tells: its tally while it runs (a rich progress bar on
a terminal, a plain line every few seconds otherwise) and the summary at
the end (rows added, every row refused with its line and reason, why the
import stopped if it did), as text or as JSON.
"""

from __future__ import annotations

import heapq
import json
import tempfile
from dataclasses import dataclass, field
from typing import Iterator

#: Seconds between two progress lines when stderr is not a terminal.
PLAIN_EVERY = 5.0
#: Seconds between two redraws of the bar on a terminal.
BAR_EVERY = 0.1
#: Refused rows kept in memory; more go to sorted runs in temporary files.
KEEP = 10_000


@dataclass(frozen=True)
class Refusal:
    """
    A row that was not added, and why.

    @ivar status: the front end's HTTP status, or C{None} when no request
        answered (the row was refused before sending, or got no answer).
    @ivar code: the front end's error code; C{invalid} for a row refused
        before sending; C{unreachable} for no answer.
    """

    line: int
    message: str
    status: int | None = None
    code: str = "invalid"

    def reason(self) -> str:
        """The reason as one line: the front end's status, code and message, or the local message."""
        if self.status is None:
            return self.message
        return f"{self.status} {self.code}: {self.message}"

    def as_json(self) -> dict:
        """This refusal in the C{--json} summary."""
        return {"line": self.line, "status": self.status, "code": self.code, "message": self.message}


class Refusals:
    """
    The refused rows, given back in line order: up to C{keep} in memory,
    and beyond that in sorted runs on disk, merged when read (a merge
    sort), so that a file whose every row is refused needs no more memory
    than one whose every row is added.
    """

    def __init__(self, keep: int = KEEP):
        self.keep = keep
        self.count = 0
        self._buffer: list[Refusal] = []
        self._runs: list = []

    def append(self, refusal: Refusal) -> None:
        """Keep C{refusal}."""
        self._buffer.append(refusal)
        self.count += 1
        if len(self._buffer) >= self.keep:
            self._spill()

    def _spill(self) -> None:
        run = tempfile.TemporaryFile("w+", encoding="utf-8")
        for r in sorted(self._buffer, key=_line):
            run.write(json.dumps([r.line, r.message, r.status, r.code], ensure_ascii=False) + "\n")
        self._runs.append(run)
        self._buffer = []

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[Refusal]:
        return heapq.merge(sorted(self._buffer, key=_line), *map(_read_run, self._runs), key=_line)

    def close(self) -> None:
        """Delete the runs on disk."""
        for run in self._runs:
            run.close()
        self._runs = []


def _read_run(run) -> Iterator[Refusal]:
    run.seek(0)
    for text in run:
        line, message, status, code = json.loads(text)
        yield Refusal(line, message, status, code)


@dataclass
class Summary:
    """
    The tally of one import.

    @ivar rows: rows taken from the file (blank lines and the header do not count).
    @ivar added: rows the front end answered 2xx (on a rerun, with its first answer).
    @ivar refused: rows the front end or the local checks refused: not added.
    @ivar unconfirmed: rows given up after their retries, or left when the
        import stopped: perhaps added, perhaps not (a rerun settles them);
        at most one per worker.
    @ivar stop: why the import stopped before the end of the file, or C{None}.
    @ivar last_line: the line of the last row taken from the file.
    """

    path: str
    form: str
    rows: int = 0
    added: int = 0
    retries: int = 0
    refused: Refusals = field(default_factory=Refusals)
    unconfirmed: list = field(default_factory=list)
    stop: Refusal | None = None
    last_line: int = 0
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        """Whether every row of the file was added."""
        return not self.refused and not self.unconfirmed and self.stop is None

    def json_pieces(self) -> Iterator[str]:
        """The C{--json} document, piece by piece (the refusals one by one, never all in memory)."""
        stop = None
        if self.stop is not None:
            stop = {k: v for k, v in self.stop.as_json().items() if k != "line"} | {"after_line": self.last_line}
        yield "{\n"
        for key, value in (("file", self.path), ("format", self.form), ("rows", self.rows), ("added", self.added)):
            yield f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)},\n"
        yield '  "refused": '
        yield from _array(iter(self.refused))
        yield ',\n  "unconfirmed": '
        yield from _array(iter(sorted(self.unconfirmed, key=_line)))
        for key, value in (("stopped", stop), ("retries", self.retries), ("seconds", round(self.seconds, 3))):
            yield f",\n  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}"
        yield "\n}"

    def dumps(self) -> str:
        """The C{--json} document as one string (L{json_pieces} joined)."""
        return "".join(self.json_pieces())

    def lines(self) -> Iterator[str]:
        """The summary for people: the counts, then one line per row not added, in line order."""
        counts = f"{self.rows} {_rows(self.rows)}: {self.added} added, {len(self.refused)} refused"
        if self.unconfirmed:
            counts += f", {len(self.unconfirmed)} not confirmed"
        yield f"{self.path}: {counts}"
        for r in self.refused:
            yield f"  line {r.line}: {r.reason()}"
        if self.unconfirmed:
            yield "not confirmed (perhaps added; run the same file again to settle them):"
            for r in sorted(self.unconfirmed, key=_line):
                yield f"  line {r.line}: {r.reason()}"
        if self.stop is not None:
            yield f"stopped after line {self.last_line}: {self.stop.reason()}"
            yield "the rest of the file was not sent; run the same file again: no row is added twice"

    def text(self) -> str:
        """L{lines} as one string."""
        return "\n".join(self.lines())

    def close(self) -> None:
        """Delete what the refusals keep on disk."""
        self.refused.close()


def _array(refusals: Iterator[Refusal]) -> Iterator[str]:
    """A JSON array of C{refusals}, one per line."""
    first = next(refusals, None)
    if first is None:
        yield "[]"
        return
    yield "[\n    " + json.dumps(first.as_json(), ensure_ascii=False)
    for r in refusals:
        yield ",\n    " + json.dumps(r.as_json(), ensure_ascii=False)
    yield "\n  ]"


def _line(refusal: Refusal) -> int:
    return refusal.line


def _rows(n: int) -> str:
    return "row" if n == 1 else "rows"


class PlainProgress:
    """
    The progress of an import as a line every L{PLAIN_EVERY} seconds on
    C{stream}, for a log or a pipe: rows, percent of the file, added,
    refused, rate.
    """

    every = PLAIN_EVERY

    def __init__(self, stream, summary: Summary, rows, clock):
        self.stream, self.summary, self.rows, self.clock = stream, summary, rows, clock
        self.started = clock.seconds()

    def start(self) -> None:
        """Nothing to draw before the first line."""

    def tick(self) -> None:
        """Print one line of the figures so far."""
        print(
            f"pygmy import: {line_of_figures(self.summary, self.rows, self.clock.seconds() - self.started)}",
            file=self.stream,
            flush=True,
        )

    def stop(self) -> None:
        """No last line: the summary follows."""


class BarProgress:
    """
    The progress of an import as a rich bar on a terminal C{console}: the
    bytes of the file read, the rows added and refused, the rate; redrawn by
    the caller's timer (rich's own refresh thread is off).
    """

    every = BAR_EVERY

    def __init__(self, console, summary: Summary, rows, clock):
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

        self.summary, self.rows, self.clock = summary, rows, clock
        self.started = clock.seconds()
        self.progress = Progress(
            TextColumn("[bold]import"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[figures]}"),
            TimeElapsedColumn(),
            console=console,
            auto_refresh=False,
        )
        self.task = self.progress.add_task("import", total=max(rows.size, 1), figures="")

    def start(self) -> None:
        """Show the bar."""
        self.progress.start()

    def tick(self) -> None:
        """Redraw with the figures so far."""
        figures = line_of_figures(self.summary, None, self.clock.seconds() - self.started)
        self.progress.update(self.task, completed=self.rows.position, figures=figures)
        self.progress.refresh()

    def stop(self) -> None:
        """Draw the final state and stop (again: nothing)."""
        if self.progress.live.is_started:
            self.tick()
            self.progress.stop()


def line_of_figures(summary: Summary, rows, elapsed: float) -> str:
    """C{1200 rows (35% of the file read), 1195 added, 5 refused, 240 rows/s}; the percent only with C{rows}."""
    done = summary.added + len(summary.refused) + len(summary.unconfirmed)
    share = ""
    if rows is not None and rows.size:
        share = f" ({min(100, 100 * rows.position // rows.size)}% of the file read)"
    rate = done / elapsed if elapsed > 0 else 0.0
    text = f"{done} {_rows(done)}{share}, {summary.added} added, {len(summary.refused)} refused"
    if summary.retries:
        text += f", {summary.retries} retries"
    return f"{text}, {rate:.0f} rows/s"


def progress_for(stream, summary: Summary, rows, clock):
    """
    A L{BarProgress} if C{stream} is a terminal and rich is installed,
    else a L{PlainProgress}.
    """
    if getattr(stream, "isatty", lambda: False)():
        try:
            from rich.console import Console
        except ImportError:
            pass
        else:
            return BarProgress(Console(file=stream, highlight=False), summary, rows, clock)
    return PlainProgress(stream, summary, rows, clock)
