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
(C{git worktree add DIR 14658ed}), else as recorded (L{BEFORE}).

Under them it prints what bounds the first ratio: the CPU a buy costs in
each process during the run at C{--many} connections, split into the
reactor thread and the SQLite pool's threads (from C{/proc/<pid>/task}),
and the ceiling those figures put on the buys a second -- the machine's
cores over the SQLite threads' CPU a buy plus the bare route's CPU a
request, as if no internal exchange and no reactor-thread code cost
anything (L{bounds}); and, from the run with one connection, the CPU a buy
costs in the two primaries' SQLite threads, whose three transactions
(the intent, the decrement, the order) follow each other on a buy's path,
against the buy p50 the goal allows.  Everything it starts is stopped,
whatever happens.
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


def cpu_seconds(pid: int) -> tuple[float, float]:
    """
    CPU seconds used so far by C{pid}'s main thread (a twistd's reactor)
    and by all its other threads (its SQLite pool), from C{/proc}.  Only
    live threads are listed there: a thread that ended takes its CPU with
    it (the pools' threads live as long as their process).
    """
    tick = os.sysconf("SC_CLK_TCK")
    main = other = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            # Fields 14 and 15 of stat, utime and stime, counted after the
            # command's closing parenthesis (the name may hold spaces).
            fields = task.joinpath("stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue  # a thread that ended meanwhile
        used = (int(fields[11]) + int(fields[12])) / tick
        if task.name == str(pid):
            main += used
        else:
            other += used
    return main, other


def with_cpu(pids: dict, run):
    """
    C{run()}'s result, and the CPU seconds each of C{pids} (name -> pid)
    used meanwhile, as C{name -> (main thread, other threads)}; the
    load generator's own (wrk is a child of this process) as C{"load"}.
    """
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    children = os.times()
    result = run()
    after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    done = os.times()
    used = {name: (after[name][0] - before[name][0], after[name][1] - before[name][1]) for name in pids}
    used["load"] = (done.children_user - children.children_user + done.children_system - children.children_system, 0.0)
    return result, used


def cluster_pids(config) -> dict:
    """C{catalog:A} ... C{frontend} -> pid, for every running process of C{config}."""
    found = {process.name: launcher.running_pid(process) for process in launcher.processes(config)}
    return {name: pid for name, pid in found.items() if pid is not None}


def bounds(seconds, ref_many, ref_cpu, buy_many, buy_cpu) -> dict:
    """
    What the CPU of this machine allows, from the CPU each process used
    during the bare route's and the buys' runs at C{--many} connections
    (L{with_cpu}): per request of the bare route, the reference's and the
    load generator's; per buy, each process's reactor thread and SQLite
    pool threads.

    C{ceiling} is the most buys a second this machine's cores could give
    if a buy cost nothing but the work of the replicas' SQLite threads
    (every transaction and apply the contract requires, as measured) and
    the bare route's own work (the public request, its load included):
    no internal exchange, no reactor-thread code at all.  Over the bare
    route's rate, it bounds the ratio that issue 14 asks to be >= 0.4.
    """
    cores = os.cpu_count() or 1
    route = (sum(ref_cpu["reference"]) + ref_cpu["load"][0]) / (ref_many[0] * seconds)
    count = buy_many[0] * seconds
    per = {name: (main / count, other / count) for name, (main, other) in buy_cpu.items()}
    database = sum(other for name, (main, other) in per.items() if name != "load")
    reactors = sum(main for name, (main, other) in per.items() if name != "load")
    ceiling = cores / (database + route)
    return {
        "cores": cores,
        "per": per,
        "database": database,
        "reactors": reactors,
        "route": route,
        "ceiling": ceiling,
        "ceiling_ratio": ceiling / ref_many[0],
    }


def ratios(ref_many, buy_many, lookup_one, buy_one) -> dict:
    """Issue 14's two ratios from its four measurements."""
    return {"rate": buy_many[0] / ref_many[0], "latency": buy_one[1] / lookup_one[1]}


def issue14(config, reference: subprocess.Popen, port: int, args) -> tuple[list, dict]:
    """
    The bare route and buys at C{--many} connections; a lookup and a buy
    with one.  Also L{bounds}, from the CPU the reference and the cluster's
    processes used during the first two.
    """
    front = config.frontend.url
    ref, ref_cpu = with_cpu(
        {"reference": reference.pid},
        lambda: measure("ref", f"http://127.0.0.1:{port}/reference", args, clients=args.many),
    )
    buys, buy_cpu = with_cpu(
        cluster_pids(config), lambda: measure("buy", f"{front}/buy/1", args, buy=True, clients=args.many)
    )
    lookup = measure("uncached", f"{front}/lookup/1", args, ["Cache-Control: no-cache"], clients=1)
    one, one_cpu = with_cpu(cluster_pids(config), lambda: measure("buy", f"{front}/buy/1", args, buy=True, clients=1))
    bound = bounds(args.seconds, ref, ref_cpu, buys, buy_cpu)
    services = testing.get_json(f"{front}/status")[1]["services"]
    primaries = [f"{service}:{services[service]['primary']}" for service in ("order", "catalog")]
    count = one[0] * args.seconds
    bound["one"] = {name: (main / count, other / count) for name, (main, other) in one_cpu.items()}
    bound["primaries"] = primaries
    bound["goal_p50"] = 2.5 * lookup[1] / 1000
    return [ref, buys, lookup, one], bound


def print_bounds(bound: dict, many: int) -> None:
    """L{bounds}, as the lines under the goals."""
    print(f"  CPU a buy at {many} clients, ms (reactor thread + SQLite threads):")
    for name, (main, other) in sorted(bound["per"].items()):
        if name != "load":
            print(f"    {name:12} {main * 1000:6.3f} + {other * 1000:6.3f}")
    print(f"    {'load (wrk)':12} {bound['per']['load'][0] * 1000:6.3f}")
    print(
        f"  the bare route costs {bound['route'] * 1000:.3f} ms of CPU a request (server and load);"
        f" the replicas' SQLite threads {bound['database'] * 1000:.3f} ms a buy, the processes' reactor threads"
        f" {bound['reactors'] * 1000:.3f} ms"
    )
    print(
        f"  ceiling on {bound['cores']} cores if nothing else cost CPU: {bound['ceiling']:.0f} buys/s,"
        f" {bound['ceiling_ratio']:.3f} of the bare route (goal >= 0.40)"
    )
    one = bound["one"]
    order, catalog = bound["primaries"]
    serial = one[order][1] + one[catalog][1]
    print(
        f"  1 client: the primaries' SQLite threads {serial * 1000:.2f} ms a buy ({order} {one[order][1] * 1000:.2f},"
        f" {catalog} {one[catalog][1] * 1000:.2f}: intent, decrement, order, one after the other);"
        f" reactor threads {one[order][0] * 1000:.2f} and {one[catalog][0] * 1000:.2f};"
        f" the goal's buy p50 {bound['goal_p50'] * 1000:.2f} ms"
    )


def baseline(args, reference: subprocess.Popen, port: int) -> tuple[list, dict]:
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
        return issue14(config, reference, port, args)
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
        measured, bound = issue14(config, reference, port, args)
        rows += list(zip(names, measured, strict=True))
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
            base, _ = baseline(args, reference, port)
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
        print_bounds(bound, args.many)
    finally:
        launcher.down(config, echo=lambda line: None)
        reference.send_signal(signal.SIGTERM)
        reference.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
