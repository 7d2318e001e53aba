"""
The catalog primary's half of a coherent cache (DESIGN §7): every write is
acknowledged to its caller only once every front end connected to the
primary has dropped what the write made stale, or is no longer connected.

After a write is replicated, L{InvalidationPush} (a write observer of the
node) sends one C{INVALIDATE <item_id> <seq> <topic>} line per changed book
on every heartbeat connection to a front end, and L{AcknowledgedWrites} (the
catalog's writer) waits for L{InvalidationPush.settled} before it returns
the write.  Each connection has a L{FrontEndLink} that keeps what it sent
and what the front end acknowledged: the front end answers
C{INVALIDATED <seq>} once it has handled every line up to the last
C{INVALIDATE} it read, which it names, so one answer covers every earlier
line (one line per front end per batch, not per write).

A front end that does not answer within C{heartbeat_timeout} of a line is
taken for frozen or cut off: the link drops its connection (logged and
counted) and lets its writes go.  That is safe because a front end serves
from its cache only within C{heartbeat_timeout} of a line from the primary
(L{Lease<pygmy.frontend.lease.Lease>}) and empties it when the connection
ends: by the time the write is acknowledged, it has stopped serving what
it cached.
"""

from __future__ import annotations

from collections import deque

from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.logger import Logger

from pygmy.process.metrics import InvalidationMetrics
from pygmy.replication.heartbeat import ProtocolError, invalidate_line

log = Logger()


class FrontEndLink:
    """
    The C{INVALIDATE} lines sent on one heartbeat connection to a front end,
    and the writes that wait for its C{INVALIDATED}.

    The link is the connection's C{invalidations}: the connection tells it
    of each C{INVALIDATED} (L{acknowledged}) and of its end (L{lost}).

    @param connection: the replica's end of the connection
        (L{BeatProtocol<pygmy.replication.heartbeat.BeatProtocol>}): C{send(line)},
        C{abort(reason)}.
    @param clock: a monotonic clock.
    @param timeout: seconds the front end has to answer a line.
    @param closed: called with the link once it is closed, for whatever reason.
    @param silent: called when the link drops the connection for want of an answer.
    """

    def __init__(self, connection, clock, timeout: float, closed, silent):
        self.connection = connection
        self.closed = False
        self._clock = clock
        self._timeout = timeout
        self._on_closed = closed
        self._on_silent = silent
        #: (seq, when sent) of each write's lines not yet acknowledged, in the order sent.
        self._pending: deque[tuple[int, float]] = deque()
        #: Whether every pending seq is above the one sent before it.
        self._in_order = True
        self._waiters: list[tuple[int, Deferred]] = []
        self._deadline = None

    def send(self, lines: list[bytes], seq: int) -> None:
        """Send the C{INVALIDATE} lines of the write at C{seq}; it is pending until answered."""
        if self.closed:
            return
        if self._pending and seq < self._pending[-1][0]:
            self._in_order = False
        self._pending.append((seq, self._clock.seconds()))
        if self._deadline is None:
            self._arm()
        for line in lines:
            self.connection.send(line)

    def wait(self, seq: int) -> Deferred:
        """
        A Deferred that fires once no write at C{seq} or below is pending on
        this link: the front end answered, or the link is closed.
        """
        if self.closed or self._lowest() > seq:
            return succeed(None)
        waiting = Deferred()
        self._waiters.append((seq, waiting))
        return waiting

    def acknowledged(self, seq: int) -> None:
        """
        The front end's C{INVALIDATED <seq>}: it handled every line sent up
        to those of the write at C{seq}.

        @raise ProtocolError: if no write at C{seq} is pending (the
            connection is closed, which also lets its writes go).
        """
        if self.closed:
            return
        covered = next((n + 1 for n, (pending, _) in enumerate(self._pending) if pending == seq), 0)
        if not covered:
            raise ProtocolError(f"INVALIDATED {seq}, but no INVALIDATE of that seq is waiting")
        for _ in range(covered):
            self._pending.popleft()
        if not self._pending:
            self._in_order = True
        self._cancel_deadline()
        self._arm()
        self._release()

    def lost(self) -> None:
        """The connection is gone: no write waits for this front end any more."""
        self._close()

    def _lowest(self) -> float:
        if not self._pending:
            return float("inf")
        if self._in_order:
            return self._pending[0][0]
        return min(seq for seq, _ in self._pending)

    def _release(self) -> None:
        lowest = float("inf") if self.closed else self._lowest()
        waiting = []
        for seq, waiter in self._waiters:
            if seq < lowest:
                if not waiter.called:  # its caller may have cancelled it
                    waiter.callback(None)
            else:
                waiting.append((seq, waiter))
        self._waiters = waiting

    def _arm(self) -> None:
        if self._pending and not self.closed:
            seq, sent = self._pending[0]
            delay = max(0.0, sent + self._timeout - self._clock.seconds())
            self._deadline = self._clock.callLater(delay, self._expired)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        seq, _ = self._pending[0]
        reason = f"no INVALIDATED within {self._timeout}s of INVALIDATE of seq {seq}; its writes go on without it"
        self._close()
        self._on_silent()
        try:
            self.connection.abort(reason)
        except Exception:
            log.failure("Could not drop a silent front end's connection")

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._cancel_deadline()
        self._pending.clear()
        self._release()
        self._on_closed(self)


