"""
What the report of C{pygmy evaluate} says, as blocks for the writers of
L{pygmy.cli.evaluate_report}: the machine and the cluster, the checks, the
three questions' tables and findings, and how to run it again.  Every
figure is read from the run's JSON document and carries its unit.
"""

from __future__ import annotations

from pygmy.cli.evaluate_report import MODE_TITLES, OPERATIONS, ms, secs

#: The runs of question 2's writes, in order.
WRITE_TITLES = {"on": "cache on", "off": "cache off (`cache_size = 0`)", "on_again": "cache on, again"}


def _figure(operations: dict, operation: str) -> dict | None:
    return operations.get(operation)


def _triple(figures: dict | None) -> str:
    """p50 / p95 / p99 in ms."""
    return "-" if not figures else " / ".join(ms(figures[k]) for k in ("p50", "p95", "p99"))


def _steps(doc: dict) -> dict:
    """Question 1's steps by (clients, mode)."""
    return {(s["clients"], s["cache"]): s for s in doc["response_time"]}


def about(doc: dict) -> list[tuple]:
    """The title, the machine, the cluster and the settings."""
    m, c, s = doc["machine"], doc["config"], doc["settings"]
    versions = ", ".join(f"{name} {version}" for name, version in m["versions"].items())
    shared = (
        f"Everything ran on this one machine: the {sum(map(len, c['replicas'].values())) + 1} processes of the "
        f"cluster and the clients (one process, one reactor) shared its {m['cores']} cores, so every latency "
        f"includes the wait for a CPU. Load average (1, 5, 15 min) {m['load_average']} before the run and "
        f"{m['load_average_after']} after."
    )
    blocks = [
        ("h1", "Pygmy evaluation"),
        (
            "p",
            f"Measured by `{doc['command']}` on {doc['started']}, in {doc['seconds']:.0f} s"
            + (" (a `--quick` run: too short for figures to rely on)." if s["quick"] else "."),
        ),
        ("h2", "The machine"),
        (
            "table",
            ["what", "value"],
            [
                ["CPU", f"{m['cpu']}, {m['cores']} cores"],
                ["memory", f"{m['memory_gib']} GiB"],
                ["system", m["system"]],
                ["Python", m["python"]],
                ["versions", versions],
            ],
        ),
        ("p", shared + (f" {doc['note']}" if doc["note"] else "")),
        ("h2", "The cluster"),
        (
            "p",
            f"Config `{c['path']}`: one front end at {c['frontend']} (`cache_size = {c['cache_size']}`, balancer "
            f"`{c['balancer']}`); catalog replicas {', '.join(c['replicas']['catalog'])}, order replicas "
            f"{', '.join(c['replicas']['order'])}; heartbeats every {c['heartbeat_interval']:g} s, a replica dead "
            f"after {c['heartbeat_timeout']:g} s of silence; requests between processes time out after "
            f"{c['request_timeout']:g} s. Every process is a twistd of its own, started by `pygmy up`.",
        ),
        (
            "p",
            f"Mix of requests under load: {', '.join(f'{k} {v:g}' for k, v in s['mix'].items())} (weights); "
            f"question 1: {s['step_seconds']:g} s per step; question 2: {s['requests']} requests per figure, "
            f"one at a time; question 3: {s['fault_clients']} clients, the kill {s['kill_at_seconds']:g} s into "
            f"the step, the replica down {s['down_seconds']:g} s. Seed {s['seed']}. Before each step every "
            "item's stock is topped up, so no buy runs out.",
        ),
        ("h2", "Checks"),
        (
            "list",
            [
                ("ok: " if c["ok"] else "FAILED: ") + c["what"] + (f" ({c['detail']})" if c["detail"] else "")
                for c in doc["checks"]
            ],
        ),
    ]
    return blocks


