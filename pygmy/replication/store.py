"""
A replica's SQLite database: its tables plus the write log.

Both services store data the same way.  Every write is one SQLite
transaction that changes rows *and* appends an entry to the C{log} table::

    seq         position in the log, 1, 2, 3 ... (the order ids of the
                order service are this number)
    view        the view the write was accepted in
    request_id  the caller's id for the write; the same id again replays the
                logged result instead of writing twice
    changes     JSON list of {"table": name, "row": {column: value}}, the
                resulting values of every row the write touched
    created     when the write was accepted, ISO-8601 UTC

A log entry therefore holds everything needed to replay the write on another
replica (C{INSERT OR REPLACE} of the resulting rows) without re-running its
logic, which is what replication and catch-up need.

All access goes through one L{ConnectionPool<twisted.enterprise.adbapi.ConnectionPool>}
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
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from pygmy.errors import Conflict, Diverged

SCHEMA_VERSION = 2

#: Statements that take a database from version N to N + 1.
MIGRATIONS = {
    1: ["ALTER TABLE log ADD COLUMN fingerprint TEXT"],
}

LOG_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    seq        INTEGER PRIMARY KEY,
    view       INTEGER NOT NULL,
    request_id TEXT UNIQUE,
    changes    TEXT NOT NULL,
    created    TEXT NOT NULL,
    fingerprint TEXT
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class Table:
    """
    A replicated table: its name, its columns and the C{CREATE} statements.

    The first column is the integer primary key.
    """

    name: str
    columns: tuple[str, ...]
    schema: str


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
        self.view = 0
        self._queued: list = []
        self._committing = False
        self._scheduled = False
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
            for statement in _statements("".join(table.schema for table in self.tables) + LOG_SCHEMA):
                cursor.execute(statement)
            found = cursor.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if found is None:
                cursor.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [("schema_version", SCHEMA_VERSION), ("applied_seq", 0), ("last_view", 0)],
                )
                if self._seed is not None:
                    self._seed(cursor)
            elif found[0] > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path}: schema version {found[0]} is newer than this Pygmy's ({SCHEMA_VERSION})"
                )
            else:
                for version in range(found[0], SCHEMA_VERSION):
                    for statement in MIGRATIONS[version]:
                        cursor.execute(statement)
                cursor.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION,))
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
        Run C{query(cursor, *args)} in the database thread.

        @return: a Deferred firing with its result.
        """
        return self.pool.runInteraction(query, *args)

    def status(self):
        """
        @return: a Deferred firing with C{(applied_seq, last_view, checksum)}:
            how far the log goes, the view of its last entry, and a digest of
            the tables.
        """
        return self.read(self._status)

    def _status(self, txn):
        rows = self._rows(txn)
        digest = hashlib.sha256(_canonical(rows)).hexdigest()
        return _meta(txn, "applied_seq"), _meta(txn, "last_view"), digest

    def dump(self):
        """
        @return: a Deferred firing with C{{"applied_seq": n, "rows": [...]}}
            for the single table, or C{"tables": {...}} when there are more.
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
                    f"SELECT {', '.join(table.columns)} FROM {table.name} ORDER BY {table.columns[0]}"
                )
            ]
            for table in self.tables
        }

    # Writes

    def write(self, request_id: str | None, mutate: Callable, *args, fingerprint: str | None = None):
        """
        Run C{mutate(cursor, seq, created, *args)} and log its result, as
        one atomic write.

        C{mutate} changes rows and returns the C{changes} list of the log
        entry (see L{change}); raising undoes the write.  If
        C{request_id} is already in the log, nothing runs and the logged
        result is returned with C{replayed=True} -- unless the logged write
        had another C{fingerprint} (a digest of what was asked), which
        fails with L{Conflict}: the id was reused for a different request.

        Writes that arrive while others are being committed are committed
        together, in arrival order, in one transaction with a savepoint
        each (group commit): one trip to the database thread for many
        writes, which is what bounds throughput under load.

        @return: a Deferred firing with a L{Write}.
        """
        d = Deferred()
        created = utc_timestamp(self._clock.seconds())
        self._queued.append((request_id, fingerprint, created, self.view, mutate, args, d))
        self._schedule_commit()
        return d

    def _schedule_commit(self) -> None:
        """
        Commit what is queued at the end of this reactor turn, so that
        writes started together (a batch of calls) share a transaction.
        """
        if self._committing or self._scheduled or not self._queued:
            return
        self._scheduled = True
        self._clock.callLater(0, self._commit_queued)

    def _commit_queued(self) -> None:
        self._scheduled = False
        batch, self._queued = self._queued, []
        self._committing = True
        work = [item[:-1] for item in batch]
        self.pool.runInteraction(self._write_batch, work).addBoth(self._committed, batch)

    def _committed(self, outcomes, batch) -> None:
        self._committing = False
        if isinstance(outcomes, Failure):
            outcomes = [(False, outcomes)] * len(batch)
        for (ok, result), item in zip(outcomes, batch):
            d = item[-1]
            if ok:
                d.callback(result)
            else:
                d.errback(result)
        self._schedule_commit()

    def _write_batch(self, txn, work) -> list:
        txn.execute("BEGIN IMMEDIATE")
        outcomes = []
        for request_id, fingerprint, created, view, mutate, args in work:
            txn.execute("SAVEPOINT write")
            try:
                outcome = (True, self._write(txn, request_id, fingerprint, created, view, mutate, args))
            except Exception:
                txn.execute("ROLLBACK TO write")
                outcome = (False, Failure())
            txn.execute("RELEASE write")
            outcomes.append(outcome)
        return outcomes

    def _write(self, txn, request_id, fingerprint, created, view, mutate, args) -> Write:
        if request_id is not None:
            found = txn.execute(f"SELECT {_ENTRY} FROM log WHERE request_id = ?", (request_id,)).fetchone()
            if found is not None:
                entry = _entry(found)
                if fingerprint != entry["fingerprint"]:
                    raise Conflict("This request id was already used for a different request.")
                return Write(entry, replayed=True)
        seq = _meta(txn, "applied_seq") + 1
        changes = mutate(txn, seq, created, *args)
        entry = {
            "seq": seq,
            "view": view,
            "request_id": request_id,
            "changes": changes,
            "created": created,
            "fingerprint": fingerprint,
        }
        _append(txn, entry)
        return Write(entry)

    # Replication

    def apply(self, entries: list[dict]):
        """
        Apply log entries received from the primary, strictly in C{seq} order.

        Entries this replica already has are checked, not applied again; the
        first entry past a gap stops the batch.

        @return: a Deferred firing with C{(applied_seq, last_view)} after the
            batch; fails with L{Diverged} if an entry contradicts the log.
        """
        return self.pool.runInteraction(self._apply, entries)

    def _apply(self, txn, entries):
        applied = _meta(txn, "applied_seq")
        for entry in entries:
            seq = entry["seq"]
            if seq <= applied:
                found = txn.execute("SELECT view FROM log WHERE seq = ?", (seq,)).fetchone()
                if found is not None and found[0] != entry["view"]:
                    raise Diverged(f"entry {seq} is from view {found[0]}, not {entry['view']}")
                continue
            if seq != applied + 1:
                break
            for changed in entry["changes"]:
                table = self._table(changed["table"])
                row = changed["row"]
                txn.execute(
                    f"INSERT OR REPLACE INTO {table.name} ({', '.join(table.columns)}) "
                    f"VALUES ({', '.join('?' for _ in table.columns)})",
                    tuple(row[column] for column in table.columns),
                )
            _append(txn, entry)
            applied = seq
        return applied, _meta(txn, "last_view")

    def _table(self, name: str) -> Table:
        for table in self.tables:
            if table.name == name:
                return table
        raise Diverged(f"unknown table {name!r}")

    def entries_after(self, seq: int, view: int, limit: int):
        """
        The log after C{seq}, if this log has the entry C{seq} of C{view}.

        @return: a Deferred firing with C{(entries, head)}, where C{entries}
            is C{None} when the caller's log does not match ours (it diverged,
            or we compacted past it) and it needs a snapshot.
        """
        return self.read(self._entries_after, seq, view, limit)

    def _entries_after(self, txn, seq, view, limit):
        head = _meta(txn, "applied_seq")
        if not _matches(txn, seq, view):
            return None, head
        rows = txn.execute(f"SELECT {_ENTRY} FROM log WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)).fetchall()
        entries = [_entry(row) for row in rows]
        if entries and entries[0]["seq"] != seq + 1:
            return None, head
        return entries, head

    def matches(self, seq: int, view: int):
        """
        @return: a Deferred firing with whether a log that ends at entry
            C{seq} of C{view} is a prefix of this one (as far as we can
            tell: an entry we compacted away counts as a mismatch).
        """
        return self.read(_matches, seq, view)

    def read_log(self, after: int, limit: int):
        """
        @return: a Deferred firing with up to C{limit} log entries after
            C{after}, in order (fewer, or a gap, where compaction took them).
        """
        return self.read(self._read_log, after, limit)

    @staticmethod
    def _read_log(txn, after, limit):
        rows = txn.execute(f"SELECT {_ENTRY} FROM log WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)).fetchall()
        return [_entry(row) for row in rows]

    def snapshot(self):
        """
        @return: a Deferred firing with every table's rows and where the log
            stands: C{{"applied_seq", "last_view", "tables": {name: rows}}}.
        """
        return self.read(self._snapshot)

    def _snapshot(self, txn):
        return {
            "applied_seq": _meta(txn, "applied_seq"),
            "last_view": _meta(txn, "last_view"),
            "tables": self._rows(txn),
        }

    def install(self, snapshot: dict):
        """
        Replace every table and the log with C{snapshot}, in one transaction.

        @return: a Deferred firing with C{(applied_seq, last_view)}.
        """
        return self.pool.runInteraction(self._install, snapshot)

    def _install(self, txn, snapshot):
        txn.execute("DELETE FROM log")
        for table in self.tables:
            txn.execute(f"DELETE FROM {table.name}")
            txn.executemany(
                f"INSERT INTO {table.name} ({', '.join(table.columns)}) "
                f"VALUES ({', '.join('?' for _ in table.columns)})",
                [tuple(row[c] for c in table.columns) for row in snapshot["tables"][table.name]],
            )
        _set_meta(txn, "applied_seq", snapshot["applied_seq"])
        _set_meta(txn, "last_view", snapshot["last_view"])
        return snapshot["applied_seq"], snapshot["last_view"]

    def compact(self, keep: int, below: int):
        """
        Delete log entries, keeping the last C{keep} and every entry above
        C{below} (what a backup may still need).

        @return: a Deferred firing with the number of entries deleted.
        """
        return self.pool.runInteraction(self._compact, keep, below)

    def _compact(self, txn, keep, below):
        limit = min(_meta(txn, "applied_seq") - keep, below)
        return txn.execute("DELETE FROM log WHERE seq <= ?", (limit,)).rowcount


_ENTRY = "seq, view, request_id, changes, created, fingerprint"


def _entry(row) -> dict:
    seq, view, request_id, changes, created, fingerprint = row
    return {
        "seq": seq,
        "view": view,
        "request_id": request_id,
        "changes": json.loads(changes),
        "created": created,
        "fingerprint": fingerprint,
    }


def _append(txn, entry: dict) -> None:
    """Add C{entry} to the log and move the applied position to it."""
    txn.execute(
        f"INSERT INTO log ({_ENTRY}) VALUES (?, ?, ?, ?, ?, ?)",
        (
            entry["seq"],
            entry["view"],
            entry["request_id"],
            json.dumps(entry["changes"]),
            entry["created"],
            entry.get("fingerprint"),
        ),
    )
    _set_meta(txn, "applied_seq", entry["seq"])
    _set_meta(txn, "last_view", entry["view"])


def _matches(txn, seq: int, view: int) -> bool:
    head = _meta(txn, "applied_seq")
    if seq > head:
        return False
    if seq == head:
        return view == _meta(txn, "last_view")
    if seq == 0:
        return txn.execute("SELECT seq FROM log WHERE seq = 1").fetchone() is not None
    found = txn.execute("SELECT view FROM log WHERE seq = ?", (seq,)).fetchone()
    return found is not None and found[0] == view


def _meta(txn, key: str) -> int:
    return txn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]


def _set_meta(txn, key: str, value: int) -> None:
    txn.execute("UPDATE meta SET value = ? WHERE key = ?", (value, key))


def _canonical(rows: dict) -> bytes:
    return json.dumps(rows, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _statements(script: str):
    for statement in script.split(";"):
        if statement.strip():
            yield statement
