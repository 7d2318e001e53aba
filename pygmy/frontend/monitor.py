"""
The front end's heartbeat monitor: one L{ServiceView<pygmy.frontend.views.ServiceView>}
per service, fed by the heartbeat connections, checked for silence by a
timer, and pushing every new view to every replica and to the front end's
own L{ServiceRoutes<pygmy.net.routing.ServiceRoutes>}.

With a views store (L{pygmy.coordination}), nothing is decided before the
stored views are loaded (L{Monitor.start}), and each new view is pushed only
once it is stored: a view nobody could find again after a crash is never
acted on.  A store that fails is tried again after one heartbeat interval
with the newest view; until then the replicas and routes keep the last
stored one.

With several front ends (a L{Leadership<pygmy.coordination.etcd_leader.Leadership>}),
views are decided only while this front end is the view manager; the
others follow the views stored in etcd (L{pygmy.frontend.succession}).
"""

from __future__ import annotations

import time

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from pygmy.config import Config
from pygmy.coordination.store import StoredView, ViewStore
from pygmy.frontend.events import EventRing, Timeline
from pygmy.frontend.lease import Lease
from pygmy.frontend.succession import Succession
from pygmy.frontend.views import ServiceView
from pygmy.replication.heartbeat import view_line

log = Logger()


