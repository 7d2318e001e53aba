"""
The write log of a replica's database, and what ships it to other replicas.

Every write is one SQLite transaction that changes rows I{and} appends an
entry to the C{log} table (its schema: C{db-schemas/v4.sql})::

    seq          position in the log, 1, 2, 3 ... (the order ids of the
                 order service are this number)
    view         the view the write was accepted in
    request_id   the caller's id for the write; the same id again replays the
                 logged result instead of writing twice
    changes      JSON list of {"table": name, "row": {column: value}}, the
                 resulting values of every row the write touched
    created      when the write was accepted, ISO-8601 UTC
    fingerprint  a digest of what the write asked for (to tell a replay from
                 a request id reused for another request)

A log entry therefore holds everything needed to replay the write on another
replica (C{INSERT OR REPLACE} of the resulting rows) without re-running its
logic, which is what replication and catch-up need.  The C{meta} table holds
where the log stands: C{applied_seq} (its last entry) and C{last_view} (that
entry's view).

The C{row_hashes} and C{digests} tables (schema version 4) hold the digest
of the service's tables, brought up to date in the transaction of every
applied entry and of every page a snapshot's install writes (see
L{pygmy.replication.digest}).

Snapshots are read and installed in pages (L{pygmy.replication.snapshot},
L{pygmy.replication.install}).  While a copy for another replica is under
way, its position is pinned (L{Pins}): compaction keeps the entries after
it.  While an install is under way, C{meta} holds C{installing = 1}: the
tables are partly written, so no entry is applied (L{_apply} refuses) and
a replica restarted in that state installs a snapshot afresh.

The C{requests} table (schema version 3) keeps, per request id that wrote,
its logged entry, written with the entry (L{append_entry}) on the primary
and on every backup, and carried by snapshots.  A replay is answered from it
(L{find_request}), so an Idempotency-Key outlives the compaction of its log
entry; L{_compact} forgets the rows older than the idempotency window whose
entries have left the log.  It is local upkeep, not replicated data: the
C{/status} checksum leaves it out.

The functions taking a C{txn} run inside an interaction, in the database
thread; L{WriteLog} offers them to the reactor thread as Deferreds.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING

from pygmy.errors import Diverged
from pygmy.replication import digest

if TYPE_CHECKING:
    from pygmy.replication.tables import Table

#: The columns of the C{log} table, in the order L{_decode} reads them.
ENTRY_COLUMNS = "seq, view, request_id, changes, created, fingerprint"


def get_meta(txn, key: str) -> int:
    """The value of C{key} (C{"applied_seq"}, C{"last_view"}) in C{meta}."""
    return txn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]


def set_meta(txn, key: str, value: int) -> None:
    """Set C{key} of C{meta} to C{value}."""
    txn.execute("UPDATE meta SET value = ? WHERE key = ?", (value, key))


def append_entry(txn, entry: dict) -> None:
    """
    Add C{entry} to the log (and to C{requests}, under its request id).
    The log's head in C{meta} is the caller's to move, once per
    transaction (L{set_head}): a transaction appends many entries.
    """
    changes = json.dumps(entry["changes"])
    txn.execute(
        f"INSERT INTO log ({ENTRY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
        (entry["seq"], entry["view"], entry["request_id"], changes, entry["created"], entry.get("fingerprint")),
    )
    remember_request(txn, entry, changes)


def set_head(txn, seq: int, view: int) -> None:
    """The log now ends at entry C{seq}, of C{view}."""
    set_meta(txn, "applied_seq", seq)
    set_meta(txn, "last_view", view)


def remember_request(txn, entry: dict, changes: str | None = None) -> None:
    """
    Keep C{entry} in C{requests} as the answer to its request id, if it
    has one (over a row of the same id: a snapshot or a primary's entry
    is the truth).

    @param changes: C{entry["changes"]} as JSON already, if the caller
        has it (it is then not encoded twice).
    """
    if entry.get("request_id") is None:
        return
    kept = {key: entry.get(key) for key in ("seq", "view", "request_id", "created", "fingerprint")}
    if changes is None:
        changes = json.dumps(entry["changes"])
    # The entry as JSON: the other fields, with the encoded changes spliced in.
    encoded = f'{json.dumps(kept)[:-1]}, "changes": {changes}}}'
    txn.execute(
        "INSERT OR REPLACE INTO requests (request_id, fingerprint, seq, entry, created) VALUES (?, ?, ?, ?, ?)",
        (kept["request_id"], kept["fingerprint"], kept["seq"], encoded, kept["created"]),
    )


def find_request(txn, request_id: str) -> dict | None:
    """
    The entry C{request_id} wrote, from C{requests} (whether or not the log
    still holds it), or C{None} if it never wrote or was forgotten.
    """
    found = txn.execute("SELECT entry FROM requests WHERE request_id = ?", (request_id,)).fetchone()
    return None if found is None else json.loads(found[0])


def decode_entry(row) -> dict:
    """A log entry from its row of the C{log} table (columns L{ENTRY_COLUMNS})."""
    seq, view, request_id, changes, created, fingerprint = row
    return {
        "seq": seq,
        "view": view,
        "request_id": request_id,
        "changes": json.loads(changes),
        "created": created,
        "fingerprint": fingerprint,
    }


def _entries_after(txn, seq: int, view: int, limit: int):
    head = get_meta(txn, "applied_seq")
    if not _matches(txn, seq, view):
        return None, head
    entries = _read_log(txn, seq, limit)
    if entries and entries[0]["seq"] != seq + 1:
        return None, head
    return entries, head


def _matches(txn, seq: int, view: int) -> bool:
    head = get_meta(txn, "applied_seq")
    if seq > head:
        return False
    if seq == head:
        return view == get_meta(txn, "last_view")
    if seq == 0:
        return txn.execute("SELECT seq FROM log WHERE seq = 1").fetchone() is not None
    found = txn.execute("SELECT view FROM log WHERE seq = ?", (seq,)).fetchone()
    return found is not None and found[0] == view


#: About how many bytes of logged changes one read of the log returns at
#: most (always at least one entry), so that a catch-up reply, like a
#: snapshot page, costs both ends a bounded amount of memory whatever
#: C{limit} asks for.
READ_LOG_BYTES = 1 << 18


def _read_log(txn, after: int, limit: int) -> list[dict]:
    rows = txn.execute(f"SELECT {ENTRY_COLUMNS} FROM log WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit))
    entries, size = [], 0
    for row in rows:
        entries.append(decode_entry(row))
        size += len(row[3]) + 200  # the changes, and about what the rest takes as JSON
        if size >= READ_LOG_BYTES:
            break
    return entries


def installing(txn) -> bool:
    """Whether a snapshot's install has begun and not ended (C{meta} C{installing})."""
    found = txn.execute("SELECT value FROM meta WHERE key = 'installing'").fetchone()
    return found is not None and found[0] != 0


