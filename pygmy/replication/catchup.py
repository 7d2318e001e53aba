"""
How a recovering replica catches up with its primary.

L{CatchUp} fetches what the replica missed from the primary's log
(C{GET /replication/log}), or a whole snapshot (C{GET
/replication/snapshot}, streamed in pages and installed page by page:
L{pygmy.replication.install}) when its log diverged, the primary compacted
past it, or an earlier install did not finish; applies it, and once within
L{JOIN_GAP} entries of the primary's head asks to join (C{POST
/replication/join}): from then on the primary forwards it every later
entry, and the front end takes it into the view.

It runs while its node is C{recovering} and knows a primary: a replica
error (the primary down, a stale view) waits one heartbeat interval and goes
on; an error nobody expected ends the loop and starts it again one interval
later, so a bug cannot leave a replica recovering for good.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.logger import Logger

from pygmy.errors import Diverged, PygmyError
from pygmy.replication.install import Install

#: A recovering replica joins once it is this close to the primary's head.
JOIN_GAP = 200
#: Entries fetched per request while catching up.
CATCH_UP_BATCH = 5000

#: The namespace the catch-up logged under when it was part of the node;
#: kept so that the log lines stay the same.
log = Logger(namespace="pygmy.replication.node")


class CatchUp:
    """
    The catch-up loop of one replica, at most one at a time.

    @param node: the L{Node<pygmy.replication.node.Node>} to bring level: the
        loop reads its C{role}, C{primary}, C{peers}, C{name}, C{label},
        C{applied_seq} and C{last_view}, reads and sets its C{installing},
        applies to its C{store}, and tells it C{advanced(seq, view)} and
        C{joined()}.
    @param clock: an L{IReactorTime<twisted.internet.interfaces.IReactorTime>}.
    @param interval: the heartbeat interval, in seconds: the wait after a
        failed attempt (four of them after a join, to be taken into the view).
    @ivar running: whether the loop is running.
    """

    #: What installs a snapshot: called with the store and the primary's
    #: name, it takes the stream's records (L{Install}).
    installer = Install

    def __init__(self, node, clock, interval: float):
        self.node = node
        self.clock = clock
        self.interval = interval
        self.running = False

    @property
    def wanted(self) -> bool:
        """Whether the node needs catching up: it is recovering and knows a primary."""
        return self.node.role == "recovering" and self.node.primary is not None

    def start(self) -> None:
        """Start catching up from the primary, unless already doing so."""
        if self.running:
            return
        self.running = True
        Deferred.fromCoroutine(self._run()).addErrback(self._failed).addBoth(self._stopped)

    def _failed(self, failure) -> None:
        """
        An error nobody expected: log it and try again later, rather than
        stay recovering for good (only a view change would start over).
        """
        log.failure("{label}: catch-up failed; trying again", failure, label=self.node.label)
        self.clock.callLater(self.interval, self._again)

    def _again(self) -> None:
        if self.wanted:
            self.start()

    def _stopped(self, _) -> None:
        self.running = False

    async def _run(self) -> None:
        node = self.node
        started = self.clock.seconds()
        start_seq = node.applied_seq
        while self.wanted:
            primary = node.peers.remotes[node.primary]
            try:
                if await self._fetch(primary):
                    continue
                joined = await primary.post(
                    "/replication/join",
                    {"replica": node.name, "after": node.applied_seq, "view": node.last_view},
                )
            except PygmyError as e:
                log.info(
                    "{label}: catch-up from {primary}: {why}", label=node.label, primary=primary.name, why=e.message
                )
                await deferLater(self.clock, self.interval, lambda: None)
                continue
            if joined["joined"]:
                node.joined()
                log.info(
                    "{label}: caught up from seq {start} to {seq} in {seconds:.2f}s; joining",
                    label=node.label,
                    start=start_seq,
                    seq=node.applied_seq,
                    seconds=self.clock.seconds() - started,
                )
                # Wait to be taken into the view; if not, try again.
                await deferLater(self.clock, self.interval * 4, lambda: None)

    async def _fetch(self, primary) -> bool:
        """
        Fetch and apply one batch from the primary's log, or a snapshot
        (at once if an install is unfinished: its rows are no state to
        catch up from).

        @return: whether to fetch again before joining.
        """
        node = self.node
        if node.installing:
            await self._install(primary)
            return True
        reply = await primary.get(
            "/replication/log",
            {"after": str(node.applied_seq), "view": str(node.last_view), "limit": str(CATCH_UP_BATCH)},
        )
        if reply["entries"] is None:
            await self._install(primary)
            return True
        if reply["entries"]:
            node.advanced(*await node.store.apply(reply["entries"]))
        return reply["head"] - node.applied_seq > JOIN_GAP

    async def _install(self, primary) -> None:
        """
        Install the primary's snapshot as it streams in, a page at a time
        (L{Install}).  The node is C{installing} from the first record on
        until the last is committed; a stream that breaks off leaves it so
        (the next attempt starts over), as does a crash (C{meta} says so).
        """
        node = self.node
        node.installing = True
        log.info("{label}: installing a snapshot from {primary}", label=node.label, primary=primary.name)
        install = self.installer(node.store, primary.name)
        records = await primary.stream("/replication/snapshot", None, install.record)
        if install.position is None:
            raise Diverged(f"the snapshot from {primary.name} ended before it was complete")
        node.installing = False
        node.advanced(*install.position)
        log.info(
            "{label}: installed a snapshot at seq {seq} ({records} records)",
            label=node.label,
            seq=node.applied_seq,
            records=records,
        )
