"""
What a replicated table is (L{Table}, with its L{Derived} columns), what a
write returns (L{Write}), and the small pieces every write is made of: its
time stamp, the fingerprint of what it asked, and one changed row of its log
entry.  L{pygmy.replication.store} re-exports them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable


@dataclass(frozen=True)
class Derived:
    """
    A column a replica computes from a row's other columns, for an index
    (the catalog's C{topic_key}): stored and indexed, but no part of the
    row anywhere else -- not in a dump, a snapshot, a log entry or the
    digest.  L{Table.put} writes it, so every replica computes it for
    itself, whichever way the row arrives; the file gets the column and its
    index (C{<table>_<column>}) at open (L{pygmy.replication.database}).

    @ivar name: the column.
    @ivar compute: the row (C{{column: value}}) -> the column's value.
    @ivar declaration: its type and constraints, as C{ALTER TABLE ... ADD
        COLUMN} takes them (so a C{NOT NULL} needs a default).
    """

    name: str
    compute: Callable[[dict], object]
    declaration: str = "TEXT NOT NULL DEFAULT ''"


@dataclass(frozen=True)
class Table:
    """
    A replicated table: its name, its columns and the C{CREATE} statements.

    The first column is the integer primary key.  The statements say
    C{IF NOT EXISTS}: they run at every open of the database.  The
    L{Derived} columns are not in C{columns} (nor in C{schema}): they are
    added to the file, and written with every row, apart.
    """

    name: str
    columns: tuple[str, ...]
    schema: str
    derived: tuple[Derived, ...] = ()

    def rows(self, txn) -> list[dict]:
        """Every row, as C{{column: value}}, ordered by the primary key."""
        query = f"SELECT {', '.join(self.columns)} FROM {self.name} ORDER BY {self.columns[0]}"
        return [dict(zip(self.columns, values, strict=True)) for values in txn.execute(query)]

    def put(self, txn, rows: Iterable[dict], replace: bool = False) -> None:
        """
        Insert C{rows} (C{{column: value}}), with their L{Derived} columns;
        with C{replace}, over rows of the same key.
        """
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        names = self.columns + tuple(column.name for column in self.derived)
        txn.executemany(
            f"{verb} INTO {self.name} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",
            [
                tuple(row[column] for column in self.columns) + tuple(column.compute(row) for column in self.derived)
                for row in rows
            ],
        )


@dataclass(frozen=True)
class Write:
    """
    The outcome of a write: its log entry.

    @ivar entry: the log entry as replicas exchange it:
        C{{"seq", "view", "request_id", "changes", "created"}}.
    @ivar replayed: C{True} if the request id had been written before and
        this is the logged result of that earlier write.
    """

    entry: dict
    replayed: bool = False

    @property
    def seq(self) -> int:
        """The entry's position in the log."""
        return self.entry["seq"]

    @property
    def row(self) -> dict:
        """The first (usually only) row the write produced."""
        return self.entry["changes"][0]["row"]


def utc_timestamp(seconds: float) -> str:
    """Format a POSIX time as ISO-8601 UTC with milliseconds and a C{Z}."""
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def fingerprint_of(*request) -> str:
    """A short digest of what a write asks for, to tell a replay from a reuse."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def change(table: Table, row: dict) -> dict:
    """One element of a log entry's C{changes}."""
    return {"table": table.name, "row": row}
