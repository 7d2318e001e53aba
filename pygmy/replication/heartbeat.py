"""
The heartbeat line protocol between the replicas and the front end.

Each replica keeps one TCP connection to the front end's C{heartbeat_port}.
The grammar's words are built and parsed in
L{pygmy.replication.heartbeat_lines}; the front end's end is
L{pygmy.replication.heartbeat_frontend}, a replica's
L{pygmy.replication.heartbeat_replica}.  Lines end with C{\\n}, are ASCII,
at most L{MAX_LINE} bytes, and are space-separated words::

    front end -> replica  CHALLENGE <nonce>
    replica -> front end  HELLO <service> <replica> <proof>
    replica -> front end  BEAT <service> <replica> <view> <applied_seq> <last_view> <state>
    front end -> replica  VIEW <service> <view> <primary|-> <backup,backup|->
    primary -> front end  SYNCED <service> <replica> <seq>
    primary -> front end  UNREACHABLE <service> <replica>
    primary -> front end  INVALIDATE <item_id> <seq> [<topic>]
    front end -> primary  INVALIDATED <seq>

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
- C{INVALIDATED} answers C{INVALIDATE}: the front end has handled every
  line of the connection up to the last C{INVALIDATE} it read, whose
  C{seq} it names (so its cache is clean up to C{seq}).  It sends one per
  batch of lines it reads at once, so one answer covers every earlier
  write.  The catalog primary acknowledges a write only once every front
  end it sent the write's lines to has answered its C{seq}, or its
  connection is closed; a front end that has not answered within
  C{heartbeat_timeout} of a line is dropped (L{pygmy.catalog.coherence}).
  C{INVALIDATED} to the front end, to a replica that sent no C{INVALIDATE}
  of that C{seq}, or before C{CHALLENGE}, is a protocol error.  A front
  end older than C{INVALIDATED} never answers: upgrade front ends first.

The front end serves from its cache only within C{heartbeat_timeout} of
the last line it processed from the catalog primary's connection
(L{Lease<pygmy.frontend.lease.Lease>}).

A replica is dead after C{heartbeat_timeout} without a line, or at once when
its connection drops.  A malformed, over-long or unauthenticated line closes
the connection and is logged; it changes nothing.
"""

from __future__ import annotations

from pygmy.replication.heartbeat_frontend import MonitorFactory, MonitorProtocol
from pygmy.replication.heartbeat_lines import (
    MAX_LINE,
    STATES,
    ProtocolError,
    invalidate_line,
    parse,
    proof,
    topic_token,
    view_line,
)
from pygmy.replication.heartbeat_replica import BeatFactory, BeatProtocol

__all__ = [
    "MAX_LINE",
    "STATES",
    "BeatFactory",
    "BeatProtocol",
    "MonitorFactory",
    "MonitorProtocol",
    "ProtocolError",
    "invalidate_line",
    "parse",
    "proof",
    "topic_token",
    "view_line",
]
