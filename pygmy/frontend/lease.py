"""
The front end's lease on its cache (DESIGN §7, as Chubby's caches hold one).

The catalog primary acknowledges a write once every connected front end
has answered its C{INVALIDATE}, or once it has dropped the connection of
one that did not answer within C{heartbeat_timeout}.  So a front end may
serve from its cache only while it is surely still hearing the primary:
within C{heartbeat_timeout} of the last line it processed from the current
catalog primary's connection (on its monotonic clock, when it read the
line).  Outside that, the cache serves no hit, stores no fill, and is
emptied once (an expiry, counted).

It is emptied too (not counted as an expiry) when that connection ends,
when another one takes its place, and when another replica becomes the
catalog's primary: lines may have been missed in between.  A new catalog
view empties the cache anyway.
"""

from __future__ import annotations


class Lease:
    """
    Whether the front end's cache may serve, from the lines of the catalog
    primary's heartbeat connection.

    @param clock: a monotonic clock.
    @param timeout: C{[cluster] heartbeat_timeout}.
    @param holder: called with no argument: the name of the current
        catalog primary, or C{None}.
    """

    def __init__(self, clock, timeout: float, holder):
        self.timeout = timeout
        self._clock = clock
        self._holder = holder
        #: The primary's connection whose lines hold the lease, or None.
        self._connection = None
        self._heard_at = 0.0
        self._lapsed: list = []

    def subscribe(self, lapsed) -> None:
        """Call C{lapsed(expired)} each time the lease ends: C{expired} if for silence."""
        self._lapsed.append(lapsed)

    def valid(self) -> bool:
        """Whether the cache may serve now; the first call that finds it lapsed ends it."""
        connection = self._connection
        if connection is None:
            return False
        silent = self._clock.seconds() - self._heard_at >= self.timeout
        if not silent and connection.identity == ("catalog", self._holder()):
            return True
        self._end(expired=silent)
        return False

    def heard(self, connection) -> None:
        """
        A line of C{connection} was processed: if it is the catalog
        primary's, the lease holds for C{timeout} from now -- after ending
        the lease, if it lapsed meanwhile or was held by another connection.
        """
        if connection.identity != ("catalog", self._holder()):
            return
        now = self._clock.seconds()
        if connection is not self._connection:
            self._end(expired=False)
            self._connection = connection
        elif now - self._heard_at >= self.timeout:
            self._end(expired=True)
            self._connection = connection
        self._heard_at = now

    def lost(self, connection) -> None:
        """C{connection} ended: if it held the lease, the lease ends."""
        if connection is self._connection:
            self._end(expired=False)

    def _end(self, expired: bool) -> None:
        if self._connection is None:
            return
        self._connection = None
        for lapsed in self._lapsed:
            lapsed(expired)
