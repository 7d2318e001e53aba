"""
A replica's SQLite database: its tables plus the write log.

Both services store data the same way.  Every write is one SQLite
transaction that changes rows *and* appends an entry to the ``log`` table::

    seq         position in the log, 1, 2, 3 ... (the order ids of the
                order service are this number)
    view        the view the write was accepted in
    request_id  the caller's id for the write; the same id again replays the
                logged result instead of writing twice
    changes     JSON list of {"table": name, "row": {column: value}}, the
                resulting values of every row the write touched
    created     when the write was accepted, ISO-8601 UTC

A log entry therefore holds everything needed to replay the write on another
replica (``INSERT OR REPLACE`` of the resulting rows) without re-running its
logic, which is what replication and catch-up need.

All access goes through one :class:`~twisted.enterprise.adbapi.ConnectionPool`
with a single connection, so interactions run one at a time in submission
order and never block the reactor thread.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from twisted.application.service import Service
from twisted.enterprise import adbapi
from twisted.logger import Logger

SCHEMA_VERSION = 1

LOG_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    seq        INTEGER PRIMARY KEY,
    view       INTEGER NOT NULL,
    request_id TEXT UNIQUE,
    changes    TEXT NOT NULL,
    created    TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class Table:
    """
    A replicated table: its name, its columns and the ``CREATE`` statements.

    The first column is the integer primary key.
    """

    name: str
    columns: tuple[str, ...]
    schema: str


@dataclass(frozen=True)
class Write:
    """
    The outcome of a write: its log position and resulting rows.

    @ivar replayed: C{True} if the request id had been written before and
        this is the logged result of that earlier write.
    """

    seq: int
    changes: list
    replayed: bool = False

    @property
    def row(self) -> dict:
        """The first (usually only) row the write produced."""
        return self.changes[0]["row"]


def utc_timestamp(seconds: float) -> str:
    """Format a POSIX time as ISO-8601 UTC with milliseconds and a ``Z``."""
    moment = datetime.fromtimestamp(seconds, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def change(table: Table, row: dict) -> dict:
    """One element of a log entry's ``changes``."""
    return {"table": table.name, "row": row}


class Store(Service):
    """
    The database of one replica, as a service that closes its pool on stop.

    @param path: the SQLite file.
    @param tables: the replicated tables, in dump order.
    @param seed: called with a cursor once, when the database is created.
    @param reactor: runs the pool's threads and gives the time stamped on
        writes.
    """

    log = Logger()

    def __init__(
        self,
        path: Path,
        tables: tuple[Table, ...],
        seed: Callable[[sqlite3.Cursor], None] | None,
        reactor,
    ):
        self.path = Path(path)
        self.tables = tables
        self._seed = seed
        self._clock = reactor
        self.pool = adbapi.ConnectionPool(
            "sqlite3",
            str(self.path),
            check_same_thread=False,
            cp_min=1,
            cp_max=1,
            cp_noisy=False,
            cp_openfun=self._open,
            cp_reactor=reactor,
        )

    def _open(self, connection: sqlite3.Connection) -> None:
        """
        Prepare a new connection: pragmas first (outside any transaction),
        then the schema and seed data if the file is new.
        """
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA busy_timeout=5000")
        connection.execute("PRAGMA foreign_keys=ON")
        cursor = connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            # Not executescript(): it would COMMIT the BEGIN above first.
            for statement in _statements(
                "".join(table.schema for table in self.tables) + LOG_SCHEMA
            ):
                cursor.execute(statement)
            found = cursor.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'"
            ).fetchone()
            if found is None:
                cursor.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [("schema_version", SCHEMA_VERSION), ("applied_seq", 0), ("view", 0)],
                )
                if self._seed is not None:
                    self._seed(cursor)
            elif found[0] != SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path}: schema version {found[0]}, expected {SCHEMA_VERSION}"
                )
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise

    def startService(self):
        super().startService()
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def stopService(self):
        super().stopService()
        self.pool.close()

    # Reads

    def read(self, query: Callable, *args):
        """
        Run ``query(cursor, *args)`` in the database thread.

        @return: a Deferred firing with its result.
        """
        return self.pool.runInteraction(query, *args)

    def status(self):
        """
        @return: a Deferred firing with ``(applied_seq, view, checksum)``.
        """
        return self.read(self._status)

    def _status(self, txn):
        rows = self._rows(txn)
        digest = hashlib.sha256(_canonical(rows)).hexdigest()
        return _meta(txn, "applied_seq"), _meta(txn, "view"), digest

    def dump(self):
        """
        @return: a Deferred firing with ``{"applied_seq": n, "rows": [...]}``
            for the single table, or ``"tables": {...}`` when there are more.
        """
        return self.read(self._dump)

    def _dump(self, txn):
        rows = self._rows(txn)
        body = {"applied_seq": _meta(txn, "applied_seq")}
        if len(self.tables) == 1:
            body["rows"] = rows[self.tables[0].name]
        else:
            body["tables"] = rows
        return body

    def _rows(self, txn) -> dict:
        return {
            table.name: [
                dict(zip(table.columns, values))
                for values in txn.execute(
                    f"SELECT {', '.join(table.columns)} FROM {table.name} "
                    f"ORDER BY {table.columns[0]}"
                )
            ]
            for table in self.tables
        }

    # Writes

    def write(self, request_id: str | None, mutate: Callable, *args):
        """
        Run ``mutate(cursor, seq, created, *args)`` and log its result, in one
        transaction.

        ``mutate`` changes rows and returns the ``changes`` list of the log
        entry (see :func:`change`); raising rolls everything back.  If
        ``request_id`` is already in the log, nothing runs and the logged
        result is returned with ``replayed=True``.

        @return: a Deferred firing with a :class:`Write`.
        """
        created = utc_timestamp(self._clock.seconds())
        return self.pool.runInteraction(
            self._write, request_id, created, mutate, args
        )

    def _write(self, txn, request_id, created, mutate, args) -> Write:
        if request_id is not None:
            found = txn.execute(
                "SELECT seq, changes FROM log WHERE request_id = ?", (request_id,)
            ).fetchone()
            if found is not None:
                return Write(found[0], json.loads(found[1]), replayed=True)
        seq = _meta(txn, "applied_seq") + 1
        changes = mutate(txn, seq, created, *args)
        txn.execute(
            "INSERT INTO log (seq, view, request_id, changes, created) "
            "VALUES (?, ?, ?, ?, ?)",
            (seq, _meta(txn, "view"), request_id, json.dumps(changes), created),
        )
        txn.execute("UPDATE meta SET value = ? WHERE key = 'applied_seq'", (seq,))
        return Write(seq, changes)


def _meta(txn, key: str) -> int:
    return txn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]


def _canonical(rows: dict) -> bytes:
    return json.dumps(rows, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _statements(script: str):
    for statement in script.split(";"):
        if statement.strip():
            yield statement
