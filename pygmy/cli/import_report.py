"""
What C{pygmy import} tells: its tally while it runs (a rich progress bar on
a terminal, a plain line every few seconds otherwise) and the summary at
the end (rows added, every row refused with its line and reason, why the
import stopped if it did), as text or as JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

#: Seconds between two progress lines when stderr is not a terminal.
PLAIN_EVERY = 5.0
#: Seconds between two redraws of the bar on a terminal.
BAR_EVERY = 0.1


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


@dataclass
class Summary:
    """
    The tally of one import.

    @ivar rows: rows taken from the file (blank lines and the header do not count).
    @ivar added: rows the front end answered 2xx (on a rerun, with its first answer).
    @ivar refused: rows the front end or the local checks refused: not added.
    @ivar unconfirmed: rows given up after their retries, or left when the
        import stopped: perhaps added, perhaps not (a rerun settles them).
    @ivar stop: why the import stopped before the end of the file, or C{None}.
    @ivar last_line: the line of the last row taken from the file.
    """

    path: str
    form: str
    rows: int = 0
    added: int = 0
    retries: int = 0
    refused: list = field(default_factory=list)
    unconfirmed: list = field(default_factory=list)
    stop: Refusal | None = None
    last_line: int = 0
    seconds: float = 0.0

    @property
    def clean(self) -> bool:
        """Whether every row of the file was added."""
        return not self.refused and not self.unconfirmed and self.stop is None

    def as_json(self) -> dict:
        """The C{--json} document."""
        stop = None
        if self.stop is not None:
            stop = {**self.stop.as_json(), "after_line": self.last_line}
            del stop["line"]
        return {
            "file": self.path,
            "format": self.form,
            "rows": self.rows,
            "added": self.added,
            "refused": [r.as_json() for r in sorted(self.refused, key=_line)],
            "unconfirmed": [r.as_json() for r in sorted(self.unconfirmed, key=_line)],
            "stopped": stop,
            "retries": self.retries,
            "seconds": round(self.seconds, 3),
        }

    def text(self) -> str:
        """The summary for people: the counts, then one line per row not added."""
        counts = f"{self.rows} {_rows(self.rows)}: {self.added} added, {len(self.refused)} refused"
        if self.unconfirmed:
            counts += f", {len(self.unconfirmed)} not confirmed"
        lines = [f"{self.path}: {counts}"]
        lines += [f"  line {r.line}: {r.reason()}" for r in sorted(self.refused, key=_line)]
        if self.unconfirmed:
            lines.append("not confirmed (perhaps added; run the same file again to settle them):")
            lines += [f"  line {r.line}: {r.reason()}" for r in sorted(self.unconfirmed, key=_line)]
        if self.stop is not None:
            lines.append(f"stopped after line {self.last_line}: {self.stop.reason()}")
            lines.append("the rest of the file was not sent; run the same file again: no row is added twice")
        return "\n".join(lines)

    def dumps(self) -> str:
        """L{as_json} as indented JSON text."""
        return json.dumps(self.as_json(), indent=2, ensure_ascii=False)


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
