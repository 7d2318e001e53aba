"""
The PNG of C{pygmy load --plot}: latency distributions per operation and,
for a C{--crash} run, a timeline of latency, throughput and errors around
the kill and the restart.

matplotlib (the optional C{load} extra) is imported inside L{draw}
and used through its object API with the Agg canvas: no C{pyplot}, no
global backend switch, no display needed.
"""

from __future__ import annotations

from pygmy.cli.loadgen import Sample, percentile, timeline

#: A colour per operation (matplotlib's default cycle, fixed so runs compare).
COLOURS = {"lookup": "tab:green", "search": "tab:blue", "buy": "tab:orange", "list": "tab:purple"}
#: Slice of the throughput timeline, in seconds; resolution of the PNG.
SLICE = 0.25
DPI = 80


def _colour(operation: str) -> str:
    return COLOURS.get(operation, "tab:gray")


def _by_operation(samples: list[Sample]) -> dict[str, list[Sample]]:
    found: dict[str, list[Sample]] = {}
    for sample in samples:
        found.setdefault(sample.operation, []).append(sample)
    return dict(sorted(found.items()))


def draw(path, samples: list[Sample], title: str, events=(), seconds: float | None = None) -> None:
    """
    Write the plot of C{samples} to C{path} (PNG).

    @param events: C{(seconds since the start, label)} pairs; if any, the
        timeline panels are drawn with a line at each.
    @param seconds: the length of the run (default: the last send time).
    """
    from matplotlib.figure import Figure

    events = list(events)
    figure = Figure(figsize=(11, 8.5 if events else 4.5), dpi=DPI, layout="constrained")
    if events:
        grid = figure.add_gridspec(3, 2, height_ratios=[1, 1, 0.8])
        histogram, curve = figure.add_subplot(grid[0, 0]), figure.add_subplot(grid[0, 1])
        latency = figure.add_subplot(grid[1, :])
        rate = figure.add_subplot(grid[2, :], sharex=latency)
    else:
        histogram, curve = figure.subplots(1, 2)
    figure.suptitle(_wrap(title), fontsize=9)
    groups = _by_operation(samples)
    _histograms(histogram, groups)
    _percentile_curves(curve, groups)
    if events:
        end = seconds if seconds is not None else max((s.at for s in samples), default=0.0)
        _latency_timeline(latency, groups, events, end)
        _rate_timeline(rate, samples, events, end)
    figure.savefig(path, format="png")


def _wrap(title: str, width: int = 120) -> str:
    """C{title} on lines of at most about C{width} characters, broken after commas."""
    lines, line = [], ""
    for part in title.split(", "):
        if line and len(line) + len(part) + 2 > width:
            lines.append(line + ",")
            line = part
        else:
            line = f"{line}, {part}" if line else part
    return "\n".join(lines + [line])


def _log_bins(samples: list[Sample], count: int = 40) -> list[float]:
    """Bin edges in ms, evenly spaced on a log scale over the latencies."""
    values = [max(s.seconds * 1000, 1e-3) for s in samples] or [1.0]
    low, high = min(values), max(values)
    if high <= low * 1.01:
        low, high = low / 1.5, high * 1.5
    ratio = (high / low) ** (1 / count)
    return [low * ratio**i for i in range(count + 1)]


def _histograms(axes, groups: dict[str, list[Sample]]) -> None:
    """How many requests took how long, per operation (log-spaced bins)."""
    bins = _log_bins([s for found in groups.values() for s in found])
    for operation, found in groups.items():
        axes.hist(
            [s.seconds * 1000 for s in found],
            bins=bins,
            histtype="step",
            linewidth=1.5,
            color=_colour(operation),
            label=f"{operation} ({len(found)})",
        )
    axes.set_xscale("log")
    axes.set_xlabel("latency (ms)")
    axes.set_ylabel("requests")
    axes.set_title("latency distribution", fontsize=10)
    if groups:
        axes.legend(fontsize=8)


def _percentile_curves(axes, groups: dict[str, list[Sample]]) -> None:
    """Latency at each percentile, per operation, with p50/p90/p99 marked."""
    points = [i / 2 for i in range(0, 201)]
    for operation, found in groups.items():
        ordered = sorted(s.seconds * 1000 for s in found)
        axes.plot(points, [percentile(ordered, p) for p in points], color=_colour(operation), label=operation)
        marks = [50, 90, 99]
        axes.plot(marks, [percentile(ordered, p) for p in marks], "o", color=_colour(operation), markersize=4)
    axes.set_yscale("log")
    axes.set_xlabel("percentile")
    axes.set_ylabel("latency (ms)")
    axes.set_xticks([0, 25, 50, 75, 90, 99])
    axes.set_title("latency by percentile (dots: p50, p90, p99)", fontsize=10)
    axes.grid(alpha=0.3)
    if groups:
        axes.legend(fontsize=8)


def _mark_events(axes, events, end: float, labels: bool) -> None:
    """A vertical line at each event, labelled in the upper panel (to its left near the right edge)."""
    for number, (at, what) in enumerate(events):
        axes.axvline(at, color="black", linestyle="--", linewidth=0.8)
        if labels:
            left = at > 0.7 * end
            axes.annotate(
                what,
                (at, 1 - 0.08 * (number % 4) - 0.03),
                xycoords=("data", "axes fraction"),
                fontsize=7,
                ha="right" if left else "left",
                va="top",
                xytext=(-3 if left else 3, 0),
                textcoords="offset points",
                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "alpha": 0.8, "lw": 0},
            )


def _latency_timeline(axes, groups: dict[str, list[Sample]], events, end: float) -> None:
    """Each request's latency at the time it was sent; failures as red crosses."""
    for operation, found in groups.items():
        answered = [s for s in found if s.ok]
        axes.scatter(
            [s.at for s in answered],
            [max(s.seconds * 1000, 1e-3) for s in answered],
            s=2,
            color=_colour(operation),
            alpha=0.4,
            label=operation,
            rasterized=True,
            linewidths=0,
        )
    failed = [s for found in groups.values() for s in found if not s.ok]
    if failed:
        axes.scatter(
            [s.at for s in failed],
            [max(s.seconds * 1000, 1e-3) for s in failed],
            s=14,
            marker="x",
            color="red",
            label=f"failed ({len(failed)})",
            rasterized=True,
        )
    axes.set_yscale("log")
    axes.set_ylabel("latency (ms)")
    axes.set_title("each request: latency when sent, around the kill -9 and restart", fontsize=10)
    axes.grid(alpha=0.3)
    _mark_events(axes, events, end, labels=True)
    axes.legend(fontsize=8, loc="lower right", markerscale=3)


def _rate_timeline(axes, samples: list[Sample], events, end: float) -> None:
    """Answers and failures per second, in slices of L{SLICE} seconds."""
    slices = timeline(samples, SLICE, end)
    starts = [row["start"] for row in slices]
    ok = [(row["count"] - row["errors"]) / SLICE for row in slices]
    failed = [row["errors"] / SLICE for row in slices]
    axes.bar(starts, ok, width=SLICE, align="edge", color="tab:gray", label="answered 2xx per s")
    axes.bar(starts, failed, width=SLICE, align="edge", bottom=ok, color="red", label="failed per s")
    axes.set_xlabel("seconds since the load began")
    axes.set_ylabel("requests / s")
    axes.set_xlim(0, max(end, SLICE))
    axes.grid(alpha=0.3, axis="y")
    _mark_events(axes, events, end, labels=False)
    axes.legend(fontsize=8, loc="lower right")
