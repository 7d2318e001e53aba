"""
The primary's side of replication: serialised writes, forwarded to every
backup, acknowledged only once they are applied.

A L{Replicator} exists while its replica is primary.  It runs the
write (rows + log entry, atomic; the store commits writes in arrival order,
several per transaction under load), hands the new entry to one
L{BackupLink} per backup, and waits until every link has the entry
applied, or until the front end has taken that backup out of the view.

A L{BackupLink} sends a backup what it lacks, in C{seq} order, in
batches: whatever is past the backup's last acknowledged C{seq}, from the
recent entries in memory or else from the log.  It learns that position from
the backup's own answer, so a backup that is behind (just promoted primary,
just joined) is brought up to date by the same loop.

A replica that catches up joins without stopping writes: its link starts
at the position it reached and is owed every later entry, from memory or
from the log, so no write slips between catch-up and membership.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.task import deferLater
from twisted.logger import Logger

from pygmy.errors import NotPrimary, PygmyError
from pygmy.replication.store import Store
from pygmy.replication.tables import Write

BATCH = 500

log = Logger()


class BackupLink:
    """
    Forwards log entries to one backup and tracks what it has applied.

    @param joining: the backup is catching up and not yet in the view: if it
        fails it is dropped at once, and once it holds C{join_head} the
        primary reports it SYNCED.
    """

    def __init__(self, replicator: "Replicator", name: str, remote, acked=None, joining=False, join_head=0):
        self.replicator = replicator
        self.name = name
        self.remote = remote
        self.acked: int | None = acked
        self.target = 0
        self.joining = joining
        self.join_head = join_head
        self.synced_sent = False
        self.closed = False
        self._sending = False
        self._pump_scheduled = False
        self._failing_since = None
        self._reported = False
        self._waiters: list[tuple[int, Deferred]] = []

    def want(self, seq: int) -> None:
        """
        The backup must get everything up to C{seq}.  Sending starts at the
        end of this reactor turn, so that the entries of writes committed
        together go together.
        """
        self.target = max(self.target, seq)
        if not self._pump_scheduled:
            self._pump_scheduled = True
            self.replicator.clock.callLater(0, self._pump)

    def wait_for(self, seq: int) -> Deferred:
        """A Deferred that fires once the backup holds C{seq}, or is out."""
        if self.closed or (self.acked is not None and self.acked >= seq):
            return succeed(None)
        d = Deferred()
        self._waiters.append((seq, d))
        self.want(seq)
        return d

    def close(self, error: PygmyError | None = None) -> None:
        """
        Stop forwarding.  Waiters succeed (the backup left the view) unless
        C{error} says the write must not be acknowledged (we are no longer
        primary).
        """
        self.closed = True
        waiters, self._waiters = self._waiters, []
        for _, d in waiters:
            if error is None:
                d.callback(None)
            else:
                d.errback(error)

    def _pump(self) -> None:
        self._pump_scheduled = False
        if self._sending or self.closed:
            return
        if self.acked is not None and self.acked >= self.target and not self._wants_sync():
            return
        self._sending = True
        Deferred.fromCoroutine(self._send()).addErrback(
            lambda f: log.failure("Forwarding to {name} failed", f, name=self.name)
        ).addBoth(self._sent)

    def _sent(self, _):
        self._sending = False

    def _wants_sync(self) -> bool:
        return self.joining and not self.synced_sent and (self.acked or 0) >= self.join_head

    async def _send(self) -> None:
        replicator = self.replicator
        while not self.closed:
            if self._wants_sync():
                self.synced_sent = replicator.node.report_synced(self.name, self.acked)
            if self.acked is not None and self.acked >= self.target:
                return
            probe = self.acked is None
            entries = [] if probe else await replicator.entries_after(self.acked)
            try:
                reply = await self._post(entries)
                if probe and not await replicator.store.matches(reply["applied_seq"], reply["last_view"]):
                    # Its log holds entries ours does not: writes of an old
                    # primary that were never acknowledged.
                    log.warn(
                        "{name} diverged at seq {seq}; it must resynchronise", name=self.name, seq=reply["applied_seq"]
                    )
                    await self._post([], resync=True)
                    await deferLater(replicator.clock, replicator.retry_delay, lambda: None)
                    continue
            except PygmyError as e:
                if self.closed:
                    return
                if self.joining:
                    log.info("Joining {name} dropped: {why}", name=self.name, why=e.message)
                    replicator.drop(self.name)
                    return
                self._failing(e)
                await deferLater(replicator.clock, replicator.retry_delay, lambda: None)
                continue
            self._failing_since = None
            self._acknowledged(reply["applied_seq"])

    def _failing(self, error: PygmyError) -> None:
        """
        A call to the backup failed.  Writes wait for it until the front end
        takes it out of the view; if it stays unreachable from here while
        its heartbeats go on (a partial partition), ask the front end to.
        """
        now = self.replicator.clock.seconds()
        if self._failing_since is None:
            self._failing_since = now
            self._reported = False
        elif not self._reported and now - self._failing_since >= self.replicator.patience:
            log.warn(
                "Backup {name} unreachable for {s:.1f}s ({why}); reporting it",
                name=self.name,
                s=now - self._failing_since,
                why=error.message,
            )
            self._reported = self.replicator.node.report_unreachable(self.name)

    def _post(self, entries: list, resync: bool = False):
        node = self.replicator.node
        body = {"view": node.view, "primary": node.name, "entries": entries}
        if resync:
            body["resync"] = True
        return self.remote.post("/replication/apply", body)

    def _acknowledged(self, applied: int) -> None:
        self.acked = applied
        keep = []
        for seq, d in self._waiters:
            if seq <= applied:
                d.callback(None)
            else:
                keep.append((seq, d))
        self._waiters = keep
        self.replicator.forget_acknowledged()


class Replicator:
    """
    Writes on the primary, replicated to every backup before they return.

    @param node: the primary's L{pygmy.replication.node.Node}.
    @param peers: the L{ServiceRoutes} of the primary's own service.
    @param patience: seconds a backup may not answer before the primary
        asks the front end to take it out of the view.
    """

    def __init__(self, node, store: Store, peers, clock, retry_delay: float, patience: float):
        self.node = node
        self.store = store
        self.peers = peers
        self.clock = clock
        self.retry_delay = retry_delay
        #: Seconds a backup may fail to answer before it is reported.
        self.patience = patience
        self.links: dict[str, BackupLink] = {}
        self._recent: dict[int, dict] = {}
        #: Set once we are no longer primary: no write is acknowledged after.
        self.closed = False

    def set_backups(self, backups: list[str]) -> None:
        """Follow the view: forward to exactly these backups (and joiners)."""
        for name in backups:
            link = self.links.get(name)
            if link is None:
                self.links[name] = BackupLink(self, name, self.peers.remotes[name])
                self.links[name].want(self.node.applied_seq)
            elif link.joining:
                link.joining = False
        for name, link in list(self.links.items()):
            if name not in backups and not link.joining:
                self.drop(name)

    def drop(self, name: str) -> None:
        """Stop forwarding to C{name}; writes waiting for it go on."""
        link = self.links.pop(name, None)
        if link is not None:
            link.close()

    def close(self) -> None:
        """We are no longer primary: fail every write still waiting, and every later one."""
        self.closed = True
        for link in self.links.values():
            link.close(NotPrimary(f"{self.node.label} is no longer the primary."))
        self.links.clear()
        self._recent.clear()

    async def write(self, request_id, mutate, *args, fingerprint=None) -> Write:
        """
        Write (the store serialises writes and assigns their C{seq}), then
        wait until every backup applied it.

        The entry goes to the backups as soon as the store's transaction
        holds it, while that transaction commits (L{_logged}): a write
        costs the longer of its commit and its backups' apply, not their
        sum.  It is acknowledged only once both are done.  If the commit
        fails after the entry went out, a backup may hold a write this
        replica does not: this replica steps down at once
        (L{_commit_failed}) and the write fails with L{NotPrimary}, so its
        caller retries it, with its request id, on the next primary.

        A replayed request id waits too: the first attempt may still be on
        its way to the backups.
        """
        shipped = []
        try:
            write = await self.store.write(
                request_id, mutate, *args, fingerprint=fingerprint, logged=lambda w: self._logged(w, shipped)
            )
        except Exception as e:
            if not shipped:
                raise
            self._commit_failed(e)
            raise NotPrimary(f"{self.node.label} could not commit a write it had sent; it stepped down.") from None
        if self.closed:
            # Committed after we stopped being primary (it was queued before):
            # no backup will get it from us, and the new primary may not have
            # it, so it must not be acknowledged; the caller tries the new one.
            raise NotPrimary(f"{self.node.label} is no longer the primary.")
        # Callbacks of writes run in seq order, so links see entries in order.
        if not write.replayed:
            if self.links and not shipped:
                self._recent[write.seq] = write.entry
            self.node.advanced(write.seq, write.entry["view"])
        waiters = [link.wait_for(write.seq) for link in self.links.values()]
        await gatherResults(waiters, consumeErrors=True).addErrback(_first_error)
        return write

    def _logged(self, write: Write, shipped: list) -> None:
        """
        The store's transaction holds C{write} and is committing: send its
        entry to every backup now (the links send at the end of this turn,
        with the entries of the other writes of its batch).
        """
        if self.closed:
            return
        shipped.append(write.seq)
        if self.links:
            self._recent[write.seq] = write.entry
        for link in self.links.values():
            link.want(write.seq)

    def _commit_failed(self, error: Exception) -> None:
        """
        A batch whose entries went to the backups did not commit here: a
        backup may now be ahead of this replica with writes nobody was
        told of.  Take no more writes and acknowledge none (L{close});
        the node then stops this replica, so the front end elects a
        primary among the others, and this one comes back as a backup
        that catches up -- by a snapshot if its log no longer matches.
        """
        if self.closed:
            return
        log.critical(
            "{label}: a commit failed after its entries were sent to the backups ({why}); stepping down",
            label=self.node.label,
            why=repr(error),
        )
        self.close()
        self.node.commit_failed()

    async def join(self, name: str, after: int, view: int) -> bool:
        """
        Let C{name} join: check that its log matches ours up to C{after},
        and forward it everything past C{after}.

        No write slips between the check and the first forwarded entry: the
        link starts at C{after} and is owed every entry up to the head the
        check saw; a write committed after that check finds the link in
        place when it completes, and adds its own entry.

        @return: C{False} if its log does not match (it needs a snapshot).
        """
        entries, head = await self.store.entries_after(after, view, 1)
        if entries is None:
            return False
        self.drop(name)
        link = BackupLink(self, name, self.peers.remotes[name], acked=after, joining=True, join_head=head)
        self.links[name] = link
        link.want(max(head, self.node.applied_seq))
        return True

    async def entries_after(self, seq: int) -> list[dict]:
        """Up to L{BATCH} entries after C{seq}: from memory, else the log."""
        recent = self._recent
        if seq + 1 in recent:
            entries = []
            while seq + 1 in recent and len(entries) < BATCH:
                seq += 1
                entries.append(recent[seq])
            return entries
        return await self.store.read_log(seq, BATCH)

    def forget_acknowledged(self) -> None:
        """Drop from memory the entries every backup holds."""
        if not self._recent:
            return
        floor = min((link.acked or 0 for link in self.links.values()), default=max(self._recent))
        for seq in [s for s in self._recent if s <= floor]:
            del self._recent[seq]

    def lowest_acked(self) -> int:
        """The lowest position any backup is known to hold (for compaction)."""
        return min((link.acked or 0 for link in self.links.values()), default=self.node.applied_seq)


def _first_error(failure):
    """Unwrap the first failure of a L{gatherResults}."""
    return failure.value.subFailure
