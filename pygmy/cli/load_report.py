"""
The report of a C{pygmy load} run: the headline, the latency table per
operation, the failover timeline of a C{--crash} run, the C{--json}
document and the C{--plot} (rich and matplotlib, from the optional C{load}
extra, are imported only when the report is made).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from pygmy.cli.crash import Event
from pygmy.cli.loadgen import Sample, overall, summarise, timeline

if TYPE_CHECKING:
    from pygmy.cli.load import Settings

#: The width of a timeline slice, in seconds.
SLICE = 0.25
#: The line under the table.
NOTE = "latency in ms; errors by status (no answer: refused, reset or timed out)"


def describe_mix(mix: dict[str, float]) -> str:
    """C{lookup=6 search=3 buy=1}."""
    return " ".join(f"{name}={weight:g}" for name, weight in mix.items())


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