def set_installing(txn, value: bool) -> None:
    """Mark that a snapshot's install has begun (C{True}) or ended."""
    if value:
        txn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('installing', 1)")
    else:
        txn.execute("DELETE FROM meta WHERE key = 'installing'")


def _apply(txn, tables: tuple[Table, ...], entries: list[dict]):
    if installing(txn):
        raise Diverged("a snapshot is being installed here; no entry is applied until it is complete")
    return apply_entries(txn, tables, entries)


def apply_entries(txn, tables: tuple[Table, ...], entries: list[dict]):
    """
    Apply C{entries} in C{seq} order after the log's last entry: those
    already held are checked, the first past a gap ends the batch.

    @return: C{(applied_seq, last_view)} after the batch.
    @raise Diverged: an entry contradicts the log.
    """
    applied = start = get_meta(txn, "applied_seq")
    view = get_meta(txn, "last_view")
    sums: Counter[str] = Counter()
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
            _table(tables, changed["table"]).put(txn, [changed["row"]], replace=True)
        sums.update(digest.deltas(txn, tables, entry["changes"]))
        append_entry(txn, entry)
        applied, view = seq, entry["view"]
    digest.settle(txn, sums)
    if applied != start:
        set_head(txn, applied, view)
    return applied, view


def _table(tables: tuple[Table, ...], name: str) -> Table:
    for table in tables:
        if table.name == name:
            return table
    raise Diverged(f"unknown table {name!r}")


class Pins:
    """
    The log positions that copies in progress still need (a snapshot for
    another replica replays the entries after the position it began at):
    compaction keeps the lowest pinned entry and every one after it.  Used only inside
    interactions (the database thread), where compaction reads it, so a pin
    is in place before the position it protects is read, and gone only
    after the copy has read the entries it needs.
    """

    def __init__(self):
        self._held: dict[int, int] = {}
        self._next = 0

    def hold(self, seq: int) -> int:
        """Pin C{seq}; the token that L{release} takes."""
        self._next += 1
        self._held[self._next] = seq
        return self._next

    def move(self, token: int, seq: int) -> None:
        """Move the pin C{token}, if still held, to C{seq}."""
        if token in self._held:
            self._held[token] = seq

    def release(self, token: int) -> None:
        """Drop the pin C{token} (again: nothing)."""
        self._held.pop(token, None)

    def lowest(self) -> int | None:
        """The lowest pinned position, or C{None}."""
        return min(self._held.values(), default=None)

    def __len__(self) -> int:
        return len(self._held)


