"""
The PNGs of C{pygmy evaluate}'s report: latency against clients with the
cache on and off (question 1), write latency and a miss against a hit
(question 2), and a timeline per kill (question 3, drawn by
L{pygmy.cli.plot.draw}, as C{pygmy load --crash --plot} draws one).

matplotlib (the optional C{load} extra) through its object API and the Agg
canvas, as in L{pygmy.cli.plot}: no C{pyplot}, no display.
"""

from __future__ import annotations

from pathlib import Path

from pygmy.cli.evaluate_report import OPERATIONS
from pygmy.cli.plot import DPI

#: A colour per mode of question 1.
MODE_COLOURS = {"on": "tab:green", "bypass": "tab:blue", "off": "tab:red"}
MODE_LABELS = {"on": "cache on", "bypass": "bypass (no-cache header)", "off": "cache_size = 0"}
#: The percentiles drawn as bars, and their shades.
BARS = (("p50", 1.0), ("p95", 0.65), ("p99", 0.35))


def latency(path: Path, doc: dict) -> None:
    """Question 1: p50 (solid) and p99 (dashed) latency against clients, a panel per operation."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4), dpi=DPI, layout="constrained")
    panels = figure.subplots(1, len(OPERATIONS), sharey=True)
    figure.suptitle("response time against concurrent clients (solid: p50, dashed: p99)", fontsize=10)
    for axes, operation in zip(panels, OPERATIONS, strict=True):
        for mode, colour in MODE_COLOURS.items():
            steps = [s for s in doc["response_time"] if s["cache"] == mode and operation in s["operations"]]
            if not steps:
                continue
            clients = [s["clients"] for s in steps]
            for key, style in (("p50", "-o"), ("p99", "--")):
                values = [s["operations"][operation][key] * 1000 for s in steps]
                axes.plot(clients, values, style, color=colour, label=MODE_LABELS[mode] if key == "p50" else None)
        axes.set_title(operation, fontsize=10)
        axes.set_xlabel("concurrent clients")
        axes.set_xticks(doc["settings"]["clients"])
        axes.set_yscale("log")
        axes.grid(alpha=0.3)
    panels[0].set_ylabel("latency (ms)")
    panels[0].legend(fontsize=8)
    figure.savefig(path, format="png")


def _bars(axes, groups: list[tuple[str, dict]], title: str) -> None:
    """Side by side per group, a bar for each of L{BARS} (ms)."""
    width = 0.8 / len(BARS)
    for number, (key, alpha) in enumerate(BARS):
        xs = [i + (number - 1) * width for i in range(len(groups))]
        axes.bar(xs, [figures[key] * 1000 for _, figures in groups], width, alpha=alpha, color="tab:blue", label=key)
    axes.set_xticks(range(len(groups)), [name for name, _ in groups], fontsize=8)
    axes.set_ylabel("latency (ms)")
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3, axis="y")
    axes.legend(fontsize=8)


def consistency(path: Path, doc: dict) -> None:
    """Question 2: buy and update with the cache on and off; update, miss and hit."""
    from matplotlib.figure import Figure

    seen = doc["consistency"]
    runs = {"on": "cache on", "off": "cache off", "on_again": "on, again"}
    writes = [
        (f"{operation}\n{title}", seen[mode]["operations"][operation])
        for operation in ("buy", "update")
        for mode, title in runs.items()
        if operation in seen.get(mode, {}).get("operations", {})
    ]
    names = {"update": "update", "miss": "lookup after\n(miss)", "hit": "lookup again\n(hit)"}
    lookups = [
        (names[key], seen["invalidation"]["operations"][key])
        for key in names
        if key in seen["invalidation"]["operations"]
    ]
    figure = Figure(figsize=(11, 4), dpi=DPI, layout="constrained")
    left, right = figure.subplots(1, 2)
    _bars(left, writes, "writes, one at a time: cache on and off")
    _bars(right, lookups, "an invalidation, then the same lookup twice")
    figure.savefig(path, format="png")


def draw_all(directory: Path, doc: dict, samples: dict) -> dict[str, str]:
    """
    Every plot into C{directory}; return the file names by what they show:
    C{latency}, C{consistency}, and C{service-role} per kill.
    """
    from pygmy.cli import plot

    names = {"latency": "latency.png", "consistency": "consistency.png"}
    latency(directory / names["latency"], doc)
    consistency(directory / names["consistency"], doc)
    for key, (found, seconds, events) in samples.items():
        names[key] = f"fault-{key}.png"
        title = f"kill -9 of the {key.replace('-', ' ')} under load, {len(found)} requests in {seconds:.1f} s"
        plot.draw(directory / names[key], found, title, events, seconds)
    return names
