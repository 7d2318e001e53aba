"""
What a replica reads for another in bounded pages: the snapshot a
rebuilding replica installs (C{GET /replication/snapshot}), and the dump
(C{GET /admin/dump}).  Neither ever holds more than one page: each page is
one short interaction (at most L{PAGE_ROWS} rows or about L{PAGE_BYTES}
bytes, by key), written out before the next is read, at the pace the
reader takes them (L{pygmy.net.stream}).

The snapshot stream is one JSON record per line::

    {"snapshot": {"applied_seq": S, "last_view": V}}   where the log stood as the copy began
    {"page": {"table": name, "rows": [row, ...]}}     pages of each table, by key
    {"requests": [entry, ...]}                        pages of the requests table
    {"log": {"after": S, "until": H}}                 the rows are done; the log follows
    {"entries": [entry, ...]}                         pages of the log entries S+1 .. H
    {"end": {"applied_seq": H, "last_view": VH}}      the copy is complete

B{How the pages agree while the primary goes on writing} (a fuzzy copy
and a replay, as C{pg_basebackup} and the WAL): the pages are read in
separate short interactions, between which writes commit, so each row is
copied as it stood at some moment between the start (log at C{S}) and the
end of the rows (log at C{H}).  The copy then sends the log entries
C{S+1 .. H}, which the replica applies over the copied rows.  An entry
carries the resulting values of every row it wrote, and rows are never
deleted, so after the replay each row is as it was at C{H}:

 - a row some entry in C{S+1 .. H} wrote takes the value of the last such
   entry, its value at C{H}, whatever was copied;
 - a row none of them wrote had one value from C{S} to C{H}, the one copied:
   it existed at C{S}, so its key's page, read by key range at some moment
   in between, held it.

The log entries C{S+1 ..} must still be there when the copy reads them:
the copy I{pins} C{S} (L{Pins<pygmy.replication.writelog.Pins>}) in the
interaction that reads it, and compaction keeps the lowest pinned entry
and every later one until the copy is over, however it ends.  A complete copy moves
its pin to C{H} and keeps it a little longer (C{linger}), for the replica's
catch-up from the log after C{H}.  Rows read as the log grows are the primary's ordinary
reads between write batches, so writes never wait for a copy longer than
one page.

The dump is read the same way (but replays nothing: its reader is an
operator or a test): exact on a replica that takes no writes meanwhile,
which is when the invariants' checks read it; under writes, its
C{applied_seq} is where the log stood as the dump began, and a row read
later may be newer.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from twisted.logger import Logger

from pygmy.errors import Diverged
from pygmy.net.web import json_bytes
from pygmy.replication.writelog import ENTRY_COLUMNS, Pins, decode_entry, get_meta

if TYPE_CHECKING:
    from pygmy.replication.store import Store
    from pygmy.replication.tables import Table

#: The most rows (or requests, or log entries) in one page.
PAGE_ROWS = 1000
#: A page ends at the row that takes it past this many bytes (one row at least).
PAGE_BYTES = 1 << 20

#: The content type of the snapshot stream: JSON records, one per line.
NDJSON = b"application/x-ndjson"

log = Logger()


def record(value: dict) -> bytes:
    """One line of the snapshot stream."""
    return json_bytes(value) + b"\n"


def _size(values) -> int:
    return sum(len(value) if isinstance(value, str) else 8 for value in values) + 4 * len(values)


class Page(list):
    """
    One page of rows, and whether it was cut short (by the row limit or the
    byte budget): if not, nothing follows it.
    """

    full = False

    @classmethod
    def before_first(cls) -> Page:
        """An empty page that the first page follows."""
        page = cls()
        page.full = True
        return page


def _bounded(cursor, limit: int, budget: int, make) -> Page:
    """The rows of C{cursor}, through C{make}, up to C{limit} or the one that takes them past C{budget} bytes."""
    page, used = Page(), 0
    for values in cursor:
        page.append(make(values))
        used += _size(values)
        if used >= budget:
            page.full = True
            break
    page.full = page.full or len(page) >= limit
    return page


def read_rows(txn, table: Table, after, limit: int, budget: int = PAGE_BYTES) -> Page:
    """
    One page of C{table}: the rows whose key is above C{after} (every key,
    for C{None}), by key, as C{{column: value}}.
    """
    select = f"SELECT {', '.join(table.columns)} FROM {table.name}"
    key = table.columns[0]
    if after is None:
        cursor = txn.execute(f"{select} ORDER BY {key} LIMIT ?", (limit,))
    else:
        cursor = txn.execute(f"{select} WHERE {key} > ? ORDER BY {key} LIMIT ?", (after, limit))
    return _bounded(cursor, limit, budget, lambda values: dict(zip(table.columns, values, strict=True)))


def read_requests(txn, after: str | None, limit: int, budget: int = PAGE_BYTES) -> Page:
    """One page of the C{requests} table: C{(request_id, entry)} by request id, above C{after}."""
    if after is None:
        cursor = txn.execute("SELECT request_id, entry FROM requests ORDER BY request_id LIMIT ?", (limit,))
    else:
        cursor = txn.execute(
            "SELECT request_id, entry FROM requests WHERE request_id > ? ORDER BY request_id LIMIT ?", (after, limit)
        )
    return _bounded(cursor, limit, budget, lambda values: (values[0], json.loads(values[1])))


def read_entries(txn, after: int, until: int, limit: int, budget: int = PAGE_BYTES) -> list[dict]:
    """
    One page of the log entries C{after+1 .. until}, in order.

    @raise Diverged: the log does not hold C{after + 1} (it was compacted
        or replaced meanwhile: the copy cannot be completed).
    """
    cursor = txn.execute(
        f"SELECT {ENTRY_COLUMNS} FROM log WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?", (after, until, limit)
    )
    entries = _bounded(cursor, limit, budget, decode_entry)
    if after < until and (not entries or entries[0]["seq"] != after + 1):
        raise Diverged(f"the log no longer holds entry {after + 1}; the snapshot cannot be completed")
    return entries


def _head(txn) -> tuple[int, int]:
    return get_meta(txn, "applied_seq"), get_meta(txn, "last_view")


def _begin(txn, pins: Pins) -> tuple[int, int, int]:
    seq, view = _head(txn)
    return pins.hold(seq), seq, view


def _release(txn, pins: Pins, token: int) -> None:
    pins.release(token)


def _move(txn, pins: Pins, token: int, seq: int) -> None:
    pins.move(token, seq)


async def copy(
    store: Store, send, rows: int | None = None, budget: int | None = None, clock=None, linger: float = 0.0
) -> None:
    """
    Send C{store}'s snapshot, record by record (the stream above), to
    C{send}: a coroutine function taking bytes, awaited before the next
    page is read.

    @param rows: the most rows a page holds (L{PAGE_ROWS} by default).
    @param budget: the bytes after which a page ends (L{PAGE_BYTES} by default).
    @param clock: with C{linger}, an
        L{IReactorTime<twisted.internet.interfaces.IReactorTime>}: a copy
        that is complete keeps its pin at its end C{H} that many seconds
        more, so that the replica, which asks for the log after C{H} once it
        has installed the last pages, finds it there.  A copy that fails
        releases its pin at once.
    """
    rows, budget = rows or PAGE_ROWS, budget or PAGE_BYTES
    token, seq, view = await store.read(_begin, store.pins)
    complete = False
    try:
        await send(record({"snapshot": {"applied_seq": seq, "last_view": view}}))
        for table in store.tables:
            page = Page.before_first()
            while page.full:
                page = await store.read(read_rows, table, page[-1][table.columns[0]] if page else None, rows, budget)
                if page:
                    await send(record({"page": {"table": table.name, "rows": page}}))
        page = Page.before_first()
        while page.full:
            page = await store.read(read_requests, page[-1][0] if page else None, rows, budget)
            if page:
                await send(record({"requests": [entry for _, entry in page]}))
        until, last_view = await store.read(_head)
        await send(record({"log": {"after": seq, "until": until}}))
        after = seq
        while after < until:
            page = await store.read(read_entries, after, until, rows, budget)
            await send(record({"entries": page}))
            after = page[-1]["seq"]
        await store.read(_move, store.pins, token, until)
        await send(record({"end": {"applied_seq": until, "last_view": last_view}}))
        complete = True
    finally:
        if complete and clock is not None and linger > 0:
            clock.callLater(linger, _release_later, store, token)
        else:
            _release_later(store, token)


def _release_later(store: Store, token: int) -> None:
    store.read(_release, store.pins, token).addErrback(lambda f: log.failure("releasing a snapshot's pin", f))


def _first_page(txn, table: Table, rows: int, budget: int):
    return get_meta(txn, "applied_seq"), read_rows(txn, table, None, rows, budget)


async def dump(store: Store, send, rows: int | None = None, budget: int | None = None) -> None:
    """
    Send C{store}'s dump, C{{"applied_seq": n, "rows": [...]}} and every
    other table under its name (DESIGN.md section 4), as JSON pieces a
    page each, to C{send} (as L{copy} does).
    """
    rows, budget = rows or PAGE_ROWS, budget or PAGE_BYTES
    first, *others = store.tables
    applied_seq, page = await store.read(_first_page, first, rows, budget)
    await send(b'{"applied_seq":%d,"rows":[' % applied_seq)
    await _list(store, send, first, page, rows, budget)
    for table in others:
        await send(b"]," + json_bytes(table.name) + b":[")
        await _list(store, send, table, await store.read(read_rows, table, None, rows, budget), rows, budget)
    await send(b"]}")


async def _list(store: Store, send, table: Table, page: Page, rows: int, budget: int) -> None:
    """The rows of C{table} from C{page} on, as the inside of a JSON list."""
    comma = b""
    while page:
        await send(comma + json_bytes(page)[1:-1])
        comma = b","
        if not page.full:
            return
        page = await store.read(read_rows, table, page[-1][table.columns[0]], rows, budget)
