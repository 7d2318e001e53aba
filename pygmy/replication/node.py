"""
A replica's part in its service: its role, the view it follows, and what it
does in each role.

========== =================================================================
role       what the replica does
========== =================================================================
idle       just started; waits for the front end's first view
primary    takes writes through its L{Replicator<pygmy.replication.primary.Replicator>}
backup     applies the primary's entries in C{seq} order; serves reads
recovering not in the view: fetches what it missed from the primary's log
           (or a snapshot if its log diverged or was compacted past, or an
           install was cut short), joins (the primary forwards it every
           later entry), and waits to be taken into the view (SYNCED)
========== =================================================================

The front end's VIEW lines drive every change (L{Node.view_received});
they also update the L{ServiceRoutes<pygmy.net.routing.ServiceRoutes>} of every service,
which is how an order replica finds the catalog's primary.  Catching up is
L{CatchUp<pygmy.replication.catchup.CatchUp>}'s; what a service does after
each of its writes (the catalog tells the front end's cache) it installs
with L{Node.observe_writes}.
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from pygmy.clock import monotonic
from pygmy.errors import Diverged, NotPrimary, StaleView
from pygmy.replication.catchup import CatchUp
from pygmy.replication.primary import Replicator
from pygmy.replication.store import Store
from pygmy.replication.tables import utc_timestamp
from pygmy.tasks import shielded

log = Logger()


class Node:
    """
    The replication state of one replica.

    @param routes: the L{ServiceRoutes} of every service, by name.
    @param idempotency_keep: seconds a request id is remembered
        (C{[cluster] idempotency_keep}); older ones are forgotten at
        compaction once the log no longer holds their entries.
    @ivar catchup: the L{CatchUp} that brings this replica level when it
        is recovering.
    """

    def __init__(
        self,
        replica,
        store: Store,
        routes: dict,
        clock,
        interval: float,
        log_keep: int,
        idempotency_keep: float = 86400.0,
    ):
        self.service = replica.service
        self.name = replica.name
        self.label = replica.label
        self.store = store
        self.routes = routes
        self.peers = routes[self.service]
        self.clock = clock
        #: Durations (a backup's patience, catch-up times) are measured on this.
        self.timer = monotonic(clock)
        self.interval = interval
        self.log_keep = log_keep
        self.idempotency_keep = idempotency_keep
        self.role = "idle"
        self.view = 0
        self.primary: str | None = None
        self.applied_seq = 0
        self.last_view = 0
        #: A snapshot's install has begun and not ended (here, or before a
        #: crash): the tables are partial, so the node stays recovering,
        #: applies nothing forwarded, and catches up with a fresh snapshot.
        self.installing = False
        self.replicator: Replicator | None = None
        self.heartbeat = None
        self.catchup = CatchUp(self, self.timer, interval)
        self._needs_resync = False
        self._fresh_connection = True
        self._write_observers: list = []
        self._role_observers: list = []
        #: Stops this replica's process (L{commit_failed}); by default the
        #: reactor, if C{clock} is one.
        self.halt = self._stop_reactor

    def _stop_reactor(self) -> None:
        stop = getattr(self.clock, "stop", None)
        if stop is not None and getattr(self.clock, "running", True):
            stop()

    async def load(self) -> None:
        """
        Read where the log stands, and whether an install was cut short;
        call before connecting heartbeats.
        """
        self.applied_seq, self.last_view, _ = await self.store.status()
        self.installing = await self.store.installing()
        if self.installing:
            log.warn("{label}: a snapshot's install did not finish; installing a fresh one", label=self.label)

    def advanced(self, seq: int, view: int) -> None:
        """The local log now ends at C{seq} of C{view}."""
        self.applied_seq, self.last_view = seq, view

    # Heartbeat connection

    def heartbeat_connected(self, protocol) -> None:
        """A (new) connection to the front end: its views may start over."""
        self.heartbeat = protocol
        self._fresh_connection = True
        for routes in self.routes.values():
            routes.view = 0

    def heartbeat_disconnected(self, protocol) -> None:
        """The connection C{protocol} to the front end is gone."""
        if self.heartbeat is protocol:
            self.heartbeat = None

    def _beat_now(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.beat()

    def report_synced(self, name: str, seq: int) -> bool:
        """Tell the front end that joining backup C{name} holds C{seq}."""
        if self.heartbeat is None:
            return False
        self.heartbeat.send(f"SYNCED {self.service} {name} {seq}".encode("ascii"))
        return True

    def report_unreachable(self, name: str) -> bool:
        """Ask the front end to take backup C{name}, which we cannot reach, out of the view."""
        if self.heartbeat is None:
            return False
        self.heartbeat.send(f"UNREACHABLE {self.service} {name}".encode("ascii"))
        return True

    # Views

    def view_received(self, service: str, view: int, primary, backups) -> None:
        """A VIEW line from the front end."""
        routes = self.routes.get(service)
        if routes is None:
            return
        if service != self.service:
            routes.update(view, primary, backups)
            return
        if view < self.view and not self._fresh_connection:
            return
        self._fresh_connection = False
        routes.update(view, primary, backups)
        self._follow(view, primary, backups)

    def _follow(self, view: int, primary, backups) -> None:
        before = self.role
        self.view = self.store.view = view
        self.primary = primary
        if primary == self.name:
            if self.replicator is None:
                self.replicator = Replicator(
                    self, self.store, self.peers, self.timer, self.interval / 2, patience=self.interval * 3
                )
            self.role = "primary"
            self.replicator.set_backups(backups)
        else:
            if self.replicator is not None:
                self.replicator.close()
                self.replicator = None
            in_view = self.name in backups and not self._needs_resync and not self.installing
            self.role = "backup" if in_view else "recovering"
        if self.role != before:
            log.info(
                "{label}: {before} -> {role} in view {view}", label=self.label, before=before, role=self.role, view=view
            )
            self._beat_now()
            for observer in self._role_observers:
                try:
                    observer(self.role)
                except Exception:
                    log.failure("{label}: a role observer failed", label=self.label)
        if self.role == "recovering" and primary is not None:
            self.catch_up()

    # Writes (primary)

    def observe_writes(self, observer) -> None:
        """
        Call C{observer(write)} after each new write this replica makes as
        primary: once every in-sync backup holds it, before its caller hears
        of it.  Not for a replayed write (a request id seen before: nothing
        changed this time).

        @param observer: a callable taking the write (with C{seq} and
            C{entry}); what it raises fails the write's request.
        """
        self._write_observers.append(observer)

    def observe_role(self, observer) -> None:
        """Call C{observer(role)} after each change of this replica's role."""
        self._role_observers.append(observer)

    @property
    def write_observers(self) -> tuple:
        """The observers installed with L{observe_writes}, in order."""
        return tuple(self._write_observers)

    def write(self, request_id, mutate, *args, fingerprint=None) -> Deferred:
        """
        A write to this service: only the primary takes it.  Once taken it
        runs to its end (committed, replicated, observed) even if its caller
        cancels the returned L{Deferred}: a write abandoned halfway would
        leave the backups' positions and the waiters behind.
        """
        if self.role != "primary" or self.replicator is None:
            primary = self.primary or "none"
            return fail(NotPrimary(f"{self.label} is not the primary (primary: {primary})."))
        return shielded(self._write(self.replicator, request_id, mutate, args, fingerprint), f"{self.label} write")

    def commit_failed(self) -> None:
        """
        Our store failed to commit entries the backups were already sent
        (L{Replicator._commit_failed}): stop being primary, take no more
        writes, and stop the process (L{halt}) -- the front end then sees
        this replica gone and makes a view without it, whose primary may
        hold those entries (never acknowledged: their callers retry them
        with their request ids).  Restarted, this replica catches up, by
        a snapshot if its log diverged.
        """
        if self.replicator is not None:
            self.replicator.close()
            self.replicator = None
        self.role = "recovering"
        self._needs_resync = True
        self.halt()

    async def _write(self, replicator, request_id, mutate, args, fingerprint):
        write = await replicator.write(request_id, mutate, *args, fingerprint=fingerprint)
        if not write.replayed:
            for observer in self._write_observers:
                observer(write)
        return write

    async def join(self, name: str, after: int, view: int) -> bool:
        """A recovering replica asks to join (we must be primary)."""
        if self.role != "primary" or self.replicator is None:
            raise NotPrimary(f"{self.label} is not the primary.")
        if name not in self.peers.remotes or name == self.name:
            raise Diverged(f"{name} is not a replica of {self.service}.")
        return await self.replicator.join(name, after, view)

    # Applying (backup, recovering)

    async def apply(self, view: int, entries: list[dict], resync: bool = False) -> tuple[int, int]:
        """
        Entries forwarded by the primary of C{view}; C{resync} if the
        primary found that our log diverged from its own.

        @return: where our log now ends: C{(applied_seq, last_view)}.
        """
        if view < self.view:
            raise StaleView(f"{self.label} follows view {self.view}, not {view}.")
        if self.role == "primary":
            raise StaleView(f"{self.label} is primary in view {self.view}.")
        if resync:
            self._diverged()
            raise Diverged(f"{self.label} is resynchronising.")
        if self.installing:
            raise Diverged(f"{self.label} is installing a snapshot.")
        try:
            applied, last_view = await self.store.apply(entries)
        except Diverged:
            self._diverged()
            raise
        self.advanced(applied, last_view)
        return applied, last_view

    def _diverged(self) -> None:
        log.warn("{label}: log diverged from the primary's; resynchronising", label=self.label)
        self._needs_resync = True
        if self.role != "recovering":
            self.role = "recovering"
            self._beat_now()
        self.catch_up()

    # Catching up (recovering)

    def catch_up(self) -> None:
        """Start catching up from the primary, unless already doing so."""
        self.catchup.start()

    def joined(self) -> None:
        """The primary took our join: our log is its log again."""
        self._needs_resync = False

    # Compaction

    async def compact(self) -> None:
        """
        Trim the log to C{log_keep} entries, keeping what backups need, and
        forget the request ids older than C{idempotency_keep} seconds (on
        this replica's clock) whose entries have left the log.  Not while
        a snapshot is being installed: its log and requests are being
        rewritten.
        """
        if self.installing:
            return
        below = self.applied_seq if self.replicator is None else self.replicator.lowest_acked()
        forget_before = utc_timestamp(max(self.clock.seconds() - self.idempotency_keep, 0))
        deleted = await self.store.compact(self.log_keep, below, forget_before)
        if deleted:
            log.debug("{label}: compacted {n} log entries", label=self.label, n=deleted)


