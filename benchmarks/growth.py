"""
What history costs: the same figures on a small and on a large store,
and their ratio, measured in one run on this machine.

    .venv/bin/python benchmarks/growth.py [--small 20000] [--large 1000000]
        [--books-small 7] [--books-large 1000000] [--requests 1000] [--no-rebuild] [--keep DIR]

It makes two clusters on free local ports, fills the stopped databases of
each with that many orders (and books) through the stores' own write path
(C{benchmarks/fill.py}: a compacted log, full tables, the replicas in
step), starts both with C{pygmy up}, and measures on each:

1. C{GET /status} of an order replica (public; the order backup): p50 of
   requests one after the other on one connection.  Goal: large / small
   below 1.2 (DESIGN.md section 4: O(1)).
2. buys: p50 of buys one after the other through the front end, while
   another client polls the order primary's C{/status} five times a
   second.  Goal: ratio below 1.2.
3. uncached reads through the front end (C{Cache-Control: no-cache}: it
   reads through to a catalog replica): lookups of random ids of the whole
   catalog, and searches of a seed topic (the same two books at every
   size; the generated books have topics of their own).  Goal: ratio
   below 1.2.
4. rebuild of a wiped backup: the order backup is stopped, its database
   files deleted, and it is started again; the time until the front end's
   C{/status} has it back in the in-sync set (start-up, snapshot and
   catch-up included), in seconds per 1,000 rows of the order tables
   (goal: at most linear in rows: no more per row on the large store), and
   the peak resident memory of both ends: the primary serving the snapshot
   (C{VmRSS} of C{/proc/<pid>/status} sampled every 10 ms during the
   rebuild) and the rebuilding backup (that, or its C{VmHWM} if higher:
   the rebuild is most of its life).  Goal: each peak grows by less than
   10 MB from the small to the large store.

The requests of each latency figure alternate between the two clusters in
C{--rounds} turns, so that what other programs do to the shared machine
meanwhile falls on both sizes alike.  At the end it counts the log entries
and request ids each replica keeps (a read-only look at the files), to show
that compaction (C{[cluster] log_keep}, every C{compact_interval}) bounds
them.  Every process it starts is stopped with C{pygmy down}, whatever
happens.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from growth_probes import Client, RssSampler, memory_kb, table_counts, timings

from pygmy import config as configuration
from pygmy import testing
from pygmy.cli import launcher

FILL = Path(__file__).resolve().with_name("fill.py")
#: A seed topic: two books at every size.
TOPIC = "distributed systems"
#: The order backup's tables, whose rows a rebuild copies.
ORDER_TABLES = ("orders", "buys")


def front_status(config) -> dict:
    """The front end's C{/status}."""
    return testing.get_json(config.frontend.url + "/status")[1]


def order_view(config) -> dict:
    """The order service's view, from the front end's C{/status}."""
    return front_status(config)["services"]["order"]


def process_of(config, service: str, name: str) -> launcher.Process:
    """The launcher's process of replica C{name} of C{service}."""
    (process,) = launcher.processes(config, [f"{service}:{name}"])
    return process


class Side:
    """
    One of the two running clusters.

    @ivar label: C{small} or C{large}.
    @ivar config: its parsed config.
    @ivar books: the books in its catalog.
    """

    def __init__(self, label: str, config, books: int):
        self.label, self.config, self.books = label, config, books
        self.ids = random.Random(677)


def status_timings(side: Side, count: int) -> list[float]:
    """C{GET /status} of the order backup."""
    backup = order_view(side.config)["backups"][0]
    client = Client(side.config.replica("order", backup).url)
    try:
        return timings(client, "GET", lambda n: "/status", count)
    finally:
        client.close()


def buy_timings(side: Side, count: int) -> list[float]:
    """Buys one after the other, while another client polls the order primary's C{/status} 5 times a second."""
    primary = order_view(side.config)["primary"]
    stop = threading.Event()
    polls = []

    def poll():
        client = Client(side.config.replica("order", primary).url)
        while not stop.wait(0.2):
            polls.append(client.time("GET", "/status"))
        client.close()

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    client = Client(side.config.frontend.url)
    try:
        return timings(client, "POST", lambda n: f"/buy/{n % 7 + 1}", count)
    finally:
        stop.set()
        poller.join()
        client.close()
        if count >= 20 and not polls:
            raise SystemExit("growth: the status poller did not run")


def lookup_timings(side: Side, count: int) -> list[float]:
    """Uncached lookups of random ids of the whole catalog."""
    client = Client(side.config.frontend.url, {"Cache-Control": "no-cache"})
    try:
        return timings(client, "GET", lambda n: f"/lookup/{side.ids.randint(1, side.books)}", count)
    finally:
        client.close()


