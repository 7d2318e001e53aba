"""
Read and write throughput of the front end, against a bare Klein route on
the same machine in the same run.

    .venv/bin/python benchmarks/throughput.py [--seconds 5] [--clients 10] [--buy-clients 64]
        [--many 50] [--baseline DIR]

Measures, with the same load generator (wrk if it is installed, else
L{pygmy.cli.loadgen}), one after the other:

1. a bare Klein route returning a small JSON body: the reference;
2. a cached lookup through the front end (C{GET /lookup/1});
3. an uncached lookup (C{Cache-Control: no-cache}: front end -> replica);
4. buys (C{POST /buy/<id>}: front end -> order primary -> catalog primary,
   each write replicated to its backup before it is acknowledged), with
   C{--clients} connections and again with C{--buy-clients}.

5. for issue 14: the bare Klein route and buys at C{--many} (50)
   connections, and an uncached lookup and a buy with one connection.

It prints requests/s, p50 and p99 latency for each, and the ratios to the
goals: cached/reference >= 0.9, >= 500 buys/s, cached p50 <= 2 ms at 10
clients.  A buy crosses five processes and four database commits one after
the other, so with few clients the rate is bounded by latency (Little's
law), not by what the cluster can do; the buy goal is judged at
C{--buy-clients}, the throughput the cluster sustains, and both rates are
printed.  Issue 14's two ratios (buys over the bare route at 50
connections, goal >= 0.4; one client's buy p50 over its uncached lookup
p50, goal <= 2.5) are printed with their values before that work: measured
in the same run on a checkout of the earlier code with C{--baseline DIR}
(C{git worktree add DIR 14658ed}), else as recorded (L{BEFORE}).  Everything it starts is stopped, whatever happens.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

from pygmy import config as configuration
from pygmy import testing
from pygmy.cli import launcher

#: The reference server, run as a script by its path.
REFERENCE = Path(__file__).resolve().with_name("reference.py")

#: Issue 14's two ratios as measured before its changes (commit 14658ed),
#: each in one run of this script, for the comparison it prints.
BEFORE = {"rate": 0.042, "latency": 8.10}

BUY_SCRIPT = """
counter = 0
request = function()
  counter = counter + 1
  return wrk.format("POST", "/buy/" .. (counter % 7 + 1))
end
"""


def wrk(url, seconds, clients, headers=(), script=None):
    """Run wrk; return (requests/s, p50 ms, p99 ms, non-2xx count)."""
    command = ["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--latency"]
    for header in headers:
        command += ["-H", header]
    if script:
        command += ["-s", script]
    out = subprocess.run(command + [url], capture_output=True, text=True, timeout=seconds + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))
    latency = dict(re.findall(r"^\s+(50|99)%\s+([0-9.]+\w+)", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, _ms(latency["50"]), _ms(latency["99"]), int(errors.group(1)) if errors else 0


def _ms(text):
    value, unit = re.fullmatch(r"([0-9.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def own_generator(url, seconds, clients, headers=(), method="GET", urls=None):
    """The same measurement with pygmy.cli.loadgen, where wrk is missing."""
    from treq.client import HTTPClient
    from twisted.internet import defer, task
    from twisted.web.client import Agent, HTTPConnectionPool

    from pygmy.cli.loadgen import Request, drive, summarise

    result = {}
    head = dict(h.split(": ", 1) for h in headers)

    async def run(reactor):
        pool = HTTPConnectionPool(reactor)
        pool.maxPersistentPerHost = clients
        http = HTTPClient(Agent(reactor, pool=pool))

        def plan(n):
            return Request("x", method, urls(n) if urls else url, head)

        samples = await drive(reactor, http, plan, clients, duration=seconds)
        result.update(summarise(samples, seconds)["x"])
        await pool.closeCachedConnections()

    try:
        task.react(lambda reactor: defer.ensureDeferred(run(reactor)))
    except SystemExit:
        pass
    return result["rps"], result["p50"] * 1000, result["p99"] * 1000, result["count"] - result["ok"]


def measure(name, url, args, headers=(), buy=False, clients=None):
    """One measurement of C{url} by wrk, or by L{own_generator} without it."""
    clients = clients or args.clients
    if shutil.which("wrk"):
        script = None
        if buy:
            script = os.path.join(tempfile.mkdtemp(), "buy.lua")
            Path(script).write_text(BUY_SCRIPT)
        return wrk(url, args.seconds, clients, headers, script)
    if buy:
        base = url.rsplit("/buy", 1)[0]
        return own_generator(url, args.seconds, clients, headers, "POST", lambda n: f"{base}/buy/{n % 7 + 1}")
    return own_generator(url, args.seconds, clients, headers)


def restock(config):
    """Add a million copies of every book, so the buys never run out."""
    for item in range(1, 8):
        request = urllib.request.Request(
            f"{config.frontend.url}/update/{item}",
            data=json.dumps({"stock_delta": 1_000_000}).encode(),
            headers={"Authorization": f"Bearer {config.cluster.secret}"},
            method="POST",
        )
        urllib.request.urlopen(request, timeout=10).read()


def start(config, what: str) -> None:
    """C{pygmy up} of C{config}, then wait for full views and restock (the caller runs C{pygmy down})."""
    if launcher.up(config, echo=lambda line: None):
        raise SystemExit(f"benchmark: pygmy up of {what} failed")
    testing.wait_for_full_view(config.frontend.url, 30, f"the views of {what} to settle")
    restock(config)


def ratios(ref_many, buy_many, lookup_one, buy_one) -> dict:
    """Issue 14's two ratios from its four measurements."""
    return {"rate": buy_many[0] / ref_many[0], "latency": buy_one[1] / lookup_one[1]}


