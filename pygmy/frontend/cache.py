"""
The front end's read cache: a bounded LRU of finished reply bodies.

Entries are the serialised JSON bodies of C{/lookup/<id>}, C{/search} and
C{/list} replies, each with the ids of the books it shows, so that a hit
costs one dictionary look-up and one write of bytes.  Each page of C{/list}
is an entry of its own that counts as showing every book (C{items} C{None}):
a book added or changed anywhere may belong to its range, so any
invalidation drops every page.

Invalidation is per book: the catalog primary pushes C{INVALIDATE <id>
<seq>} before it acknowledges a write, and the front end invalidates the
book itself when a write it made returns.  Either way every entry showing
the book goes.

A **fill** (a miss being fetched) may race with a write: it reads the old
value, the write is invalidated, then the fill completes.  So a fill takes
a L{ReplyCache.ticket} before it asks a replica, and
L{ReplyCache.store} refuses it if any of its books has been
invalidated since (an invalidation is newer than the ticket).

Every change of the catalog's view empties the cache (L{ReplyCache.clear})
and refuses every fill begun before it: a reply from before a failover may
come from a replica that the new view left out.  The front end stores only
replies from members of the current view.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class Counters:
    """What the cache has done since start."""

    hits: int = 0
    misses: int = 0
    invalidations: int = 0
    evictions: int = 0
    refused_fills: int = 0


class ReplyCache:
    """
    A bounded LRU of reply bodies, invalidated per book.

    @param capacity: entries at most; 0 turns the cache off.
    """

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.counters = Counters()
        self._entries: OrderedDict[str, tuple[bytes, frozenset | None]] = OrderedDict()
        self._by_item: dict[int, set[str]] = {}
        self._whole: set[str] = set()
        self._clock = 0
        self._invalidated: dict[int, int] = {}
        self._invalidated_any = 0
        self._cleared = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, count_miss: bool = True) -> bytes | None:
        """
        The cached body for C{key}, or C{None}; counts a hit, or a miss
        unless C{count_miss} is false (the caller asks again if it misses).
        """
        entry = self._entries.get(key)
        if entry is None:
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
        Keep C{body} for C{key} unless a book it shows was invalidated
        after C{ticket} was taken.

        @param items: the ids of the books the body shows, or C{None} if it
            shows every book (a page of C{/list}).
        @return: whether it was stored.
        """
        if self.capacity <= 0:
            return False
        if self._cleared > ticket:
            stale = True
        elif items is None:
            stale = self._invalidated_any > ticket
        else:
            stale = any(self._invalidated.get(item, -1) > ticket for item in items)
        if stale:
            self.counters.refused_fills += 1
            return False
        self._remove(key)
        shown = None if items is None else frozenset(items)
        self._entries[key] = (body, shown)
        if shown is None:
            self._whole.add(key)
        else:
            for item in shown:
                self._by_item.setdefault(item, set()).add(key)
        while len(self._entries) > self.capacity:
            oldest = next(iter(self._entries))
            self._remove(oldest)
            self.counters.evictions += 1
        return True

    def invalidate(self, item: int) -> None:
        """Book C{item} changed: drop every entry that shows it."""
        self._clock += 1
        self._invalidated[item] = self._clock
        self._invalidated_any = self._clock
        self.counters.invalidations += 1
        for key in list(self._by_item.get(item, ())) + list(self._whole):
            self._remove(key)

    def clear(self) -> None:
        """Drop every entry, and refuse every fill whose ticket is older."""
        self._clock += 1
        self._cleared = self._clock
        self._entries.clear()
        self._by_item.clear()
        self._whole.clear()
        self._invalidated.clear()

    def _remove(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        shown = entry[1]
        if shown is None:
            self._whole.discard(key)
            return
        for item in shown:
            keys = self._by_item.get(item)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_item[item]

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
        }
