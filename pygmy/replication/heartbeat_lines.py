"""
The words of the heartbeat protocol (its grammar is in L{pygmy.replication.heartbeat}):
parsing a line into its verb and typed arguments, the lines both ends build,
and the line receiver both ends share, which closes the connection on any
bad, over-long or too frequent line.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from twisted.internet.interfaces import ITCPTransport
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver

from pygmy.net.validate import fold_topic

MAX_LINE = 512
STATES = ("primary", "backup", "recovering", "idle")
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_TOPIC = re.compile(r"[0-9a-f]{32}")

log = Logger()


class ProtocolError(Exception):
    """A line that breaks the grammar; the connection is closed."""


def proof(secret: str, service: str, replica: str, nonce: str) -> str:
    """The HMAC a replica sends in HELLO to prove it knows C{secret}."""
    message = f"HELLO {service} {replica} {nonce}".encode("ascii")
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def topic_token(topic: str) -> str:
    """
    The word of an C{INVALIDATE} line that stands for C{topic}, and the tag
    of its searches in the front end's cache: the first 128 bits, in hex, of
    the SHA-256 of the topic folded as searches match it
    (L{fold_topic<pygmy.net.validate.fold_topic>}).  Topics that differ only
    in case have the same token; two that fold apart sharing one would only
    drop a search more.
    """
    return hashlib.sha256(fold_topic(topic).encode("utf-8")).hexdigest()[:32]


def invalidate_line(item_id: int, seq: int, topic: str) -> bytes:
    """The C{INVALIDATE} line of a write at C{seq} to book C{item_id} of C{topic}."""
    return f"INVALIDATE {item_id} {seq} {topic_token(topic)}".encode("ascii")


def invalidated_line(seq: int) -> bytes:
    """The C{INVALIDATED} line of a front end whose cache is clean up to C{seq}."""
    return f"INVALIDATED {seq}".encode("ascii")


def _name(word: str) -> str:
    if not word or len(word) > 64 or not set(word) <= _NAME_CHARS:
        raise ProtocolError(f"bad name {word[:20]!r}")
    return word


def _number(word: str) -> int:
    if not word.isdigit() or len(word) > 19:
        raise ProtocolError(f"bad number {word[:20]!r}")
    return int(word)


def _names(word: str) -> list[str]:
    return [] if word == "-" else [_name(name) for name in word.split(",")]


def parse(line: bytes) -> tuple:
    """
    Split a line into its verb and typed arguments.

    @raise ProtocolError: if the line breaks the grammar.
    """
    try:
        words = line.decode("ascii").split(" ")
    except UnicodeDecodeError:
        raise ProtocolError("line is not ASCII") from None
    verb, args = words[0], words[1:]
    shapes = {
        "CHALLENGE": (1,),
        "HELLO": (3,),
        "BEAT": (6,),
        "VIEW": (4,),
        "SYNCED": (3,),
        "INVALIDATE": (2, 3),
        "INVALIDATED": (1,),
        "UNREACHABLE": (2,),
    }
    if verb not in shapes:
        raise ProtocolError(f"unknown verb {verb[:20]!r}")
    if len(args) not in shapes[verb]:
        counts = " or ".join(str(count) for count in shapes[verb])
        raise ProtocolError(f"{verb} takes {counts} words, not {len(args)}")
    if verb == "CHALLENGE":
        return verb, _hex(args[0])
    if verb == "HELLO":
        return verb, _name(args[0]), _name(args[1]), _hex(args[2])
    if verb == "BEAT":
        if args[5] not in STATES:
            raise ProtocolError(f"bad state {args[5][:20]!r}")
        numbers = [_number(word) for word in args[2:5]]
        return (verb, _name(args[0]), _name(args[1]), *numbers, args[5])
    if verb == "VIEW":
        primary = None if args[2] == "-" else _name(args[2])
        return verb, _name(args[0]), _number(args[1]), primary, _names(args[3])
    if verb == "INVALIDATE":
        if len(args) == 3 and not _TOPIC.fullmatch(args[2]):
            raise ProtocolError(f"bad topic token {args[2][:40]!r}")
        return verb, _number(args[0]), _number(args[1]), args[2] if len(args) == 3 else None
    if verb == "INVALIDATED":
        return verb, _number(args[0])
    if verb == "UNREACHABLE":
        return verb, _name(args[0]), _name(args[1])
    return verb, _name(args[0]), _name(args[1]), _number(args[2])


def _hex(word: str) -> str:
    if not 16 <= len(word) <= 128 or any(c not in "0123456789abcdef" for c in word):
        raise ProtocolError("bad hex word")
    return word


def view_line(service: str, view: int, primary: str | None, backups) -> bytes:
    """The VIEW line for a service's view."""
    return f"VIEW {service} {view} {primary or '-'} {','.join(backups) or '-'}".encode("ascii")


class LineProtocol(LineReceiver):
    """A line receiver that closes the connection on any bad line."""

    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE
    #: Lines a peer may send per second; a flood closes the connection.
    MAX_RATE = 20_000
    _window = (0.0, 0)

    def makeConnection(self, transport):
        """
        Turn Nagle's algorithm off, then connect as usual.  Lines are small
        and each end answers the other's (C{INVALIDATE}, C{INVALIDATED}):
        with Nagle on, a line written while the previous one is not yet
        acknowledged waits for the peer's delayed ACK, up to 40 ms, and
        every catalog write waits for its C{INVALIDATED}.
        """
        if ITCPTransport.providedBy(transport):
            transport.setTcpNoDelay(True)
        super().makeConnection(transport)

    def lineReceived(self, line: bytes):
        """Parse one line and hand it to L{handle}; a bad line or a flood closes the connection."""
        start, count = self._window
        now = self._clock.seconds()
        if now - start >= 1.0:
            start, count = now, 0
        self._window = (start, count + 1)
        if count + 1 > self.MAX_RATE:
            return self.refuse(f"over {self.MAX_RATE} lines a second")
        try:
            self.handle(*parse(line.rstrip(b"\r")))
        except ProtocolError as e:
            self.refuse(str(e))

    def lineLengthExceeded(self, line):
        """A line over L{MAX_LINE} bytes closes the connection."""
        self.refuse(f"line over {MAX_LINE} bytes")

    def refuse(self, reason: str) -> None:
        """Log why, then close the connection."""
        log.warn("Heartbeat: closing {peer}: {reason}", peer=self._peer(), reason=reason)
        self.transport.loseConnection()

    def _peer(self) -> str:
        try:
            address = self.transport.getPeer()
            return f"{address.host}:{address.port}"
        except Exception:
            return "?"

    def handle(self, verb, *args):
        """Act on one parsed line (each end's own); raise L{ProtocolError} to refuse it."""
        raise NotImplementedError
