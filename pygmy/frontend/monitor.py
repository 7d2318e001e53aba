"""
The front end's heartbeat monitor: one L{ServiceView<pygmy.frontend.views.ServiceView>}
per service, fed by the heartbeat connections, checked for silence by a
timer, and pushing every new view to every replica and to the front end's
own L{ServiceRoutes<pygmy.net.routing.ServiceRoutes>}.
"""

from __future__ import annotations

from twisted.logger import Logger

from pygmy.config import Config
from pygmy.frontend.views import ServiceView
from pygmy.replication.heartbeat import view_line

log = Logger()


class Monitor:
    """
    Liveness and views of every service.

    @param routes: the front end's L{ServiceRoutes} by service; each is
        updated with every new view of its service.
    """

    def __init__(self, config: Config, clock, routes: dict):
        self.clock = clock
        self.timeout = config.cluster.heartbeat_timeout
        self.routes = routes
        self.connections: dict[tuple[str, str], object] = {}
        #: Called with a book's id when the catalog primary changed it.
        self.invalidated = lambda item: None
        started = clock.seconds()
        self.views = {
            service: ServiceView(
                service,
                tuple(replica.name for replica in replicas),
                self._changed,
                started=started,
                grace=self.timeout * 2,
            )
            for service, replicas in config.replicas.items()
        }

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

    # From the heartbeat connections

    def connected(self, service: str, replica: str, connection) -> None:
        """A replica said HELLO: tell it every view."""
        self.connections[(service, replica)] = connection
        self.views[service].connected(replica, connection, self.clock.seconds())
        for view in self.views.values():
            if view.number:
                connection.send(view_line(view.service, view.number, view.primary, view.backups))

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
        routes = self.routes.get(view.service)
        if routes is not None:
            routes.update(view.number, view.primary, view.backups)
        line = view_line(view.service, view.number, view.primary, view.backups)
        for connection in list(self.connections.values()):
            connection.send(line)

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
                    }
                    for name, member in view.members.items()
                },
            }
            for service, view in self.views.items()
        }