class Monitor:
    """
    Liveness and views of every service.

    @param routes: the front end's L{ServiceRoutes} by service; each is
        updated with every new view of its service.
    @param clock: monotonic: liveness is measured on it.
    @param store: where views are stored before they are pushed; C{None}
        keeps them in memory only (tests).
    @param wall: the wall clock that stamps the events of L{events}.
    @param leadership: this front end's candidacy for the view manager's
        lease in etcd (C{store} is then the views store there); C{None} for
        a lone front end, which always manages the views.
    @ivar succession: the L{Succession} of view managers it takes part in,
        or C{None} for a lone front end.
    @ivar events: the L{EventRing} of what the views went through, for the
        dashboard (C{GET /events}).
    @ivar lease: the cache's L{Lease}, held by the lines of the published
        catalog view's primary (the heartbeat connections tell it of them).
    """

    #: This front end's name (C{"frontend"} for the lone C{[frontend]}).
    name = "frontend"
    #: Where the views are stored: C{"local"} (a file) or C{"etcd"}.
    coordinator = "local"

    def __init__(
        self, config: Config, clock, routes: dict, store: ViewStore | None = None, wall=time.time, leadership=None
    ):
        self.clock = clock
        self.name = config.frontend.name
        self.timeout = config.cluster.heartbeat_timeout
        self.retry_after = config.cluster.heartbeat_interval
        self.routes = routes
        self.store = store
        #: The last view of each service that was stored and pushed.
        self.published: dict[str, StoredView] = {}
        self._retries: dict[str, object] = {}
        self.connections: dict[tuple[str, str], object] = {}
        #: Called with a book's id when the catalog primary changed it.
        self.invalidated = lambda item: None
        #: Called with a service's name once a new view of it is pushed.
        self.view_pushed = lambda service: None
        self.events = EventRing(wall=wall)
        self.timeline = Timeline(self.events, clock)
        self.lease = Lease(clock, self.timeout, self._lease_holder)
        self.started = started = clock.seconds()
        self._heard: set[tuple[str, str]] = set()
        self.views = {
            service: ServiceView(
                service,
                tuple(replica.name for replica in replicas),
                self._changed,
                started=started,
                grace=self.timeout * 2,
                on_event=self.timeline.noted,
            )
            for service, replicas in config.replicas.items()
        }
        #: Whether the stored views have been read (L{start}): until then
        #: this front end's views say nothing (a restarted one shows 0).
        self.views_read = store is None
        self.succession = None
        if leadership is not None:
            self.coordinator = "etcd"
            self.succession = Succession(self, leadership, store, clock, self.retry_after)
        for view in self.views.values():
            view.waiting = store is not None
            view.following = leadership is not None

    def start(self) -> Deferred:
        """
        Load the stored views and begin from them; until then beats are
        recorded but nothing is decided.  Fails if the store cannot be read.
        With several front ends: follow them, and campaign
        (L{Succession.start}).
        """
        if self.succession is not None:
            started = self.succession.start()
        elif self.store is None:
            started = succeed(None)
        else:
            started = self.store.load().addCallback(self.restore)
        return started.addCallback(self._views_were_read)

    def _views_were_read(self, _) -> None:
        self.views_read = True

    @property
    def deciding(self) -> bool:
        """Whether this front end decides the views (is not following another's)."""
        return not any(view.following for view in self.views.values())

    def restore(self, stored: dict[str, StoredView]) -> None:
        """Begin from C{stored}, the last stored view of each service, and decide from now on."""
        now = self.clock.seconds()
        for service, view in self.views.items():
            view.waiting = False
            begin = max((v for v in (stored.get(service), self.published.get(service)) if v), key=_number, default=None)
            if begin is not None:
                self.published[service] = begin
                view.restore(begin, now)
            else:
                view.following = False
                view.elect(now)

    def adopt(self, service: str, stored: StoredView) -> None:
        """
        C{stored}, a view read from the store: a follower takes it as its
        own; every front end pushes it unless it has pushed a newer one.
        """
        view = self.views.get(service)
        if view is None:
            return
        if view.following and stored.number > view.number:
            view.follow(stored)
        self._push(service, stored)

    def follow_stored(self) -> None:
        """Stop deciding at once: cancel the stores to try again, and go back to the last stored views."""
        self._cancel_retries()
        for service, view in self.views.items():
            view.following = True
            view.follow(self.published.get(service))

    def knows(self, service: str, replica: str) -> bool:
        """Whether C{service:replica} is in config.ini."""
        return service in self.views and replica in self.views[service].members

    def is_current(self, service: str, replica: str, connection) -> bool:
        """
        Whether C{connection} is the replica's latest: lines on an older one
        (superseded by a newer HELLO) are not believed.
        """
        return self.connections.get((service, replica)) is connection

    def alive(self, service: str) -> list[str]:
        """The live replicas of C{service}."""
        return self.views[service].alive_names()

    def readable(self, service: str) -> list[str]:
        """
        The replicas of C{service} to read from: the live ones.  During this
        front end's first C{heartbeat_timeout}, a replica it has not heard
        from yet is not known to be dead, and counts too: a front end that
        begins from a stored view reads at once, instead of failing reads
        until the first beats come (one that is down only costs a refused
        connection, and the read goes to the next).
        """
        view = self.views[service]
        if self.clock.seconds() - self.started >= self.timeout:
            return view.alive_names()
        return [name for name in view.names if view.members[name].alive or (service, name) not in self._heard]

    # From the heartbeat connections

    def connected(self, service: str, replica: str, connection) -> None:
        """A replica said HELLO: tell it every view."""
        self.connections[(service, replica)] = connection
        self._heard.add((service, replica))
        self.views[service].connected(replica, connection, self.clock.seconds())
        for service, view in sorted(self.published.items()):
            if view.number:
                connection.send(view_line(service, view.number, view.primary, list(view.backups)))

    def beat(self, service, replica, view, applied_seq, last_view, state) -> None:
        """Record a C{BEAT} of C{replica} in its service's view."""
        self.views[service].beat(replica, view, applied_seq, last_view, state, self.clock.seconds())

    def synced(self, service, sender, replica, seq) -> None:
        """Record that C{sender}, a primary, has C{replica} in sync up to C{seq}."""
        self.views[service].synced(sender, replica, seq, self.clock.seconds())

    def unreachable(self, service, sender, replica) -> None:
        """Take C{replica} out of the view: its primary C{sender} cannot reach it."""
        self.views[service].unreachable(sender, replica)

    def invalidate(self, sender: str, item: int, seq: int) -> None:
        """The catalog primary C{sender} changed book C{item} at C{seq}."""
        self.invalidated(item)

    def _lease_holder(self) -> str | None:
        """The replica whose lines hold the cache's lease: the published catalog view's primary."""
        view = self.published.get("catalog")
        return None if view is None else view.primary

    def disconnected(self, service, replica, connection) -> None:
        """Forget C{connection} of C{replica}, unless a newer one replaced it."""
        if self.connections.get((service, replica)) is connection:
            del self.connections[(service, replica)]
        self.views[service].disconnected(replica, connection, self.clock.seconds())

    # Timer

    def check(self) -> None:
        """Declare dead whoever has been silent too long (runs on a timer)."""
        now = self.clock.seconds()
        for view in self.views.values():
            try:
                view.check(now, self.timeout)
            except Exception:
                log.failure("Checking {service} failed", service=view.service)

    def _changed(self, view: ServiceView) -> None:
        """A new view was decided: store it, then push it."""
        if view.following:
            return  # a follower never stores; a retry that outlived a deposition
        stored = view.stored()
        if self.store is None:
            self._push(view.service, stored)
            return
        d = self.store.store(view.service, stored)
        d.addCallbacks(
            lambda _: self._push(view.service, stored),
            lambda failure: self._store_failed(view, stored, failure),
        )
        d.addErrback(
            lambda f: log.failure("pushing {service} view {number}", f, service=view.service, number=stored.number)
        )

    def _store_failed(self, view: ServiceView, stored: StoredView, failure) -> None:
        if view.following:
            log.info(
                "{service} view {number} not stored ({error}); following the stored views now",
                service=view.service,
                number=stored.number,
                error=failure.getErrorMessage(),
            )
            return
        if self.succession is not None and self.succession.refused(failure):
            return
        log.error(
            "{service} view {number} not stored, so not pushed ({error}); trying again in {delay}s",
            service=view.service,
            number=stored.number,
            error=failure.getErrorMessage(),
            delay=self.retry_after,
        )
        pending = self._retries.get(view.service)
        if pending is None or not pending.active():
            self._retries[view.service] = self.clock.callLater(self.retry_after, self._changed, view)

    def _push(self, service: str, stored: StoredView) -> None:
        """Tell the routes and every replica of C{stored}, unless a newer view went out already."""
        last = self.published.get(service)
        if last is not None and last.number >= stored.number:
            return
        self.published[service] = stored
        routes = self.routes.get(service)
        if routes is not None:
            routes.update(stored.number, stored.primary, list(stored.backups))
        line = view_line(service, stored.number, stored.primary, list(stored.backups))
        for connection in list(self.connections.values()):
            connection.send(line)
        self.view_pushed(service)
        self.timeline.pushed(service, stored)

    def stop(self) -> Deferred | None:
        """
        Cancel the stores waiting to be tried again; with several front
        ends, stop following and campaigning (a leader resigns: the
        Deferred fires once that was answered).
        """
        self._cancel_retries()
        for view in self.views.values():
            view.following = True
        if self.succession is not None:
            return self.succession.stop()
        return None

    def _cancel_retries(self) -> None:
        for pending in self._retries.values():
            if pending.active():
                pending.cancel()
        self._retries.clear()

    def frontend_status(self) -> dict:
        """
        Which front end this is and which one manages the views, for the
        C{frontend} block of C{GET /status}: the lone C{[frontend]} always
        manages them itself.  C{views_read} is false until the stored views
        have been read: a front end just restarted answers before that, and
        its view numbers are then 0, not the cluster's.
        """
        if self.succession is not None:
            return {**self.succession.status(), "views_read": self.views_read}
        return {
            "name": self.name,
            "role": "leader",
            "leader": self.name,
            "coordinator": self.coordinator,
            "views_read": self.views_read,
        }

    def status(self) -> dict:
        """The cluster as the front end sees it, for C{GET /status}."""
        return {
            service: {
                "view": view.number,
                "primary": view.primary,
                "backups": list(view.backups),
                "in_sync": sorted(view.in_sync or ()),
                "replicas": {
                    name: {
                        "alive": member.alive,
                        "state": member.state if member.alive else "down",
                        "applied_seq": member.applied_seq,
                        **_promotion(view, name),
                    }
                    for name, member in view.members.items()
                },
            }
            for service, view in self.views.items()
        }


def _number(view: StoredView) -> int:
    return view.number


def _promotion(view: ServiceView, name: str) -> dict:
    promotable, why = view.promotion(name)
    return {"promotable": promotable, "promotion": why}
