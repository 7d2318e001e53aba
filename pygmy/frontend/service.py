"""
The twistd service of the front end.
"""

from __future__ import annotations

from twisted.application.internet import TimerService
from twisted.application.service import MultiService
from twisted.logger import Logger

from pygmy.clock import monotonic
from pygmy.config import SERVICES, Config
from pygmy.coordination.local import FILENAME, FileViewStore
from pygmy.frontend.app import FrontendApp
from pygmy.frontend.cache import ReplyCache
from pygmy.frontend.monitor import Monitor
from pygmy.net.listener import Listener
from pygmy.net.remote import HTTPClientService
from pygmy.net.routing import routes_for
from pygmy.net.web import make_site
from pygmy.process.metrics import FrontendCollector, registry_with
from pygmy.replication.heartbeat import MonitorFactory


class FrontendService(MultiService):
    """
    The front end's services; loads the stored views as it starts and says
    where it listens.  A front end whose stored views cannot be read stops:
    deciding views without them could promote a replica that lacks
    acknowledged writes.
    """

    log = Logger()

    def __init__(self, url: str, monitor: Monitor, reactor):
        super().__init__()
        self.setName("frontend")
        self.url = url
        self.monitor = monitor
        self._reactor = reactor

    def startService(self):
        """Start every child, load the stored views, then log the public URL."""
        super().startService()
        self.monitor.start().addErrback(self._unreadable)
        self.log.info("Pygmy front end at {url}", url=self.url)

    def stopService(self):
        """Stop every child and the monitor's pending stores."""
        self.monitor.stop()
        return super().stopService()

    def _unreadable(self, failure) -> None:
        self.log.critical(
            "Cannot read the stored views ({error}); stopping.  Restore the file or, if every replica of "
            "every service is known to hold the same writes, remove it.",
            error=failure.getErrorMessage(),
        )
        if self._reactor.running:
            self._reactor.stop()


def frontend_service(config: Config, reactor) -> MultiService:
    """
    Build the front end of C{config}: an HTTP client for the replicas, the
    heartbeat monitor with its listener and timer, and the public HTTP
    listener (on C{[frontend] listen}).

    @param reactor: the reactor every part runs on; durations are measured
        on its L{monotonic} clock.  The views are stored in
        C{data_dir/frontend-views.json} (L{FileViewStore}).
    """
    front = config.frontend
    cluster = config.cluster
    clock = monotonic(reactor)
    routes = {}
    monitor = Monitor(config, clock, routes, FileViewStore(cluster.data_dir / FILENAME, reactor))
    top = FrontendService(front.url, monitor, reactor)
    http = HTTPClientService(reactor)
    http.setServiceParent(top)
    for service in SERVICES:
        routes[service] = routes_for(config, service, http, alive=lambda s=service: monitor.alive(s))

    heartbeats = MonitorFactory(monitor, cluster.secret, clock, cluster.heartbeat_timeout, lease=monitor.lease)
    where = f"{front.bind}:{front.heartbeat_port}"
    Listener(reactor, front.heartbeat_endpoint, heartbeats, "front end heartbeats", where).setServiceParent(top)
    checks = TimerService(cluster.heartbeat_interval / 2, monitor.check)
    checks.clock = reactor
    checks.setServiceParent(top)

    cache = ReplyCache(front.cache_size, lease=monitor.lease)
    monitor.invalidated = cache.invalidate
    monitor.view_pushed = lambda service: cache.clear() if service == "catalog" else None
    _, metrics = registry_with(FrontendCollector(monitor, cache))
    app = FrontendApp(config, routes, monitor, cache, metrics)
    site = make_site(app.resource(), cluster.access_log, metrics)
    Listener(reactor, front.endpoint, site, "front end HTTP", front.where).setServiceParent(top)
    return top