def _compact(txn, keep: int, below: int, forget_before: str | None, pins: Pins | None = None) -> int:
    pinned = None if pins is None else pins.lowest()
    if pinned is not None:
        # The pinned entry stays too: a replica whose log ends there is
        # matched against it (L{_matches}) before it gets what follows.
        below = min(below, pinned - 1)
    limit = min(get_meta(txn, "applied_seq") - keep, below)
    deleted = txn.execute("DELETE FROM log WHERE seq <= ?", (limit,)).rowcount
    if forget_before is not None:
        _forget_requests(txn, forget_before)
    return deleted


def _forget_requests(txn, before: str) -> int:
    """
    Delete the C{requests} rows created before C{before} whose entries the
    log no longer holds.  While the log holds an entry its row stays: the
    log's C{request_id} is unique, so that id could not write again anyway.
    """
    first = txn.execute("SELECT min(seq) FROM log").fetchone()[0]
    logged_from = get_meta(txn, "applied_seq") + 1 if first is None else first
    return txn.execute("DELETE FROM requests WHERE created < ? AND seq < ?", (before, logged_from)).rowcount


class WriteLog:
    """
    The write log's side of a replica's L{Store<pygmy.replication.store.Store>}:
    applying entries a primary sent, shipping entries to a replica that
    catches up, the pins of snapshot copies, and compaction.  Every method
    runs one interaction and returns its Deferred.

    @ivar pool: the database's connection pool (one connection).
    @ivar tables: the replicated tables, in dump order.
    """

    pool = None
    tables: tuple[Table, ...] = ()

    def apply(self, entries: list[dict]):
        """
        Apply log entries received from the primary, strictly in C{seq} order.

        Entries this replica already has are checked, not applied again; the
        first entry past a gap stops the batch.

        @return: a Deferred firing with C{(applied_seq, last_view)} after the
            batch; fails with L{Diverged} if an entry contradicts the log, or
            while a snapshot's install is under way.
        """
        return self.pool.runInteraction(_apply, self.tables, entries)

    def entries_after(self, seq: int, view: int, limit: int):
        """
        The log after C{seq}, if this log has the entry C{seq} of C{view}.

        @return: a Deferred firing with C{(entries, head)}, where C{entries}
            is C{None} when the caller's log does not match ours (it diverged,
            or we compacted past it) and it needs a snapshot.
        """
        return self.pool.runInteraction(_entries_after, seq, view, limit)

    def matches(self, seq: int, view: int):
        """
        @return: a Deferred firing with whether a log that ends at entry
            C{seq} of C{view} is a prefix of this one (as far as we can
            tell: an entry we compacted away counts as a mismatch).
        """
        return self.pool.runInteraction(_matches, seq, view)

    def read_log(self, after: int, limit: int):
        """
        @return: a Deferred firing with up to C{limit} log entries after
            C{after}, in order (fewer, or a gap, where compaction took them).
        """
        return self.pool.runInteraction(_read_log, after, limit)

    @property
    def pins(self) -> Pins:
        """The positions copies in progress hold (L{Pins}); made on first use, in the reactor thread."""
        pins = self.__dict__.get("_pins")
        if pins is None:
            pins = self.__dict__["_pins"] = Pins()
        return pins

    def installing(self):
        """
        @return: a Deferred firing with whether a snapshot's install began
            and did not end (this process's, or one a crash cut short).
        """
        return self.pool.runInteraction(installing)

    def compact(self, keep: int, below: int, forget_before: str | None = None):
        """
        Delete log entries, keeping the last C{keep} and every entry above
        C{below} (what a backup may still need); with C{forget_before}, in
        the same transaction, forget the requests older than it whose
        entries the log no longer holds.

        Whatever C{below} says, entries after a position a copy in progress
        has pinned (L{pins}) stay.

        @param forget_before: an ISO-8601 UTC time stamp, as entries'
            C{created}: the start of the idempotency window.
        @return: a Deferred firing with the number of log entries deleted.
        """
        return self.pool.runInteraction(_compact, keep, below, forget_before, self.pins)
