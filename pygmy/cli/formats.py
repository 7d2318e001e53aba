"""
How the client commands show a reply: plain-text tables and aligned
fields (no optional dependency), or indented JSON for C{--json}.
"""

from __future__ import annotations

import json


def table(headers: list[str], rows: list[list], right: tuple[int, ...] = ()) -> str:
    """
    A plain-text table: a header line, a rule, one line per row; the
    columns whose index is in C{right} are right-aligned.
    """
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row):
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=False))]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule] + [line(row) for row in cells[1:]])


def fields(pairs: list[tuple[str, object]]) -> str:
    """C{key  value} lines, the values aligned."""
    width = max(len(k) for k, _ in pairs)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in pairs)


def format_search(body: dict) -> str:
    """The books of a search, or a line saying there are none."""
    items = body.get("items", [])
    if not items:
        return f'no books on "{body.get("topic")}"'
    found = table(["id", "title"], [[i["id"], i["title"]] for i in items], right=(0,))
    noun = "book" if len(items) == 1 else "books"
    return f'{found}\n{len(items)} {noun} on "{body.get("topic")}"'


def format_book(body: dict) -> str:
    """One book, a field per line."""
    return fields([(k, body.get(k)) for k in ("id", "title", "topic", "cost", "stock")])


def format_order(body: dict) -> str:
    """One order, a field per line."""
    placed = body["order"]
    return fields([("order", placed["id"]), ("book", placed["item_id"]), ("created", placed["created"])])


def format_list(body: dict) -> str:
    """Every book as a table."""
    rows = [[i["id"], i["title"], i["topic"], i["cost"], i["stock"]] for i in body.get("items", [])]
    return table(["id", "title", "topic", "cost", "stock"], rows, right=(0, 3, 4))


def _names(names) -> str:
    return ", ".join(names) if names else "-"


def describe_frontend(block: dict) -> str:
    """
    The C{frontend} block of C{/status} in words: C{2: follower, views
    managed by 1 (etcd)}, or C{frontend: manages the views (local)}.
    """
    name, role, leader = block.get("name"), block.get("role"), block.get("leader")
    where = f" ({block['coordinator']})" if block.get("coordinator") else ""
    if block.get("views_read") is False:
        where += ", not yet read the stored views (its view numbers say nothing)"
    if role == "leader":
        return f"{name}: manages the views{where}"
    manager = f"views managed by {leader}" if leader else "no front end manages the views now"
    return f"{name}: {role or 'role unknown'}, {manager}{where}"


def format_status(body: dict) -> str:
    """The views, the replicas, the cache, the balancer and which front end answered."""
    services = body.get("services", {})
    views = [
        [name, view.get("view"), view.get("primary") or "-", _names(view.get("backups")), _names(view.get("in_sync"))]
        for name, view in services.items()
    ]
    replicas = [
        [f"{name}:{replica}", "yes" if state.get("alive") else "no", state.get("state"), state.get("applied_seq")]
        for name, view in services.items()
        for replica, state in sorted(view.get("replicas", {}).items())
    ]
    parts = [
        table(["service", "view", "primary", "backups", "in sync"], views, right=(1,)),
        table(["replica", "alive", "state", "applied_seq"], replicas, right=(3,)),
    ]
    cache = body.get("cache")
    lines = []
    if cache:
        size = f"{cache.get('size')} of {cache.get('capacity')} entries"
        counters = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in cache.items() if k not in ("size", "capacity"))
        lines.append(("cache", f"{size}; {counters}" if counters else size))
    if "balancer" in body:
        lines.append(("balancer", body["balancer"]))
    if isinstance(body.get("frontend"), dict):
        lines.append(("front end", describe_frontend(body["frontend"])))
    if lines:
        parts.append(fields(lines))
    return "\n\n".join(parts)


def dump_json(body) -> str:
    """The reply as indented JSON, for C{--json}."""
    return json.dumps(body, indent=2, sort_keys=False)
