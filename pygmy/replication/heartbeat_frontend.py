"""
The front end's end of the heartbeat protocol (the grammar is in
L{pygmy.replication.heartbeat}): one L{MonitorProtocol} per replica's
connection, which challenges the replica, checks its HELLO and hands every
later line to the monitor.

It answers the catalog's C{INVALIDATE} lines: once every line of what it
has read at once is handled (so the cache is clean), one C{INVALIDATED
<seq>}, with the seq of the last C{INVALIDATE} among them.  And it tells
the front end's cache L{Lease<pygmy.frontend.lease.Lease>} of every line
it has processed, and of the end of the connection.
"""

from __future__ import annotations

import hmac
import secrets

from twisted.internet.protocol import Factory

from pygmy.replication.heartbeat_lines import LineProtocol, ProtocolError, invalidated_line, proof


class MonitorProtocol(LineProtocol):
    """
    The front end's end of one replica's heartbeat connection.

    It challenges the replica, checks its HELLO, then hands BEAT and SYNCED
    to the monitor (see L{pygmy.frontend.monitor.Monitor}), and INVALIDATE
    too, which it answers with INVALIDATED.

    @param lease: the front end's cache lease, told of every line processed
        on the connection (C{heard}) and of its end (C{lost}); or C{None}.
    """

    identity: tuple[str, str] | None = None

    def __init__(self, monitor, secret: str, clock, hello_timeout: float, lease=None):
        self.monitor = monitor
        self._secret = secret
        self._clock = clock
        self._hello_timeout = hello_timeout
        self._lease = lease
        self._deadline = None
        #: The seq of the last INVALIDATE handled and not yet answered.
        self._unanswered: int | None = None
        self.nonce = secrets.token_hex(16)

    def connectionMade(self):
        """Challenge the replica; close the connection unless a C{HELLO} comes in time."""
        self.sendLine(b"CHALLENGE " + self.nonce.encode("ascii"))
        self._deadline = self._clock.callLater(self._hello_timeout, self.refuse, "no HELLO in time")

    def dataReceived(self, data: bytes):
        """Handle every line that came in; then answer the INVALIDATE lines among them, in one line."""
        super().dataReceived(data)
        if self._unanswered is not None:
            seq, self._unanswered = self._unanswered, None
            if not self.transport.disconnecting:
                self.sendLine(invalidated_line(seq))

    def handle(self, verb, *args):
        """Act on one line from a replica (see the grammar in L{pygmy.replication.heartbeat})."""
        self._act(verb, *args)
        if self._lease is not None:
            self._lease.heard(self)

    def _act(self, verb, *args):
        if verb == "HELLO":
            return self._hello(*args)
        if self.identity is None:
            raise ProtocolError(f"{verb} before HELLO")
        if not self.monitor.is_current(*self.identity, self):
            raise ProtocolError(f"{':'.join(self.identity)} said HELLO on a newer connection")
        if verb == "INVALIDATE":
            if self.identity[0] != "catalog":
                raise ProtocolError(f"INVALIDATE from {':'.join(self.identity)}")
            item, seq, topic = args
            # Each is a tag of the front end's cache: a book id, a topic token.
            self.monitor.invalidate(self.identity[1], item, seq)
            if topic is not None:
                self.monitor.invalidate(self.identity[1], topic, seq)
            self._unanswered = seq
            return
        if verb not in ("BEAT", "SYNCED", "UNREACHABLE"):
            raise ProtocolError(f"{verb} is not for the front end")
        service, replica = args[0], args[1]
        if verb == "BEAT":
            if (service, replica) != self.identity:
                raise ProtocolError(f"BEAT of {service}:{replica} from {':'.join(self.identity)}")
            self.monitor.beat(service, replica, *args[2:])
        elif verb == "SYNCED":
            if service != self.identity[0]:
                raise ProtocolError(f"SYNCED for {service} from {':'.join(self.identity)}")
            self.monitor.synced(service, self.identity[1], replica, args[2])
        elif verb == "UNREACHABLE":
            if service != self.identity[0]:
                raise ProtocolError(f"UNREACHABLE for {service} from {':'.join(self.identity)}")
            self.monitor.unreachable(service, self.identity[1], replica)

    def _hello(self, service, replica, given):
        if self.identity is not None:
            raise ProtocolError("second HELLO")
        expected = proof(self._secret, service, replica, self.nonce)
        if not hmac.compare_digest(given, expected):
            raise ProtocolError(f"wrong secret proof for {service}:{replica}")
        if not self.monitor.knows(service, replica):
            raise ProtocolError(f"{service}:{replica} is not in config.ini")
        self._cancel_deadline()
        self.identity = (service, replica)
        self.monitor.connected(service, replica, self)

    def send(self, line: bytes) -> None:
        """Send one line to the replica."""
        self.sendLine(line)

    def connectionLost(self, reason):
        """Tell the lease and the monitor the replica behind this connection is gone."""
        self._cancel_deadline()
        if self._lease is not None:
            self._lease.lost(self)
        if self.identity is not None:
            self.monitor.disconnected(*self.identity, self)

    def _cancel_deadline(self):
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None


class MonitorFactory(Factory):
    """
    Makes a L{MonitorProtocol} per replica connection.

    @param lease: the front end's cache lease (see L{MonitorProtocol}), or C{None}.
    """

    noisy = False

    def __init__(self, monitor, secret: str, clock, hello_timeout: float, lease=None):
        self.monitor = monitor
        self.secret = secret
        self.clock = clock
        self.hello_timeout = hello_timeout
        self.lease = lease

    def buildProtocol(self, addr):
        """A protocol for one replica's heartbeat connection."""
        protocol = MonitorProtocol(self.monitor, self.secret, self.clock, self.hello_timeout, self.lease)
        protocol.factory = self
        return protocol
