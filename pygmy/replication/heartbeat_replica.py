"""
A replica's end of the heartbeat protocol (the grammar is in
L{pygmy.replication.heartbeat}): one L{BeatProtocol} per connection to a
front end, which answers the challenge, beats, and hands VIEW lines to the
node; L{BeatFactory} reconnects with back-off.  On a catalog primary, the
C{INVALIDATED} lines of the front end go to the connection's
L{invalidations<BeatProtocol.invalidations>} (the primary's
L{FrontEndLink<pygmy.catalog.coherence.FrontEndLink>}).
"""

from __future__ import annotations

from twisted.internet.protocol import ReconnectingClientFactory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from pygmy.replication.heartbeat_lines import LineProtocol, ProtocolError, proof

log = Logger()


class BeatProtocol(LineProtocol):
    """
    A replica's end of its heartbeat connection.

    After the challenge it says HELLO and beats every C{interval} with the
    node's state; VIEW lines go to the node (see L{pygmy.replication.node.Node}).

    @ivar invalidations: what the front end's C{INVALIDATED} lines and the
        end of the connection are told to (C{acknowledged(seq)}, C{lost()}):
        whoever sent C{INVALIDATE} lines on this connection, or C{None}, and
        then an C{INVALIDATED} is a protocol error.
    """

    invalidations = None

    def __init__(self, node, secret: str, clock, interval: float):
        self.node = node
        self._secret = secret
        self._clock = clock
        self._beats = LoopingCall(self.beat)
        self._beats.clock = clock
        self._interval = interval
        self.ready = False

    def handle(self, verb, *args):
        """Act on one line from the front end (see the grammar above)."""
        if verb == "CHALLENGE":
            if self.ready:
                raise ProtocolError("second CHALLENGE")
            node = self.node
            self.sendLine(
                f"HELLO {node.service} {node.name} {proof(self._secret, node.service, node.name, args[0])}".encode(
                    "ascii"
                )
            )
            self.ready = True
            self._beats.start(self._interval, now=True).addErrback(lambda f: log.failure("Heartbeat loop failed", f))
            self.node.heartbeat_connected(self)
        elif verb == "VIEW":
            if not self.ready:
                raise ProtocolError("VIEW before CHALLENGE")
            self.node.view_received(*args)
        elif verb == "INVALIDATED":
            if self.invalidations is None:
                raise ProtocolError("INVALIDATED, but no INVALIDATE was sent")
            self.invalidations.acknowledged(*args)
        else:
            raise ProtocolError(f"{verb} is not for a replica")

    def beat(self) -> None:
        """Send one BEAT with the node's current state."""
        node = self.node
        self.sendLine(
            f"BEAT {node.service} {node.name} {node.view} {node.applied_seq} {node.last_view} {node.role}".encode(
                "ascii"
            )
        )

    def send(self, line: bytes) -> None:
        """Send one line to the front end."""
        self.sendLine(line)

    def abort(self, reason: str) -> None:
        """Log why, then drop the connection at once, unsent lines and all."""
        log.warn("Heartbeat: dropping {peer}: {reason}", peer=self._peer(), reason=reason)
        self.transport.abortConnection()

    def connectionLost(self, reason):
        """Stop beating; tell whoever waits for an INVALIDATED, then the node, that the front end is gone."""
        if self._beats.running:
            self._beats.stop()
        if self.invalidations is not None:
            self.invalidations.lost()
        if self.ready:
            self.node.heartbeat_disconnected(self)


class BeatFactory(ReconnectingClientFactory):
    """
    Connects a replica to the front end and reconnects with back-off.
    """

    noisy = False
    initialDelay = 0.05
    factor = 1.6
    jitter = 0.1

    def __init__(self, node, secret: str, clock, interval: float):
        self.node = node
        self.secret = secret
        self.clock = clock
        self.interval = interval
        self.maxDelay = max(0.5, interval * 2)

    def buildProtocol(self, addr):
        """A protocol for the connection just made; the reconnection delay starts over."""
        self.resetDelay()
        protocol = BeatProtocol(self.node, self.secret, self.clock, self.interval)
        protocol.factory = self
        return protocol
