"""
Failover and catch-up, measured on a real cluster on this machine.

    .venv/bin/python benchmarks/failover.py [--writes 10000] [--keep DIR]

Starts a cluster with C{pygmy up} on free local ports (the default
heartbeat settings: 0.5 s beats, 1.5 s timeout), then measures:

1. **failover**: C{kill -9} of the catalog primary, then of the order
   primary, and the time until the first buy through the front end
   succeeds.  Goal: at most C{heartbeat_timeout + 0.5} s.
2. **catch-up**: C{kill -9} of a catalog backup, C{--writes} writes on
   the primary, a restart, and the time until both replicas report the same
   C{applied_seq} and checksum (process start-up included), plus the time
   the replica itself logs for fetching and applying.  Goal: at most 2 s
   for 10,000 entries.

Each result is printed with its ratio to the goal (below 1 is better).
Everything it starts is stopped with C{pygmy down}, whatever happens.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from treq.client import HTTPClient
from twisted.internet import defer, task
from twisted.web.client import Agent, HTTPConnectionPool

from pygmy import config as configuration
from pygmy import testing
from pygmy.cli import launcher, lifecycle


def write_config(directory: Path) -> Path:
    """A config.ini on free local ports, with the default heartbeat settings."""
    return testing.write_config(directory, heartbeat_interval="0.5", heartbeat_timeout="1.5")


def get(url):
    """The JSON body of C{GET url}."""
    return testing.get_json(url)[1]


def settled(config):
    """Whether every replica is in its service's view."""
    return testing.every_replica_in_view(get(config.frontend.url + "/status")["services"])


def converged(config, service):
    """Whether the replicas of C{service} report the same seq and checksum."""
    return testing.in_step(testing.replica_statuses(config, service))


def kill_9(config, service, name):
    """C{kill -9} of one replica by its pid file, the way C{pygmy chaos} does it."""
    (process,) = launcher.processes(config, [f"{service}:{name}"])
    lifecycle.kill(process)
    return process


async def first_buy_after(http, url, reactor):
    """Seconds from now until a buy succeeds (each buy retries inside)."""
    started = reactor.seconds()
    while reactor.seconds() - started < 30:
        response = await http.request("POST", f"{url}/buy/1")
        await response.content()
        if response.code == 200:
            return reactor.seconds() - started
    raise SystemExit("benchmark: no buy succeeded within 30 s")


async def many_writes(http, url, count, clients=32):
    """C{count} stock updates straight to the catalog replica at C{url}, from C{clients} writers."""
    pending = iter(range(count))
    headers = {"Authorization": f"Bearer {testing.SECRET}"}

    async def writer():
        for n in pending:
            body = json.dumps({"stock_delta": 1, "request_id": f"bench-{n}"}).encode()
            response = await http.request("POST", f"{url}/books/{n % 7 + 1}/update", data=body, headers=headers)
            await response.content()
            if response.code != 200:
                raise SystemExit(f"benchmark: write answered {response.code}")

    await defer.gatherResults([defer.ensureDeferred(writer()) for _ in range(clients)])


def report(name, seconds, goal):
    """Print one result and its ratio to the goal."""
    print(f"  {name:<42} {seconds:7.3f} s   goal {goal:5.2f} s   ratio {seconds / goal:5.2f}")


async def measure(reactor, config, writes):
    """The failover and the catch-up measurements, on the running cluster of C{config}."""
    pool = HTTPConnectionPool(reactor)
    pool.maxPersistentPerHost = 64
    http = HTTPClient(Agent(reactor, pool=pool))
    timeout = config.cluster.heartbeat_timeout
    try:
        print("failover (kill -9 of a primary -> first successful buy):")
        for service in ("catalog", "order"):
            primary = get(config.frontend.url + "/status")["services"][service]["primary"]
            process = kill_9(config, service, primary)
            took = await first_buy_after(http, config.frontend.url, reactor)
            report(f"{service} primary {primary}", took, timeout + 0.5)
            await lifecycle.restart(reactor, config, process, http)
            testing.wait_until(lambda: settled(config), 30, "the views to settle")

        print(f"catch-up ({writes} missed entries, restart -> same checksum):")
        view = get(config.frontend.url + "/status")["services"]["catalog"]
        primary, backup = view["primary"], view["backups"][0]
        process = kill_9(config, "catalog", backup)
        await many_writes(http, config.replica("catalog", primary).url, writes)
        offset = process.logfile.stat().st_size
        started = time.monotonic()
        await lifecycle.restart(reactor, config, process, http)
        testing.wait_until(lambda: converged(config, "catalog"), 60, "catch-up")
        report(f"catalog backup {backup}, start-up included", time.monotonic() - started, 2.0 * writes / 10_000)
        testing.wait_until(lambda: settled(config), 30, "the backup to rejoin")
        with open(process.logfile, "rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
        logged = re.findall(r"caught up from seq \d+ to \d+ in ([0-9.]+)s", text)
        if logged:
            report(f"catalog backup {backup}, fetch and apply", float(logged[-1]), 2.0 * writes / 10_000)
    finally:
        await pool.closeCachedConnections()


def main(argv=None):
    """Start a cluster, measure, stop everything."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--writes", type=int, default=10_000, help="entries the backup misses")
    parser.add_argument("--keep", help="run in this directory and keep it (default: a temporary one)")
    args = parser.parse_args(argv)
    directory = Path(args.keep or tempfile.mkdtemp(prefix="pygmy-bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    config = configuration.load(write_config(directory))
    try:
        if launcher.up(config, echo=lambda line: None):
            raise SystemExit("benchmark: pygmy up failed")
        testing.wait_until(lambda: settled(config), 30, "the views to settle")
        task.react(lambda reactor: defer.ensureDeferred(measure(reactor, config, args.writes)))
    finally:
        launcher.down(config, echo=lambda line: None)
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
