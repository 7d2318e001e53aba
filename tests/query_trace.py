"""
Tracing the statements a store runs and checking their plans, for tests:
L{Tracer} records every statement a store's connection issues and explains
each one with SQLite's C{EXPLAIN QUERY PLAN}; L{assert_indexed} fails if a
plan walks a whole table or index (a C{SCAN}) or sorts every match (a
temporary B-tree), except a sort over the pending buys, which the partial
index C{buys_pending} bounds; L{growing} picks out those lines of a plan.
"""

from __future__ import annotations

import re

from tests.fakes import result

#: Statements that only set up or end a transaction, or write one row.
_PLANLESS = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|PRAGMA|INSERT\b(?!.*\bSELECT\b))", re.I | re.S)

#: What a plan may sort, by table: a temporary B-tree over these is bounded.
_BOUNDED_SORTS = {"buys"}


class Tracer:
    """Record the statements a store's connection runs."""

    def __init__(self, store):
        self.store = store
        self.statements: list[str] = []

    def _set(self, callback) -> None:
        result(self.store.pool.runWithConnection(lambda connection: connection.set_trace_callback(callback)))

    def __enter__(self) -> Tracer:
        self._set(self.statements.append)
        return self

    def __exit__(self, *exc) -> None:
        self._set(None)

    def plans(self) -> dict[str, list[str]]:
        """Each statement that has a plan, with the lines of its plan."""
        explained = {}
        for sql in self.statements:
            if _PLANLESS.match(sql) or sql in explained:
                continue
            explained[sql] = result(
                self.store.pool.runWithConnection(
                    lambda connection, sql=sql: [row[3] for row in connection.execute("EXPLAIN QUERY PLAN " + sql)]
                )
            )
        return explained


def growing(plan: list[str], sql: str) -> list[str]:
    """The lines of C{plan} that cost time in proportion to a table."""
    bad = []
    for line in plan:
        if re.match(r"SCAN (?!CONSTANT ROW)", line):
            bad.append(line)
        elif line.startswith("USE TEMP B-TREE") and not any(
            re.search(rf"\bFROM {table}\b", sql) for table in _BOUNDED_SORTS
        ):
            bad.append(line)
    return bad


def assert_indexed(tracer: Tracer) -> None:
    plans = tracer.plans()
    assert plans, "the operation ran no statement with a plan"
    problems = {sql: growing(plan, sql) for sql, plan in plans.items()}
    problems = {sql: lines for sql, lines in problems.items() if lines}
    assert not problems, "statements on a request path that walk a whole table:\n" + "\n".join(
        f"  {sql}\n    -> {'; '.join(lines)}" for sql, lines in problems.items()
    )