def response_time(doc: dict, image: str | None) -> list[tuple]:
    """Question 1: a table per operation, throughput and hits, the plot, the findings."""
    steps, clients = _steps(doc), doc["settings"]["clients"]
    modes = [mode for mode in MODE_TITLES if any(key[1] == mode for key in steps)]
    blocks = [
        ("h2", "1. Response time with and without the cache"),
        (
            "p",
            "Concurrent clients send requests back to back (each waits for its answer, then sends the next) "
            "for the step's duration. Without the cache is measured two ways. *Bypass*: reads carry "
            "`Cache-Control: no-cache`, so the same front end reads through to a replica and stores nothing; "
            "it runs right after the cached step in the same process, the fairest comparison for reads, but "
            "its buys still run with a cache that invalidates. *Off*: the front end restarted with "
            f"`cache_size = 0` (from a copy of the config, `{doc['cache_off_config']}`; its `/status` said "
            f"capacity {doc['cache_off']['capacity']}): no cache for reads or writes. Both were used. Bypass "
            "and off read every book from a replica alike; they ran minutes apart, so where their reads "
            "differ, the machine's load did (its 1-minute load average at the start of each step is in the "
            "throughput table).",
        ),
    ]
    for operation in OPERATIONS:
        rows = [
            [n, *(_triple(_figure(steps[(n, mode)]["operations"], operation)) for mode in modes)]
            for n in clients
            if all((n, mode) in steps for mode in modes)
        ]
        blocks += [
            ("h3", f"{operation}: latency p50 / p95 / p99 (ms)"),
            ("table", ["clients", *(MODE_TITLES[mode] for mode in modes)], rows),
        ]
    rows = []
    for n in clients:
        row = [n]
        for mode in modes:
            step = steps.get((n, mode))
            row.append("-" if step is None or not step["all"] else f"{step['all']['rps']:.0f}")
        on = steps.get((n, "on"))
        looked = on["counters"]["hits"] + on["counters"]["misses"] if on else 0
        row.append(f"{100 * on['counters']['hits'] / looked:.0f} %" if looked else "-")
        row.append(" / ".join(str(steps[(n, mode)].get("load_average", "-")) for mode in modes if (n, mode) in steps))
        rows.append(row)
    blocks += [
        ("h3", "throughput (requests/s, all operations), the cache's hit ratio, the machine's load"),
        (
            "table",
            ["clients", *(MODE_TITLES[mode] for mode in modes), "hits with the cache on", "load average"],
            rows,
        ),
    ]
    if image:
        blocks.append(("image", image, "latency against clients, cache on and off"))
    blocks += findings(steps, clients)
    return blocks


def findings(steps: dict, clients: list[int]) -> list[tuple]:
    """Sentences that compare the cache on and off at the fewest and the most clients."""
    lines = []
    for n in sorted({clients[0], clients[-1]}):
        on, off = steps.get((n, "on")), steps.get((n, "off"))
        if not on or not off:
            continue
        for operation in OPERATIONS:
            a, b = _figure(on["operations"], operation), _figure(off["operations"], operation)
            if a and b and a["p50"] > 0:
                lines.append(
                    f"{n} client{'s' if n > 1 else ''}, {operation}: median {ms(a['p50'])} ms with the cache, "
                    f"{ms(b['p50'])} ms without ({b['p50'] / a['p50']:.2f} times); p99 {ms(a['p99'])} ms "
                    f"against {ms(b['p99'])} ms."
                )
    return [("p", "What the figures say (cache on against `cache_size = 0`):"), ("list", lines)] if lines else []


def consistency(doc: dict, image: str | None) -> list[tuple]:
    """Question 2: writes with the cache on and off, the miss after an invalidation against a hit."""
    seen = doc["consistency"]
    rows = []
    for operation in ("buy", "update"):
        for mode in WRITE_TITLES:
            figures = _figure(seen[mode]["operations"], operation) if mode in seen else None
            if figures:
                rows.append(
                    [
                        operation,
                        WRITE_TITLES[mode],
                        figures["count"],
                        *(ms(figures[k]) for k in ("p50", "p95", "p99", "mean")),
                    ]
                )
    invalidation = seen["invalidation"]
    counters = invalidation["counters"]
    names = {
        "update": "update (the invalidation)",
        "miss": "lookup right after it (a miss)",
        "hit": "the same lookup again (a hit)",
    }
    lookups = [
        [names[key], figures["count"], *(ms(figures[k]) for k in ("p50", "p95", "p99", "mean"))]
        for key in ("update", "miss", "hit")
        if (figures := _figure(invalidation["operations"], key))
    ]
    blocks = [
        ("h2", "2. The cost of cache consistency"),
        (
            "p",
            "One client, one request at a time: a buy, then an update adding one copy of the same book (so "
            "the stock stays put), book after book; first with the cache on, then with `cache_size = 0`, then "
            "with the cache on again: the two cache-on runs bracket the other, so their spread is how much the "
            "machine drifted meanwhile. A "
            "write to the catalog makes its primary push `INVALIDATE` to every front end and wait for its "
            "`INVALIDATED` answer before it acknowledges (a front end answers whatever its `cache_size`, so "
            "both runs include that wait), and the front end drops the book's entries once the write returns.",
        ),
        ("table", ["operation", "cache", "requests", "p50 (ms)", "p95 (ms)", "p99 (ms)", "mean (ms)"], rows),
        (
            "p",
            f"Then {invalidation['cycles']} cycles of three requests on one book: an update, the lookup right "
            "after it, and the same lookup again. The front end counted, over those cycles: "
            f"{counters['hits']} hits, {counters['misses']} misses, {counters['invalidations']} invalidations "
            f"and {counters['refused_fills']} refused fills (a fill refused because an invalidation came "
            "after its read began).",
        ),
        ("table", ["request", "requests", "p50 (ms)", "p95 (ms)", "p99 (ms)", "mean (ms)"], lookups),
    ]
    return blocks + (
        [("image", image, "write latency with the cache on and off; a miss against a hit")] if image else []
    )


