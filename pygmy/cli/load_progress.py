"""
The live progress bar of C{pygmy load} (rich, from the optional C{load}
extra, imported only when a bar is made) and the tally it shows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pygmy.cli.loadgen import Sample

if TYPE_CHECKING:
    from pygmy.cli.load import Settings


class Tally:
    """Requests and failures so far (an C{on_sample} hook of L{drive})."""

    def __init__(self):
        self.requests = 0
        self.errors = 0

    def __call__(self, sample: Sample) -> None:
        """Count C{sample}."""
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
