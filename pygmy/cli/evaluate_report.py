"""
The report of C{pygmy evaluate}: the JSON document of a run (the
machine, the config, the settings and every figure, latencies in seconds),
the checks made on it, and the report written from it alone, as
C{report.md} and C{report.rst} next to its PNGs (L{pygmy.cli.evaluate_plot}).

The text is a list of blocks (headings, paragraphs, tables, lists, images)
that L{markdown} and L{restructuredtext} write; inline code is written
C{`like this`} in the blocks.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import time
from importlib import metadata
from pathlib import Path

#: The packages whose versions the report names.
PACKAGES = ("pygmy", "twisted", "treq", "klein", "rich", "matplotlib")
#: How question 1 names its modes.
MODE_TITLES = {
    "on": "cache on",
    "bypass": "bypass (`Cache-Control: no-cache`)",
    "off": "cache off (`cache_size = 0`)",
}
OPERATIONS = ("search", "lookup", "buy")
FAULT_TITLES = {"primary": "primary", "backup": "backup"}


# The document


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict:
    """What the run ran on: cores, CPU, memory, system, Python, versions, load average now."""
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu(),
        "memory_gib": _memory_gib(),
        "system": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "versions": {name: _version(name) for name in PACKAGES},
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def describe_config(config) -> dict:
    """The parts of the cluster's config the figures depend on."""
    cluster, front = config.cluster, config.frontend
    return {
        "path": str(config.path),
        "frontend": front.url,
        "cache_size": front.cache_size,
        "balancer": front.balancer,
        "heartbeat_interval": cluster.heartbeat_interval,
        "heartbeat_timeout": cluster.heartbeat_timeout,
        "request_timeout": cluster.request_timeout,
        "replicas": {service: [r.name for r in replicas] for service, replicas in config.replicas.items()},
    }


def command_line(argv) -> str:
    """The command that ran, quoted for a shell; the text of C{--note} (which the report quotes) elided."""
    shown, hide = [], False
    for arg in argv:
        if hide:
            arg, hide = "...", False
        elif arg == "--note":
            hide = True
        elif arg.startswith("--note="):
            arg = "--note=..."
        shown.append(arg)
    return shlex.join(["pygmy", "evaluate", *shown])


def document(settings, config, machine_before: dict, measured: dict) -> dict:
    """The JSON document of a run (latencies in seconds), with its L{checks}."""
    found = {
        "format": 1,
        "command": command_line(settings.argv),
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(measured["started"])),
        "seconds": measured["seconds"],
        "machine": {**machine_before, "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "note": settings.note,
        "config": describe_config(config),
        "settings": {
            "quick": settings.quick,
            "clients": list(settings.clients),
            "step_seconds": settings.step,
            "mix": settings.mix,
            "requests": settings.requests,
            "kill_at_seconds": settings.kill_at,
            "down_seconds": settings.down,
            "fault_clients": settings.fault_clients,
            "seed": settings.seed,
            "timeout_seconds": settings.timeout,
        },
        **{key: measured[key] for key in ("cache_on", "cache_off", "cache_off_config", "response_time")},
        **{key: measured[key] for key in ("consistency", "faults", "checksums")},
    }
    found["checks"] = checks(found)
    return found


# The checks


def failures(errors: dict) -> int:
    """How many of C{errors} (by status) are failures: no answer or a 5xx."""
    return sum(n for key, n in errors.items() if not key.isdigit() or int(key) >= 500)


def _step_failures(doc: dict) -> list[str]:
    found = []
    steps = [(f"{s['clients']} clients, cache {s['cache']}", s["operations"]) for s in doc["response_time"]]
    consistency = doc["consistency"]
    steps += [(f"question 2, {name}", seen["operations"]) for name, seen in consistency.items()]
    for name, operations in steps:
        for operation, figures in operations.items():
            if failures(figures["errors"]):
                found.append(f"{name}: {operation} {figures['errors']}")
    found += [f"{f['target']}: {f['failed_outside']} outside the kill" for f in doc["faults"] if f["failed_outside"]]
    return found


def _cache_problems(doc: dict) -> list[str]:
    found = []
    hits = {
        mode: sum(s["counters"]["hits"] for s in doc["response_time"] if s["cache"] == mode) for mode in MODE_TITLES
    }
    if hits["on"] < 1:
        found.append("no hit counted with the cache on")
    if doc["cache_off"]["capacity"] != 0 or hits["off"]:
        found.append(f"with cache_size = 0: capacity {doc['cache_off']['capacity']}, {hits['off']} hits")
    return found