def issue14(front: str, port: int, args) -> list:
    """The bare route and buys at C{--many} connections; a lookup and a buy with one."""
    return [
        measure("ref", f"http://127.0.0.1:{port}/reference", args, clients=args.many),
        measure("buy", f"{front}/buy/1", args, buy=True, clients=args.many),
        measure("uncached", f"{front}/lookup/1", args, ["Cache-Control: no-cache"], clients=1),
        measure("buy", f"{front}/buy/1", args, buy=True, clients=1),
    ]


def baseline(args, port: int) -> list:
    """
    L{issue14}'s measurements of a cluster that runs the code of the
    checkout C{args.baseline} (an earlier commit, e.g. a C{git worktree}):
    its processes get it first on C{PYTHONPATH}.  Stopped, whatever happens.
    """
    directory = Path(tempfile.mkdtemp(prefix="pygmy-bench-base-"))
    config = configuration.load(testing.write_config(directory, heartbeat_interval="0.5", heartbeat_timeout="1.5"))
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(Path(args.baseline).resolve())
    try:
        start(config, "the baseline")
        return issue14(config.frontend.url, port, args)
    finally:
        launcher.down(config, echo=lambda line: None)
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
        shutil.rmtree(directory, ignore_errors=True)


def main(argv=None):
    """Start a cluster and the reference, measure, stop everything."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--seconds", type=int, default=5, help="length of each measurement")
    parser.add_argument("--clients", type=int, default=10, help="concurrent connections")
    parser.add_argument("--buy-clients", type=int, default=64, help="concurrent connections for the second buy run")
    parser.add_argument("--many", type=int, default=50, help="connections for the buys/reference ratio (issue 14)")
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="a checkout of an earlier commit: measure issue 14's ratios on it too, in this run",
    )
    args = parser.parse_args(argv)
    directory = Path(tempfile.mkdtemp(prefix="pygmy-bench-"))
    path = testing.write_config(directory, heartbeat_interval="0.5", heartbeat_timeout="1.5")
    config = configuration.load(path)
    port = testing.free_ports(1)[0]
    reference = subprocess.Popen([sys.executable, str(REFERENCE), str(port)])
    try:
        start(config, "the cluster")
        front = config.frontend.url
        generator = "wrk" if shutil.which("wrk") else "pygmy.cli.loadgen"
        print(f"{args.clients} clients, {args.seconds} s each, load by {generator}")
        rows = [
            ("1 bare Klein route (reference)", measure("ref", f"http://127.0.0.1:{port}/reference", args)),
            ("2 cached lookup", measure("cached", f"{front}/lookup/1", args)),
            ("3 uncached lookup", measure("uncached", f"{front}/lookup/1", args, ["Cache-Control: no-cache"])),
            (f"4 buy (replicated), {args.clients} clients", measure("buy", f"{front}/buy/1", args, buy=True)),
            (
                f"5 buy (replicated), {args.buy_clients} clients",
                measure("buy", f"{front}/buy/1", args, buy=True, clients=args.buy_clients),
            ),
        ]
        names = (
            f"6 bare Klein route, {args.many} clients",
            f"7 buy (replicated), {args.many} clients",
            "8 uncached lookup, 1 client",
            "9 buy (replicated), 1 client",
        )
        rows += list(zip(names, issue14(front, port, args), strict=True))
        print(f"  {'':34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
        for name, (rps, p50, p99, errors) in rows:
            print(f"  {name:34} {rps:9.0f} {p50:8.2f} {p99:8.2f} {errors:7d}")
        ref, cached, few, many = (row[1] for row in (rows[0], rows[1], rows[3], rows[4]))
        print("goals:")
        print(f"  cached / reference throughput   {cached[0] / ref[0]:5.2f}   (goal >= 0.90)")
        print(
            f"  buys per second                 {many[0]:5.0f}   (goal >= 500: ratio {many[0] / 500:4.2f}, "
            f"{args.buy_clients} clients; {few[0]:.0f} with {args.clients})"
        )
        print(f"  cached lookup p50               {cached[1]:5.2f} ms (goal <= 2 ms, {args.clients} clients)")
        now = ratios(*(row[1] for row in rows[5:9]))
        before, where = BEFORE, "before, recorded"
        if args.baseline:
            launcher.down(config, echo=lambda line: None)
            base = baseline(args, port)
            before, where = ratios(*base), f"before, measured now from {args.baseline}"
            print(f"  baseline: {args.many} clients reference {base[0][0]:.0f}/s, buys {base[1][0]:.0f}/s;")
            print(f"    1 client: uncached lookup p50 {base[2][1]:.2f} ms, buy p50 {base[3][1]:.2f} ms")
        print(
            f"  buys / reference, {args.many} clients   {now['rate']:5.3f}   "
            f"(goal >= 0.40; {where}: {before['rate']:.3f})"
        )
        print(
            f"  buy p50 / uncached p50, 1 client {now['latency']:5.2f}   "
            f"(goal <= 2.5; {where}: {before['latency']:.2f})"
        )
    finally:
        launcher.down(config, echo=lambda line: None)
        reference.send_signal(signal.SIGTERM)
        reference.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