def search_timings(side: Side, count: int) -> list[float]:
    """Uncached searches of a seed topic (two books at every size)."""
    client = Client(side.config.frontend.url, {"Cache-Control": "no-cache"})
    try:
        return timings(client, "GET", lambda n: "/search/" + TOPIC.replace(" ", "%20"), count)
    finally:
        client.close()


#: The latency figures: name, what measures one batch, the share of C{--requests}.
FIGURES = (
    ("status", status_timings, 1.0),
    ("buy", buy_timings, 0.5),
    ("lookup", lookup_timings, 1.0),
    ("search", search_timings, 1.0),
)


def interleaved(sides: list[Side], measure, count: int, rounds: int) -> dict:
    """
    The p50 in ms of C{count} requests per side, taken in C{rounds} turns
    that alternate between the sides (small, large, large, small, ...), so
    that the load other programs put on the machine meanwhile falls on both.
    """
    samples = {side.label: [] for side in sides}
    for turn in range(rounds):
        for side in sides if turn % 2 == 0 else reversed(sides):
            samples[side.label] += measure(side, max(count // rounds, 1))
    return {label: 1000 * statistics.median(values) for label, values in samples.items()}


def measure_rebuild(config, echo) -> dict:
    """
    Stop the order backup, delete its database files, start it again, and
    time it until the front end has it in the in-sync set again.
    """
    view = order_view(config)
    primary, backup = view["primary"], view["backups"][0]
    data_dir = config.cluster.data_dir
    rows = sum(table_counts(data_dir / f"order-{primary}.sqlite", ORDER_TABLES).values())
    process = process_of(config, "order", backup)
    primary_pid = launcher.read_pid(process_of(config, "order", primary))
    launcher.stop(process)
    testing.wait_until(lambda: backup not in order_view(config)["in_sync"], 30, "the backup to leave the view")
    for stale in data_dir.glob(f"order-{backup}.sqlite*"):
        stale.unlink()
    echo(f"  rebuilding order:{backup} from order:{primary} ({rows:,} rows)")
    sampler = RssSampler([primary_pid])
    sampler.start()
    started = time.monotonic()
    pid = launcher.start(config, process, timeout=120)
    sampler.add(pid)

    def back():
        view = order_view(config)
        return backup in view["in_sync"] and backup in view["backups"]

    testing.wait_until(back, 3600, "the rebuilt backup to rejoin", every=0.05)
    took = time.monotonic() - started
    peaks = sampler.stop()
    testing.wait_until(lambda: testing.in_step(testing.replica_statuses(config, "order")), 60, "the same checksum")
    return {
        "rows": rows,
        "seconds": took,
        "per_1000": 1000 * took / rows,
        "primary_mb": peaks[primary_pid] / 1024,
        "backup_mb": max(peaks[pid], memory_kb(pid, "VmHWM")) / 1024,
    }


def compaction_counts(config) -> dict:
    """Per replica, its log entries and request ids (read-only)."""
    data_dir = config.cluster.data_dir
    return {
        f"{service}:{replica.name}": table_counts(data_dir / f"{service}-{replica.name}.sqlite", ("log", "requests"))
        for service in ("catalog", "order")
        for replica in config.replicas[service]
    }


def prepare(directory: Path, orders: int, books: int, args, taken: set, echo) -> Path:
    """
    A config in C{directory} whose stopped cluster holds C{orders} orders
    and C{books} books, on ports not in C{taken}; reused if C{directory}
    already holds that fill.
    """
    marker = directory / "filled.json"
    wanted = {"orders": orders, "books": books, "rate": args.rate}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        echo(f"  reusing the fill in {directory}")
        return directory / "config.ini"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    while True:
        path = testing.write_config(
            directory,
            heartbeat_interval="0.5",
            heartbeat_timeout="1.5",
            log_keep=str(args.log_keep),
            idempotency_keep=str(args.idempotency_keep),
        )
        if not ports(configuration.load(path)) & taken:
            break
    command = [sys.executable, str(FILL), "--config", str(path), "--orders", str(orders), "--books", str(books)]
    subprocess.run(command + ["--rate", str(args.rate)], check=True)
    marker.write_text(json.dumps(wanted))
    return path


def ports(config) -> set[int]:
    """Every port of C{config}."""
    found = {config.frontend.port, config.frontend.heartbeat_port}
    return found | {replica.port for group in config.replicas.values() for replica in group}


def start(side: Side, echo) -> None:
    """Start the cluster of C{side} and check that its replicas are in step."""
    config = side.config
    if launcher.up(config, echo=lambda line: None):
        raise SystemExit(f"growth: pygmy up of the {side.label} cluster failed")
    testing.wait_until(lambda: testing.every_replica_in_view(front_status(config)["services"]), 60, "the views")
    for service in ("catalog", "order"):
        statuses = testing.replica_statuses(config, service)
        if not testing.in_step(statuses):
            raise SystemExit(f"growth: the {service} replicas are not in step after the fill: {statuses}")
        echo(f"  {side.label} {service}: replicas in step at seq {statuses[0]['applied_seq']:,}")


def run(sides: list[Side], args, echo) -> dict:
    """Every figure of both running clusters, by figure then by side."""
    results = {side.label: {} for side in sides}
    for name, measure, share in FIGURES:
        echo(f"measuring {name} ...")
        for label, p50 in interleaved(sides, measure, int(args.requests * share), args.rounds).items():
            results[label][name] = p50
    if args.rebuild:
        for side in sides:
            results[side.label]["rebuild"] = measure_rebuild(side.config, echo)
    time.sleep(max(side.config.cluster.compact_interval for side in sides) + 1)  # compaction of the new writes
    for side in sides:
        for name, counts in compaction_counts(side.config).items():
            echo(f"  {side.label} {name}: {counts['log']:,} log entries, {counts['requests']:,} request ids kept")
        results[side.label]["kept"] = compaction_counts(side.config)
    return results


def report(small: dict, large: dict, args, echo) -> None:
    """The table of both sizes, their ratios and the goals."""
    sizes = f"{args.small:,} / {args.large:,} orders"
    echo(f"\n{'':44} {'small':>10} {'large':>10} {'ratio':>7}  goal")
    rows = [
        ("order replica GET /status p50 ms", "status", f"< 1.2 ({sizes})"),
        ("buy p50 ms, /status polled 5/s", "buy", f"< 1.2 ({sizes})"),
        ("uncached lookup p50 ms", "lookup", f"< 1.2 ({args.books_small:,} / {args.books_large:,} books)"),
        ("uncached search p50 ms", "search", f"< 1.2 ({args.books_small:,} / {args.books_large:,} books)"),
    ]
    for name, key, goal in rows:
        echo(f"  {name:42} {small[key]:10.2f} {large[key]:10.2f} {large[key] / small[key]:7.2f}  {goal}")
    if "rebuild" in small:
        a, b = small["rebuild"], large["rebuild"]
        echo(f"  {'rebuild: rows of the order tables':42} {a['rows']:10,} {b['rows']:10,}")
        echo(f"  {'rebuild: seconds':42} {a['seconds']:10.2f} {b['seconds']:10.2f}")
        ratio = b["per_1000"] / a["per_1000"]
        echo(f"  {'rebuild: seconds per 1,000 rows':42} {a['per_1000']:10.3f} {b['per_1000']:10.3f} {ratio:7.2f}  <= 1")
        for name, key in (("primary (serving)", "primary_mb"), ("backup (rebuilding)", "backup_mb")):
            growth = b[key] - a[key]
            echo(f"  {'rebuild: peak RSS MB, ' + name:42} {a[key]:10.1f} {b[key]:10.1f} {growth:+7.1f}  < +10 MB")


def main(argv=None):
    """Fill and start both clusters, measure, print the table, stop everything."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--small", type=int, default=20_000, help="orders of the small store")
    parser.add_argument("--large", type=int, default=1_000_000, help="orders of the large store")
    parser.add_argument("--books-small", type=int, default=7, help="books of the small store (7: the seed)")
    parser.add_argument("--books-large", type=int, default=1_000_000, help="books of the large store")
    parser.add_argument("--requests", type=int, default=1000, help="requests per latency figure and size (buys: half)")
    parser.add_argument("--rounds", type=int, default=10, help="turns the requests of a figure alternate in")
    parser.add_argument("--rate", type=float, default=1.0, help="buys per simulated second of the fill")
    parser.add_argument("--log-keep", type=int, default=10_000, help="[cluster] log_keep")
    parser.add_argument("--idempotency-keep", type=float, default=3600.0, help="[cluster] idempotency_keep, s")
    parser.add_argument("--no-rebuild", dest="rebuild", action="store_false", help="skip the rebuild figure")
    parser.add_argument("--keep", help="fill in DIR/small and DIR/large, keep them and reuse them next time")
    args = parser.parse_args(argv)
    root = Path(args.keep or tempfile.mkdtemp(prefix="pygmy-growth-"))
    sides = []
    try:
        for label, orders, books in (("small", args.small, args.books_small), ("large", args.large, args.books_large)):
            print(f"{label}: {orders:,} orders, {books:,} books")
            started = time.monotonic()
            taken = set().union(*(ports(side.config) for side in sides))
            config = configuration.load(prepare(root / label, orders, books, args, taken, print))
            print(f"  ready in {time.monotonic() - started:.0f} s")
            sides.append(Side(label, config, books))
        for side in sides:
            start(side, print)
        results = run(sides, args, print)
        print(json.dumps(results, indent=1))
        report(results["small"], results["large"], args, print)
    finally:
        for side in sides:
            launcher.down(side.config, echo=lambda line: None)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
