"""
How a rebuilding replica installs a snapshot streamed from its primary
(the records of L{pygmy.replication.snapshot}), a page at a time.

Each record is one transaction, so neither end holds more than a page:

 1. C{snapshot}: mark C{installing} in C{meta}, then empty the tables, the
    log, the requests and the digests, and set the log's position to 0;
 2. C{page} and C{requests} records: insert the rows (and count their hashes
    into the digest, read back as stored), remember the requests;
 3. C{log}: the rows are complete up to the fuzziness of the copy; the
    log's position becomes the copy's start C{S};
 4. C{entries}: applied like any entries from the primary (rows, digest,
    log, requests), which brings every row to where it stood at C{H};
 5. C{end}: check that the log reached C{H}, and clear C{installing}.

Until the last step the install is I{in progress}: the digest always
equals a recount of the rows (every step keeps it), but the rows are a
mix of moments, so the replica claims nothing of them.  Its node stays
C{recovering}, never enters a view, applies no forwarded entry (the store
refuses while C{meta} says C{installing}), and a replica that restarts
with C{installing} still set (a C{kill -9} mid-install) installs a fresh
snapshot instead of catching up from its partial log.  A record out of
this order, or a stream that breaks off, leaves it so until the next
install begins again from step 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pygmy.errors import Diverged
from pygmy.replication import digest
from pygmy.replication.writelog import apply_entries, get_meta, remember_request, set_head, set_installing

if TYPE_CHECKING:
    from pygmy.replication.store import Store
    from pygmy.replication.tables import Table


def _begin(txn, tables: tuple[Table, ...]) -> None:
    set_installing(txn, True)
    txn.execute("DELETE FROM log")
    txn.execute("DELETE FROM requests")
    for table in tables:
        txn.execute(f"DELETE FROM {table.name}")
    txn.execute("DELETE FROM row_hashes")
    txn.execute("DELETE FROM digests")
    set_head(txn, 0, 0)


def _rows(txn, table: Table, rows: list[dict]) -> None:
    """
    Insert a page of C{table} (keys ascending, above every key inserted so
    far) and count it, read back by its key range as stored.
    """
    key = table.columns[0]
    table.put(txn, rows)
    stored = txn.execute(
        f"SELECT {', '.join(table.columns)} FROM {table.name} WHERE {key} >= ? AND {key} <= ? ORDER BY {key}",
        (rows[0][key], rows[-1][key]),
    ).fetchall()
    if len(stored) != len(rows):
        raise Diverged(f"a snapshot page of {table.name} overlaps another, or its keys are out of order")
    digest.add(txn, table, [dict(zip(table.columns, values, strict=True)) for values in stored])


def _requests(txn, entries: list[dict]) -> None:
    for entry in entries:
        remember_request(txn, entry)


def _entries(txn, tables: tuple[Table, ...], entries: list[dict]) -> tuple[int, int]:
    applied, view = apply_entries(txn, tables, entries)
    if applied != entries[-1]["seq"]:
        raise Diverged(f"the snapshot's log entries stop at {applied}, short of {entries[-1]['seq']}")
    return applied, view


def _end(txn, seq: int, view: int) -> tuple[int, int]:
    applied, last_view = get_meta(txn, "applied_seq"), get_meta(txn, "last_view")
    if (applied, last_view) != (seq, view):
        raise Diverged(f"the snapshot ended at {seq} of view {view}, but the log here is at {applied} of {last_view}")
    set_installing(txn, False)
    return applied, last_view


class Install:
    """
    One install, fed the snapshot's records in order by L{record}.

    @param store: the replica's L{Store<pygmy.replication.store.Store>}.
    @param source: who sends the snapshot, for messages.
    @ivar position: C{(applied_seq, last_view)} once the install is
        complete, else C{None}.
    """

    def __init__(self, store: Store, source: str):
        self.store = store
        self.source = source
        self.position: tuple[int, int] | None = None
        self._tables = {table.name: table for table in store.tables}
        self._state = "start"
        self._start: tuple[int, int] = (0, 0)
        self._last: dict[str, object] = {}

    def record(self, record):
        """
        Install one record of the stream.

        @return: a Deferred that fires once it is committed.
        @raise Diverged: a record this install does not expect now.
        """
        if not isinstance(record, dict) or len(record) != 1:
            raise self._unexpected("a record that is not an object of one key")
        ((kind, body),) = record.items()
        steps = {
            "snapshot": self._on_snapshot,
            "page": self._on_page,
            "requests": self._on_requests,
            "log": self._on_log,
            "entries": self._on_entries,
            "end": self._on_end,
        }
        if kind not in steps:
            raise self._unexpected(f"a record of kind {kind!r}")
        return steps[kind](body)

    def _unexpected(self, what: str) -> Diverged:
        return Diverged(f"the snapshot from {self.source} sent {what} while the install was at {self._state!r}")

    def _expect(self, body, states: tuple[str, ...], kind: str, shape: type) -> None:
        if self._state not in states:
            raise self._unexpected(f"a {kind!r} record")
        if not isinstance(body, shape) or (shape is list and not body):
            raise self._unexpected(f"a malformed {kind!r} record")

    def _run(self, step, *args):
        return self.store.pool.runInteraction(step, *args)

    def _on_snapshot(self, body):
        self._expect(body, ("start",), "snapshot", dict)
        self._start = (_count(body, "applied_seq"), _count(body, "last_view"))
        self._state = "rows"
        return self._run(_begin, self.store.tables)

    def _on_page(self, body):
        self._expect(body, ("rows",), "page", dict)
        table, rows = self._tables.get(body.get("table")), body.get("rows")
        if table is None:
            raise self._unexpected(f"a page of an unknown table {body.get('table')!r}")
        if not isinstance(rows, list) or not rows:
            raise self._unexpected("a page without rows")
        self._last[table.name] = self._check_keys(table, rows)
        return self._run(_rows, table, rows)

    def _check_keys(self, table: Table, rows: list) -> object:
        """
        The last key of C{rows}, a page of C{table}, whose keys must ascend
        from above the last page's (so pages never overlap, and a page's key
        range holds its rows alone: see L{_rows}).
        """
        key = table.columns[0]
        if not all(isinstance(row, dict) and key in row for row in rows):
            raise self._unexpected(f"a page of {table.name} with rows that are not rows")
        keys = [row[key] for row in rows]
        last = self._last.get(table.name)
        try:
            ascending = all(a < b for a, b in zip(keys, keys[1:], strict=False)) and (last is None or last < keys[0])
        except TypeError:
            ascending = False
        if not ascending:
            raise self._unexpected(f"a page of {table.name} whose keys do not follow the last page's, in order")
        return keys[-1]

    def _on_requests(self, body):
        self._expect(body, ("rows",), "requests", list)
        return self._run(_requests, body)

    def _on_log(self, body):
        self._expect(body, ("rows",), "log", dict)
        if body.get("after") != self._start[0]:
            raise self._unexpected("a log that does not start where the copy did")
        self._state = "log"
        return self._run(set_head, *self._start)

    def _on_entries(self, body):
        self._expect(body, ("log",), "entries", list)
        return self._run(_entries, self.store.tables, body)

    def _on_end(self, body):
        self._expect(body, ("log",), "end", dict)
        self._state = "ending"
        d = self._run(_end, _count(body, "applied_seq"), _count(body, "last_view"))
        return d.addCallback(self._ended)

    def _ended(self, position):
        self._state = "done"
        self.position = tuple(position)
        return position


def _count(body: dict, name: str) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise Diverged(f"the snapshot's {name} is not a non-negative integer")
    return value
