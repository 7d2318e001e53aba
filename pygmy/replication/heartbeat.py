"""
The heartbeat line protocol between the replicas and the front end.

Each replica keeps one TCP connection to the front end's C{heartbeat_port}.
Lines end with C{\\n}, are ASCII, at most L{MAX_LINE} bytes, and are
space-separated words::

    front end -> replica  CHALLENGE <nonce>
    replica -> front end  HELLO <service> <replica> <proof>
    replica -> front end  BEAT <service> <replica> <view> <applied_seq> <last_view> <state>
    front end -> replica  VIEW <service> <view> <primary|-> <backup,backup|->
    primary -> front end  SYNCED <service> <replica> <seq>
    primary -> front end  UNREACHABLE <service> <replica>
    primary -> front end  INVALIDATE <item_id> <seq> [<topic>]

- C{CHALLENGE} is the first line of every connection: a fresh random nonce.
- C{HELLO} proves the shared secret without sending it:
  C{proof = hex(HMAC-SHA256(secret, "HELLO <service> <replica> <nonce>"))}.
  Nothing but C{HELLO} is accepted before it.
- C{BEAT} is sent every C{heartbeat_interval} and at once when the state
  changes; C{view} is the newest view of its service the replica knows,
  C{state} is C{primary}, C{backup}, C{recovering} or C{idle}, and
  C{last_view} the view of the replica's last log entry.
- C{VIEW} is pushed for every service to every replica, whenever a view
  changes and right after C{HELLO}.
- C{SYNCED} comes from a primary: a joining replica now holds every entry
  up to C{seq} and receives every new one, so it can enter the view.
- C{UNREACHABLE} comes from a primary that has not reached a backup for a
  while although the backup still beats (a partial partition): the front
  end takes it out of the view, so writes stop waiting for it.
- C{INVALIDATE} comes from the catalog primary after a write to book
  C{item_id} was replicated and before it is acknowledged, so the front
  end drops what it cached of that book.  C{topic} is the book's topic as
  L{topic_token} writes it: 32 lowercase hex digits, the same for every
  spelling a search matches (so one word, of a bounded length, whatever
  the topic), and the front end also drops every search of that topic,
  which a new book joins without being in any of them.  Without it
  (a catalog replica older than the front end) only the book is dropped;
  a front end older than the topic word refuses the line, so front ends
  are upgraded first.

A replica is dead after C{heartbeat_timeout} without a line, or at once when
its connection drops.  A malformed, over-long or unauthenticated line closes
the connection and is logged; it changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from twisted.internet.protocol import Factory, ReconnectingClientFactory
from twisted.internet.task import LoopingCall
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


class _LineProtocol(LineReceiver):
    """A line receiver that closes the connection on any bad line."""

    delimiter = b"\n"
    MAX_LENGTH = MAX_LINE
    #: Lines a peer may send per second; a flood closes the connection.
    MAX_RATE = 20_000
    _window = (0.0, 0)

    def lineReceived(self, line: bytes):
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
        raise NotImplementedError


# The front end's side


class MonitorProtocol(_LineProtocol):
    """
    The front end's end of one replica's heartbeat connection.

    It challenges the replica, checks its HELLO, then hands BEAT and SYNCED
    to the monitor (see L{pygmy.frontend.views.Monitor}).
    """

    identity: tuple[str, str] | None = None

    def __init__(self, monitor, secret: str, clock, hello_timeout: float):
        self.monitor = monitor
        self._secret = secret
        self._clock = clock
        self._hello_timeout = hello_timeout
        self._deadline = None
        self.nonce = secrets.token_hex(16)

    def connectionMade(self):
        """Challenge the replica; close the connection unless a C{HELLO} comes in time."""
        self.sendLine(b"CHALLENGE " + self.nonce.encode("ascii"))
        self._deadline = self._clock.callLater(self._hello_timeout, self.refuse, "no HELLO in time")

    def handle(self, verb, *args):
        """Act on one line from a replica (see the grammar above)."""
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
        """Tell the monitor the replica behind this connection is gone."""
        self._cancel_deadline()
        if self.identity is not None:
            self.monitor.disconnected(*self.identity, self)

    def _cancel_deadline(self):
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None


class MonitorFactory(Factory):
    """Makes a L{MonitorProtocol} per replica connection."""

    noisy = False

    def __init__(self, monitor, secret: str, clock, hello_timeout: float):
        self.monitor = monitor
        self.secret = secret
        self.clock = clock
        self.hello_timeout = hello_timeout

    def buildProtocol(self, addr):
        """A protocol for one replica's heartbeat connection."""
        protocol = MonitorProtocol(self.monitor, self.secret, self.clock, self.hello_timeout)
        protocol.factory = self
        return protocol


# The replica's side


class BeatProtocol(_LineProtocol):
    """
    A replica's end of its heartbeat connection.

    After the challenge it says HELLO and beats every C{interval} with the
    node's state; VIEW lines go to the node (see L{pygmy.replication.node.Node}).
    """

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

    def connectionLost(self, reason):
        """Stop beating and tell the node the front end is gone."""
        if self._beats.running:
            self._beats.stop()
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