def faults(doc: dict, images: dict) -> list[tuple]:
    """Question 3: a row per kill, the checksums afterwards, a timeline per kill."""
    rows = []
    for f in doc["faults"]:
        before, after = f["view_before"], f["view_after"]
        views = (
            "-"
            if not before or not after
            else f"{before['view']} ({before['primary']}) -> {after['view']} ({after['primary']})"
        )
        rows.append(
            [
                f"{f['target'] or '?'} ({f['service']} {f['role']})",
                secs(f["detect_seconds"], 3),
                f"{f['failed']} of {f['requests']}",
                secs(f["start_seconds"]),
                secs(f["catchup_seconds"]),
                secs(f["restart_to_in_sync_seconds"]),
                views,
            ]
        )
    blocks = [
        ("h2", "3. Fault tolerance"),
        (
            "p",
            "Under load, `kill -9` of a replica (its pid from the pid file of `pygmy up`); it stays down, "
            "then starts again with the command `pygmy up` uses. *Detect*: from the kill to the first "
            "`/status` of the front end that shows a new view without it (looked at every 20 ms). *Failed*: "
            "client requests that got no answer or a 5xx, of those that overlapped the span from the kill to "
            "the rejoin. *Start*: from the restart to its first answer; *catch-up*: from then until the front "
            "end has it back in the in-sync set; *restart to in sync*: the two together.",
        ),
        (
            "table",
            [
                "killed",
                "detect (s)",
                "failed requests",
                "start (s)",
                "catch-up (s)",
                "restart to in sync (s)",
                "view (primary)",
            ],
            rows,
        ),
    ]
    lines = [
        f"{f['target']}: {', '.join(f'{k} {v}' for k, v in f['errors'].items())}" for f in doc["faults"] if f["failed"]
    ]
    lines += [f"{f['target']}: {f['error']}" for f in doc["faults"] if f["error"]]
    lines += [
        f"{f['target']}: rejoined after the load of its step had ended"
        for f in doc["faults"]
        if f["rejoined"] is not None and not f["rejoined_under_load"]
    ]
    if lines:
        blocks.append(("list", lines))
    sums = [
        [
            service,
            name,
            "no answer" if r is None else r["applied_seq"],
            "-" if r is None else f"`{r['checksum'][:16]}`",
            "yes" if seen["agree"] else "NO",
        ]
        for service, seen in doc["checksums"].items()
        for name, r in seen["replicas"].items()
    ]
    blocks += [
        ("p", "Afterwards, once quiet, each replica's `GET /status` (checksum: its first 16 hex digits):"),
        ("table", ["service", "replica", "applied_seq", "checksum", "agree"], sums),
    ]
    for f in doc["faults"]:
        image = images.get(f"{f['service']}-{f['role']}")
        if image:
            blocks.append(("image", image, f"kill -9 of the {f['service']} {f['role']}: each request and the events"))
    return blocks


def reproduce(doc: dict) -> list[tuple]:
    """How to run it again."""
    return [
        ("h2", "Run it again"),
        (
            "p",
            "Start a cluster with `pygmy up --config FILE`, then `pygmy evaluate --config FILE --out DIR "
            "--json` (a few minutes; `--quick` for a smoke test). It changes the store's data (buys, stock "
            "top-ups) and restarts the front end twice and three replicas once: run it on a test cluster.",
        ),
    ]


def blocks(doc: dict, images: dict) -> list[tuple]:
    """The whole report, from the document and the file names of its plots."""
    return [
        *about(doc),
        *response_time(doc, images.get("latency")),
        *consistency(doc, images.get("consistency")),
        *faults(doc, images),
        *reproduce(doc),
    ]
