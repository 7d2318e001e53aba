"""
The front end's read cache: a bounded LRU of finished reply bodies.

Entries are the serialised JSON bodies of C{/lookup/<id>}, C{/search} and
C{/list} replies, each with the I{tags} of what it shows, so that a hit
costs one dictionary look-up and one write of bytes.  A tag is a book's id
(an C{int}) or a topic's token (a C{str}, L{topic_token
<pygmy.replication.heartbeat.topic_token>}): a lookup is tagged with its
book, a search with the books it lists and with its topic.  Each page of
C{/list} is an entry of its own that counts as showing every book (tags
C{None}): a book added or changed anywhere may belong to its range, so any
invalidation drops every page.

Invalidation is per tag: the catalog primary pushes C{INVALIDATE <id> <seq>
<topic>} before it acknowledges a write, and the front end invalidates the
tags itself when a write it made returns.  Either way every entry with the
tag goes: a changed book's lookup and the searches that list it, and -- by
the topic, since no entry lists its id yet -- every search a new book
joins, in whatever case it was asked.

A **fill** (a miss being fetched) may race with a write: it reads the old
value, the write is invalidated, then the fill completes.  So a fill takes
a L{ReplyCache.ticket} before it asks a replica, and
L{ReplyCache.store} refuses it if any of its tags has been
invalidated since (an invalidation is newer than the ticket).  What was
invalidated when is remembered for the last L{REMEMBERED} tags only: past
that the cache forgets them all and refuses every fill begun before, so
that a million new books do not grow it by a million tags.

Every change of the catalog's view empties the cache (L{ReplyCache.clear})
and refuses every fill begun before it: a reply from before a failover may
come from a replica that the new view left out.  The front end stores only
replies from members of the current view.

With a L{Lease<pygmy.frontend.lease.Lease>} (the front end's), the cache
serves a hit and stores a fill only while the lease holds, that is within
C{heartbeat_timeout} of the last line from the catalog primary; each time
the lease ends the cache is emptied (L{ReplyCache.lapse}), so a front end
that was frozen or cut off never serves what a write acknowledged meanwhile
made stale.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

#: The most tags whose last invalidation the cache remembers.
REMEMBERED = 10_000


@dataclass
class Counters:
    """What the cache has done since start."""

    hits: int = 0
    misses: int = 0
    invalidations: int = 0
    evictions: int = 0
    refused_fills: int = 0
    lease_expiries: int = 0


class ReplyCache:
    """
    A bounded LRU of reply bodies, invalidated per tag (a book id or a
    topic token).

    @param capacity: entries at most; 0 turns the cache off.
    @param lease: the front end's L{Lease<pygmy.frontend.lease.Lease>}, which
        the cache serves and stores under (and subscribes to); C{None}
        serves always.
    """

    def __init__(self, capacity: int, lease=None):
        self.capacity = capacity
        self._lease = lease
        if lease is not None:
            lease.subscribe(self.lapse)
        self.counters = Counters()
        self._entries: OrderedDict[str, tuple[bytes, frozenset | None]] = OrderedDict()
        self._by_tag: dict[object, set[str]] = {}
        self._whole: set[str] = set()
        self._clock = 0
        self._invalidated: dict[object, int] = {}
        self._invalidated_any = 0
        #: Fills whose ticket is older are refused (a clear, or forgotten tags).
        self._refuse_before = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, count_miss: bool = True) -> bytes | None:
        """
        The cached body for C{key}, or C{None}; counts a hit, or a miss
        unless C{count_miss} is false (the caller asks again if it misses).
        """
        entry = self._entries.get(key)
        if entry is None or (self._lease is not None and not self._lease.valid()):
            if count_miss:
                self.counters.misses += 1
            return None
        self._entries.move_to_end(key)
        self.counters.hits += 1
        return entry[0]

    def ticket(self) -> int:
        """Taken before a fill is fetched; hand it back to L{store}."""
        return self._clock

    def store(self, key: str, body: bytes, items, ticket: int) -> bool:
        """
        Keep C{body} for C{key} unless a tag of it was invalidated after
        C{ticket} was taken.

        @param items: the tags of what the body shows (the ids of its books,
            and for a search its topic token), or C{None} if it shows every
            book (a page of C{/list}).
        @return: whether it was stored.
        """
        if self.capacity <= 0 or (self._lease is not None and not self._lease.valid()):
            return False
        if self._refuse_before > ticket:
            stale = True
        elif items is None:
            stale = self._invalidated_any > ticket
        else:
            stale = any(self._invalidated.get(tag, -1) > ticket for tag in items)
        if stale:
            self.counters.refused_fills += 1
            return False
        self._remove(key)
        shown = None if items is None else frozenset(items)
        self._entries[key] = (body, shown)
        if shown is None:
            self._whole.add(key)
        else:
            for tag in shown:
                self._by_tag.setdefault(tag, set()).add(key)
        while len(self._entries) > self.capacity:
            oldest = next(iter(self._entries))
            self._remove(oldest)
            self.counters.evictions += 1
        return True

    def invalidate(self, tag) -> None:
        """C{tag} (a book id, or a topic token) changed: drop every entry that shows it."""
        self._clock += 1
        if len(self._invalidated) >= REMEMBERED and tag not in self._invalidated:
            # Forget every tag, and refuse the fills that might have needed one.
            self._invalidated.clear()
            self._refuse_before = self._clock
        self._invalidated[tag] = self._clock
        self._invalidated_any = self._clock
        self.counters.invalidations += 1
        for key in list(self._by_tag.get(tag, ())) + list(self._whole):
            self._remove(key)

    def clear(self) -> None:
        """Drop every entry, and refuse every fill whose ticket is older."""
        self._clock += 1
        self._refuse_before = self._clock
        self._entries.clear()
        self._by_tag.clear()
        self._whole.clear()
        self._invalidated.clear()

    def lapse(self, expired: bool) -> None:
        """
        The lease ended: empty the cache and refuse every fill begun before;
        count an expiry if it ended for silence.
        """
        self.clear()
        if expired:
            self.counters.lease_expiries += 1

    def _remove(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        shown = entry[1]
        if shown is None:
            self._whole.discard(key)
            return
        for tag in shown:
            keys = self._by_tag.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_tag[tag]

    def status(self) -> dict:
        """Size, capacity and counters, for C{GET /status}."""
        c = self.counters
        return {
            "size": len(self._entries),
            "capacity": self.capacity,
            "hits": c.hits,
            "misses": c.misses,
            "invalidations": c.invalidations,
            "evictions": c.evictions,
            "refused_fills": c.refused_fills,
            "lease_expiries": c.lease_expiries,
        }
