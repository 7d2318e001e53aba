"""
How a recovering replica catches up with its primary.

L{CatchUp} fetches what the replica missed from the primary's log
(C{GET /replication/log}), or a whole snapshot (C{GET
/replication/snapshot}) when its log diverged or the primary compacted past
it, applies it, and once within L{JOIN_GAP} entries of the primary's head
asks to join (C{POST /replication/join}): from then on the primary forwards
it every later entry, and the front end takes it into the view.

It runs while its node is C{recovering} and knows a primary: a replica
error (the primary down, a stale view) waits one heartbeat interval and goes
on; an error nobody expected ends the loop and starts it again one interval
later, so a bug cannot leave a replica recovering for good.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.logger import Logger

from pygmy.errors import PygmyError

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
        C{applied_seq} and C{last_view}, applies to its C{store}, and tells it
        C{advanced(seq, view)} and C{joined()}.
    @param clock: an L{IReactorTime<twisted.internet.interfaces.IReactorTime>}.
    @param interval: the heartbeat interval, in seconds: the wait after a
        failed attempt (four of them after a join, to be taken into the view).
    @ivar running: whether the loop is running.
    """

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
        Fetch and apply one batch from the primary's log, or a snapshot.

        @return: whether to fetch again before joining.
        """
        node = self.node
        reply = await primary.get(
            "/replication/log",
            {"after": str(node.applied_seq), "view": str(node.last_view), "limit": str(CATCH_UP_BATCH)},
        )
        if reply["entries"] is None:
            snapshot = await primary.get("/replication/snapshot")
            node.advanced(*await node.store.install(snapshot))
            log.info("{label}: installed a snapshot at seq {seq}", label=node.label, seq=node.applied_seq)
            return True
        if reply["entries"]:
            node.advanced(*await node.store.apply(reply["entries"]))
        return reply["head"] - node.applied_seq > JOIN_GAP