class NodeService(Service):
    """
    Loads the node, then connects its heartbeats; compacts the log now and
    then.
    """

    def __init__(self, node: Node, connect, compact_every: float = 10.0):
        self.node = node
        self._connect = connect
        self._compaction = LoopingCall(self._compact)
        self._compaction.clock = node.clock
        self._compact_every = compact_every
        self._connector = None

    def startService(self):
        """Load the node; connect its heartbeats once loaded."""
        super().startService()
        Deferred.fromCoroutine(self.node.load()).addCallback(self._loaded).addErrback(
            lambda f: log.failure("{label}: could not start", f, label=self.node.label)
        )

    def _loaded(self, _):
        if not self.running:
            return
        self._connector = self._connect()
        self._compaction.start(self._compact_every, now=False).addErrback(lambda f: log.failure("compaction loop", f))

    def _compact(self):
        return Deferred.fromCoroutine(self.node.compact()).addErrback(
            lambda f: log.failure("{label}: compaction failed", f, label=self.node.label)
        )

    def stopService(self):
        """
        Stop compacting and stop reconnecting the heartbeats; as primary,
        fail the writes still waiting for a backup (L{NotPrimary}: their
        callers try the next primary) rather than leave them unanswered.
        """
        super().stopService()
        if self.node.replicator is not None:
            self.node.replicator.close()
        if self._compaction.running:
            self._compaction.stop()
        if self._connector is not None:
            factory, connector = self._connector
            factory.stopTrying()
            connector.disconnect()