def _invalidation_problems(doc: dict) -> list[str]:
    seen = doc["consistency"]["invalidation"]
    counters, cycles = seen["counters"], seen["cycles"]
    if counters["misses"] < cycles:
        return [f"{counters['misses']} misses counted for {cycles} lookups after an invalidation"]
    return []


def checks(doc: dict) -> list[dict]:
    """What must hold for the figures to mean what they say: C{{"ok", "what", "detail"}} each."""
    faults = doc["faults"]
    undetected = [f"{f['service']} {f['role']}: {f['error'] or 'no new view'}" for f in faults if f["detected"] is None]
    missing = [f"{f['target'] or f['service']}: {f['error'] or 'not back'}" for f in faults if f["rejoined"] is None]
    apart = [
        f"{service}: " + ", ".join(f"{n} {r['applied_seq'] if r else 'no answer'}" for n, r in seen["replicas"].items())
        for service, seen in doc["checksums"].items()
        if not seen["agree"]
    ]
    found = [
        ("every kill -9 was detected: a new view without the killed replica in /status", undetected),
        ("every killed replica was back in the in-sync set after its restart", missing),
        ("the replicas of each service agree afterwards: the same applied_seq and checksum", apart),
        ("no request failed (no answer or 5xx) outside the kills", _step_failures(doc)),
        ("the cache answered hits when on, and none with cache_size = 0", _cache_problems(doc)),
        ("every lookup after an invalidation was a miss", _invalidation_problems(doc)),
    ]
    return [{"ok": not problems, "what": what, "detail": "; ".join(problems)} for what, problems in found]


# Blocks and the two writers


def ms(seconds) -> str:
    """Seconds as milliseconds, two decimals; C{-} for none."""
    return "-" if seconds is None else f"{seconds * 1000:.2f}"


def secs(seconds, places: int = 2) -> str:
    """Seconds with C{places} decimals; C{-} for none."""
    return "-" if seconds is None else f"{seconds:.{places}f}"


def markdown(blocks: list[tuple], images: str = "") -> str:
    """The blocks as Markdown; images under the prefix C{images}."""
    out = []
    for kind, *rest in blocks:
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + rest[0])
        elif kind == "p":
            out.append(rest[0])
        elif kind == "list":
            out.append("\n".join(f"- {item}" for item in rest[0]))
        elif kind == "table":
            header, rows = rest
            lines = [header, ["---"] * len(header), *rows]
            out.append("\n".join("| " + " | ".join(str(cell) for cell in line) + " |" for line in lines))
        elif kind == "image":
            out.append(f"![{rest[1]}]({images}{rest[0]})")
    return "\n\n".join(out) + "\n"


def _rst_inline(text: str) -> str:
    return re.sub(r"`([^`]+)`", r"``\1``", text)


def restructuredtext(blocks: list[tuple], images: str = "") -> str:
    """The blocks as reStructuredText; images under the prefix C{images}."""
    out = []
    for kind, *rest in blocks:
        if kind in ("h1", "h2", "h3"):
            title = _rst_inline(rest[0])
            line = {"h1": "=", "h2": "=", "h3": "-"}[kind] * len(title)
            out.append(f"{line}\n{title}\n{line}" if kind == "h1" else f"{title}\n{line}")
        elif kind == "p":
            out.append(_rst_inline(rest[0]))
        elif kind == "list":
            out.append("\n".join(f"* {_rst_inline(item)}" for item in rest[0]))
        elif kind == "table":
            header, rows = rest
            lines = [".. list-table::", "   :header-rows: 1", ""]
            for row in [header, *rows]:
                cells = [_rst_inline(str(cell)) or "\\" for cell in row]
                lines += [f"   * - {cells[0]}", *(f"     - {cell}" for cell in cells[1:])]
            out.append("\n".join(lines))
        elif kind == "image":
            out.append(f".. image:: {images}{rest[0]}\n   :alt: {rest[1]}")
    return "\n\n".join(out) + "\n"


def write(directory: Path, doc: dict, samples: dict) -> list[str]:
    """
    Draw the plots and write C{report.md} and C{report.rst} into
    C{directory} (made if need be); return the names of what was written.

    @param samples: per fault step (C{service-role}), its samples, seconds
        and events, for its timeline plot.
    """
    from pygmy.cli import evaluate_plot
    from pygmy.cli.evaluate_text import blocks

    directory.mkdir(parents=True, exist_ok=True)
    images = evaluate_plot.draw_all(directory, doc, samples)
    found = blocks(doc, images)
    (directory / "report.md").write_text(markdown(found))
    (directory / "report.rst").write_text(restructuredtext(found))
    return [str(directory / name) for name in ("report.md", "report.rst", *images.values())]
