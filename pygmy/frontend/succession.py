"""
Which front end of several decides the views, and the hand-overs between
them (DESIGN.md section 6).

Every front end of several keeps a L{Succession}: its candidacy for the
leadership in etcd (L{Leadership<pygmy.coordination.etcd_leader.Leadership>})
and the views store there
(L{EtcdViewStore<pygmy.coordination.etcd.EtcdViewStore>}).

- A front end starts as a **follower**: it reads the stored views, serves
  clients by them and pushes them to the replicas connected to it, then
  follows every later view through the store's watch, in number order,
  ignoring any that is not newer than the one it has.  It records who is
  alive, for its own reads, but decides nothing: it pushes only views it
  read from the store.
- Once **elected** (it won the leader key), it reads the stored views again
  and only then begins to decide, from them
  (L{ServiceView.restore<pygmy.frontend.views.ServiceView.restore>}: never
  a primary from outside the stored in-sync set).  Every view it decides is
  stored in a txn fenced by its leadership before anyone is told.
- **Deposed** (its lease lapsed, a renewal said the lease is gone, or a
  fenced store was refused), it stops deciding at once: the stores waiting
  to be tried again are cancelled, whatever it had decided and not stored
  is forgotten, and it follows the stored views again.  A store refused as
  stale (a newer view is stored) makes it read the views again and decide
  from there.
- While etcd cannot be reached nothing changes: the leader's lease lapses
  within C{lease_ttl}, nobody can win another, and every front end serves
  by the last view it has until etcd answers again.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from pygmy.coordination.etcd import NotLeader, StaleView
from pygmy.coordination.etcd_wire import EtcdError
from pygmy.coordination.store import StoredView

log = Logger()


class Succession:
    """
    One front end's part in the succession of view managers.

    @param monitor: the front end's L{Monitor<pygmy.frontend.monitor.Monitor>}:
        its views are decided only while this front end leads.
    @param leadership: its candidacy: C{leading}, C{leader}, the C{elected}
        and C{deposed} callbacks, C{start()}, C{stop()}, C{lost(reason)}.
    @param store: the views store: C{load()}, C{watch(callback)}, C{stop()}.
    @param clock: schedules the reads tried again.
    @param retry_after: seconds before a failed read is tried again.
    @ivar term: counts the elections and depositions: a read begun in an
        earlier term is not acted on.
    """

    def __init__(self, monitor, leadership, store, clock, retry_after: float):
        self.monitor = monitor
        self.leadership = leadership
        self.store = store
        self.clock = clock
        self.retry_after = retry_after
        self.term = 0
        self._later = None
        self._problem: str | None = None
        self._stopped = False

    @property
    def name(self) -> str:
        """This front end's name."""
        return self.leadership.name

    def status(self) -> dict:
        """The C{frontend} block of C{GET /status}."""
        return {
            "name": self.leadership.name,
            "role": "leader" if self.leadership.leading else "follower",
            "leader": self.leadership.leader,
            "coordinator": "etcd",
        }

    # Start: follow the stored views, then campaign

    def start(self) -> Deferred:
        """
        Read the stored views and follow them (tried again every
        C{retry_after} while etcd does not answer), then watch the store and
        campaign.  Fires once the views were read; fails only if etcd holds
        something that is not a view.
        """
        started = Deferred()
        self._read_first(started)
        return started

    def _read_first(self, started: Deferred) -> None:
        self._later = None
        if self._stopped:
            return
        d = self.store.load()
        d.addCallbacks(self._begin, self._first_failed, callbackArgs=(started,), errbackArgs=(started,))
        d.addErrback(lambda f: log.failure("front end {name}: starting to follow", f, name=self.name))

    def _first_failed(self, failure, started: Deferred) -> None:
        if not failure.check(EtcdError):
            started.errback(failure)
            return
        self._warn(f"cannot read the stored views yet ({failure.getErrorMessage()}); trying again")
        self._later = self.clock.callLater(self.retry_after, self._read_first, started)

    def _begin(self, stored: dict[str, StoredView], started: Deferred) -> None:
        if self._stopped:
            return
        self._problem = None
        for service, view in sorted(stored.items()):
            self.monitor.adopt(service, view)
        self.store.watch(self.watched)
        self.leadership.elected = self.elected
        self.leadership.deposed = self.deposed
        self.leadership.start()
        log.info(
            "front end {name}: following the stored views ({views})",
            name=self.name,
            views=", ".join(f"{s} {v.number}" for s, v in sorted(stored.items())) or "none yet",
        )
        started.callback(None)

    # Following

    def watched(self, service: str, view: StoredView) -> None:
        """A view stored by any front end (this one included), from the watch."""
        self.monitor.adopt(service, view)

    # Hand-overs

    def elected(self) -> None:
        """This front end now holds the leadership: read the stored views, then decide from them."""
        self.term += 1
        self._cancel_later()
        self._read(self.term)

    def deposed(self, reason: str) -> None:
        """This front end no longer leads: stop deciding at once and follow the stored views."""
        self.term += 1
        self._cancel_later()
        self.monitor.follow_stored()
        log.warn("front end {name}: following the stored views again ({reason})", name=self.name, reason=reason)

    def refused(self, failure) -> bool:
        """
        A store of the monitor failed with C{failure}; handle the refusals
        that are about who decides.

        @return: whether it was one (C{NotLeader}: follow; C{StaleView}: read
            the stored views again), so that the store is not tried again.
        """
        if failure.check(NotLeader):
            if self.leadership.leading:
                self.leadership.lost(failure.getErrorMessage())
            elif self.monitor.deciding:
                self.deposed(failure.getErrorMessage())
            return True
        if failure.check(StaleView):
            error = failure.getErrorMessage()
            log.warn("front end {name}: {error}; reading the stored views again", name=self.name, error=error)
            self._cancel_later()
            self._read(self.term)
            return True
        return False

    def _read(self, term: int) -> None:
        """Read the stored views and decide from them, if still leading in C{term}."""
        self._later = None
        if self._stopped or term != self.term:
            return
        d = self.store.load()
        d.addCallbacks(self._read_done, self._read_failed, callbackArgs=(term,), errbackArgs=(term,))
        d.addErrback(lambda f: log.failure("front end {name}: taking over the views", f, name=self.name))

    def _read_done(self, stored: dict[str, StoredView], term: int) -> None:
        if self._stopped or term != self.term or not self.leadership.leading:
            return
        self._problem = None
        log.info(
            "front end {name}: managing the views from the stored ones ({views})",
            name=self.name,
            views=", ".join(f"{s} {v.number}" for s, v in sorted(stored.items())) or "none yet",
        )
        self.monitor.restore(stored)

    def _read_failed(self, failure, term: int) -> None:
        if self._stopped or term != self.term:
            return
        self._warn(f"cannot read the stored views ({failure.getErrorMessage()}); trying again")
        self._later = self.clock.callLater(self.retry_after, self._read, term)

    def stop(self) -> Deferred:
        """Stop watching and campaigning; a leader resigns.  Fires once the resignation was answered."""
        self._stopped = True
        self._cancel_later()
        self.store.stop()
        return self.leadership.stop()

    def _cancel_later(self) -> None:
        if self._later is not None and self._later.active():
            self._later.cancel()
        self._later = None

    def _warn(self, problem: str) -> None:
        if problem != self._problem:
            log.warn("front end {name}: {problem}", name=self.name, problem=problem)
        self._problem = problem
