"""
A replica's database as a service: its tables, the reads of them, and the
writes, committed in groups, that change rows and append to the write log.

Both services store data the same way: a service names its tables
(L{Table}), and every write changes rows and appends one entry to the log
in a single SQLite transaction (see L{pygmy.replication.writelog} for the
log and how it is shipped to other replicas, L{pygmy.replication.database}
for how the file is made, upgraded or refused).

All access goes through one L{ConnectionPool<twisted.enterprise.adbapi.ConnectionPool>}
with a single connection, so interactions run one at a time in submission
order and never block the reactor thread.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path
from typing import Callable

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger
from twisted.python.failure import Failure

from pygmy.errors import Conflict, Unavailable
from pygmy.replication import digest
from pygmy.replication.database import Pool
from pygmy.replication.tables import Table, Write, utc_timestamp
from pygmy.replication.writelog import WriteLog, append_entry, find_request, get_meta, set_head


class Store(WriteLog, Service):
    """
    The database of one replica, as a service that closes its pool on stop.

    The log's side (apply, entries_after, matches, read_log, installing,
    pins, compact) comes from L{WriteLog}; snapshots are read and
    installed in pages by L{pygmy.replication.snapshot} and
    L{pygmy.replication.install}.

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
        self._stopping = False
        self._idle: list[Deferred] = []
        self.path = Path(path)
        self.tables = tables
        self._clock = reactor
        self.pool = Pool(self.path, tables, seed, reactor)

    def startService(self):
        """Start, making the database's folder if need be."""
        super().startService()
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def stopService(self):
        """
        Stop: fail every write still queued (L{Unavailable}: its caller may
        try the next primary), let the one being committed finish, then
        close the database pool.

        @return: a Deferred that fires once the pool is closed.
        """
        super().stopService()
        self._stopping = True
        queued, self._queued = self._queued, []
        for item in queued:
            if not item[-1].called:
                item[-1].errback(Unavailable(f"{self.path.name} is shutting down."))
        idle = Deferred()
        if self._committing:
            self._idle.append(idle)
        else:
            idle.callback(None)
        return idle.addCallback(lambda _: self.pool.close())

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
            the service's tables (only those: not the log, nor the
            C{requests} table, which each replica prunes on its own clock).
            The digest is the one kept with every write
            (L{pygmy.replication.digest}): a few lookups by key, whatever
            the size of the tables.
        """
        return self.read(self._status)

    def _status(self, txn):
        checksum = digest.checksum(digest.kept(txn, self.tables))
        return get_meta(txn, "applied_seq"), get_meta(txn, "last_view"), checksum

    def verify(self):
        """
        Recount the digest from every row and compare it with the kept one.
        A full read of the tables, in one interaction (writes wait for it):
        an admin's check, never on a request path.

        @return: a Deferred firing with
            C{{"checksum": kept, "recounted": fresh, "match": bool}}.
        """
        return self.read(self._verify)

    def _verify(self, txn):
        kept = digest.checksum(digest.kept(txn, self.tables))
        fresh = digest.checksum(digest.recount(txn, self.tables))
        return {"checksum": kept, "recounted": fresh, "match": kept == fresh}

    def dump(self):
        """
        @return: a Deferred firing with C{{"applied_seq": n, "rows": [...]}}:
            the rows of the service's first table (its contract,
            DESIGN.md section 4), and those of any other table under that
            table's name.  Every row at once, in one read: for tests and
            checks of small tables; C{GET /admin/dump} sends the same a
            page at a time (L{pygmy.replication.snapshot.dump}).
        """
        return self.read(self._dump)

    def _dump(self, txn):
        rows = self._rows(txn)
        body = {"applied_seq": get_meta(txn, "applied_seq"), "rows": rows[self.tables[0].name]}
        for table in self.tables[1:]:
            body[table.name] = rows[table.name]
        return body

    def _rows(self, txn) -> dict:
        return {table.name: table.rows(txn) for table in self.tables}

    # Writes

    def write(self, request_id: str | None, mutate: Callable, *args, fingerprint: str | None = None, logged=None):
        """
        Run C{mutate(cursor, seq, created, *args)} and log its result, as
        one atomic write.

        C{mutate} changes rows and returns the C{changes} list of the log
        entry (see L{change}); raising undoes the write.  If
        C{request_id} has written before (it is in the C{requests} table,
        which outlives log compaction for the idempotency window), nothing
        runs and the logged result is returned with C{replayed=True} --
        unless the logged write had another C{fingerprint} (a digest of what
        was asked), which fails with L{Conflict}: the id was reused for a
        different request.

        Writes that arrive while others are being committed are committed
        together, in arrival order, in one transaction with a savepoint
        each (group commit): one trip to the database thread for many
        writes, which is what bounds throughput under load.

        With C{logged}, the new write (not a replayed one) is also handed
        to C{logged(write)} on the reactor thread as soon as its
        transaction holds it, just before that transaction commits: its
        commit and whatever C{logged} starts (shipping the entry to the
        backups) then run at the same time.  C{logged} runs before the
        returned Deferred fires; if the commit then fails, that Deferred
        fails although C{logged} saw the write (the caller must deal with
        it: L{pygmy.replication.primary.Replicator} steps down).

        @return: a Deferred firing with a L{Write}.
        """
        if self._stopping:
            return fail(Unavailable(f"{self.path.name} is shutting down."))
        d = Deferred()
        created = utc_timestamp(self._clock.seconds())
        self._queued.append((request_id, fingerprint, created, self.view, mutate, args, logged, d))
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
        if self._stopping or not self._queued:
            return
        batch, self._queued = self._queued, []
        self._committing = True
        work = [item[:-2] for item in batch]
        logged = [item[-2] for item in batch]
        self.pool.runInteraction(self._write_all, work, logged).addBoth(self._committed, batch)

    def _committed(self, outcomes, batch) -> None:
        self._committing = False
        idle, self._idle = self._idle, []
        if isinstance(outcomes, Failure):
            outcomes = [(False, outcomes)] * len(batch)
        for (ok, result), item in zip(outcomes, batch, strict=True):
            d = item[-1]
            if d.called:
                # Its caller cancelled it (the write is done all the same):
                # firing it again would raise and strand the rest of the batch.
                continue
            if ok:
                d.callback(result)
            else:
                d.errback(result)
        self._schedule_commit()
        for d in idle:
            d.callback(None)

    def _write_all(self, txn, work, logged) -> list:
        txn.execute("BEGIN IMMEDIATE")
        # The log's head and the digests' deltas are kept here for the
        # whole batch and written once, at its end.
        seq, last_view = get_meta(txn, "applied_seq"), get_meta(txn, "last_view")
        first, sums, outcomes = seq, Counter(), []
        for request_id, fingerprint, created, view, mutate, args in work:
            txn.execute("SAVEPOINT write")
            try:
                write, deltas = self._write(txn, request_id, fingerprint, created, view, mutate, args, seq + 1)
                outcome = (True, write)
            except Exception:
                txn.execute("ROLLBACK TO write")
                outcome = (False, Failure())
            txn.execute("RELEASE write")
            outcomes.append(outcome)
            if outcome[0] and not write.replayed:
                seq, last_view = write.seq, view
                sums.update(deltas)
        digest.settle(txn, sums)
        if seq != first:
            set_head(txn, seq, last_view)
        early = [
            (tell, outcome[1])
            for tell, outcome in zip(logged or (), outcomes, strict=False)
            if tell is not None and outcome[0] and not outcome[1].replayed
        ]
        if early:
            # Queued to the reactor before the pool's own callFromThread of
            # this interaction's result, so it runs first; the commit (right
            # after we return, in this thread) runs meanwhile.
            self._clock.callFromThread(self._tell_logged, early)
        return outcomes

    def _tell_logged(self, early: list) -> None:
        """
        Hand each write of C{early} to its C{logged} callable (see
        L{write}), on the reactor thread.
        """
        for tell, write in early:
            try:
                tell(write)
            except Exception:
                self.log.failure("A logged-write callback failed")

    def _write(self, txn, request_id, fingerprint, created, view, mutate, args, seq) -> tuple[Write, dict]:
        """
        One write of a batch, as entry C{seq}.

        @return: its L{Write}, and what it changes each table's digest by.
        """
        if request_id is not None:
            entry = find_request(txn, request_id)
            if entry is not None:
                if fingerprint != entry["fingerprint"]:
                    raise Conflict("This request id was already used for a different request.")
                return Write(entry, replayed=True), {}
        changes = mutate(txn, seq, created, *args)
        deltas = digest.deltas(txn, self.tables, changes)
        entry = {
            "seq": seq,
            "view": view,
            "request_id": request_id,
            "changes": changes,
            "created": created,
            "fingerprint": fingerprint,
        }
        append_entry(txn, entry)
        return Write(entry), deltas