class InvalidationPush:
    """
    Tells every front end connected to this catalog primary which books a
    write changed, with one C{INVALIDATE <id> <seq> <topic>} line per book,
    so that its cache drops them, and the searches of their topics, before
    the write is acknowledged (the catalog's books are what the front ends
    cache).  The topic is what makes a new book show: no cached search lists
    its id yet, but every search of its topic goes.

    Installed on a catalog node with
    L{observe_writes<pygmy.replication.node.Node.observe_writes>}; the
    writes wait for the answers through L{settled} (L{AcknowledgedWrites}).

    @param node: the catalog replica's node; its heartbeat connections carry
        the lines.
    @param timeout: seconds a front end has to answer
        (C{[cluster] heartbeat_timeout}).
    @param clock: a monotonic clock; the node's by default.
    @param connections: called with no argument: the heartbeat connections
        to front ends; by default the node's (L{node_connections}).
    @ivar metrics: the waits and the connections dropped, exposed with the
        replica's metrics.
    """

    def __init__(self, node, timeout: float, clock=None, connections=None):
        self.node = node
        self.timeout = timeout
        self.clock = node.timer if clock is None else clock
        self.connections = self.node_connections if connections is None else connections
        self.metrics = InvalidationMetrics()
        self._links: set[FrontEndLink] = set()

    def node_connections(self) -> list:
        """
        The node's heartbeat connections to front ends: those of
        C{node.heartbeat} (L{FrontEnds<pygmy.replication.frontends.FrontEnds>},
        one per front end), or that one connection; this is the one place
        that knows it.
        """
        heartbeat = self.node.heartbeat
        return [] if heartbeat is None else list(getattr(heartbeat, "connections", [heartbeat]))

    def __call__(self, write) -> None:
        """Push the changes of C{write}, a new write of this primary, to every front end."""
        lines = [invalidate_line(c["row"]["id"], write.seq, c["row"]["topic"]) for c in write.entry["changes"]]
        for connection in self.connections():
            self._link(connection).send(lines, write.seq)

    def settled(self, seq: int) -> Deferred:
        """
        A Deferred that fires once every front end has answered every write
        up to C{seq} sent to it, or is no longer connected; the wait is
        measured.
        """
        started = self.clock.seconds()
        waits = [link.wait(seq) for link in self._links]
        waits = [wait for wait in waits if not wait.called]
        if not waits:
            self.metrics.waits.observe(0.0)
            return succeed(None)

        def measured(_):
            self.metrics.waits.observe(self.clock.seconds() - started)

        return gatherResults(waits).addCallback(measured)

    def _link(self, connection) -> FrontEndLink:
        link = getattr(connection, "invalidations", None)
        if not isinstance(link, FrontEndLink):
            # A closed link stays: it drops lines until its connection is gone.
            link = FrontEndLink(connection, self.clock, self.timeout, self._links.discard, self._silent)
            connection.invalidations = link
            self._links.add(link)
        return link

    def _silent(self) -> None:
        self.metrics.silent_closes.inc()


class AcknowledgedWrites:
    """
    The writer of a catalog primary's L{Catalog<pygmy.catalog.books.Catalog>}:
    the node's write, then the front ends' answers up to its seq
    (L{InvalidationPush.settled}).  A replayed write waits too: its first
    attempt's lines may still be unanswered.
    """

    def __init__(self, node, push: InvalidationPush):
        self.node = node
        self.push = push

    def write(self, request_id, mutate, *args, fingerprint=None) -> Deferred:
        """Like L{Node.write<pygmy.replication.node.Node.write>}, answered once the front ends are clean."""
        return Deferred.fromCoroutine(self._write(request_id, mutate, args, fingerprint))

    async def _write(self, request_id, mutate, args, fingerprint):
        write = await self.node.write(request_id, mutate, *args, fingerprint=fingerprint)
        await self.push.settled(write.seq)
        return write
