"""
The twistd service of the front end.
"""

from __future__ import annotations

from twisted.application.internet import TimerService
from twisted.application.service import MultiService
from twisted.logger import Logger

from pygmy.config import SERVICES, Config
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
    """The front end's services; says where it listens once started."""

    log = Logger()

    def __init__(self, url: str):
        super().__init__()
        self.setName("frontend")
        self.url = url

    def startService(self):
        """Start every child, then log the public URL."""
        super().startService()
        self.log.info("Pygmy front end at {url}", url=self.url)


def frontend_service(config: Config, reactor) -> MultiService:
    """
    Build the front end of C{config}: an HTTP client for the replicas, the
    heartbeat monitor with its listener and timer, and the public HTTP
    listener (on C{[frontend] listen}).

    @param reactor: the reactor (and clock) every part runs on.
    """
    front = config.frontend
    cluster = config.cluster
    top = FrontendService(front.url)
    http = HTTPClientService(reactor)
    http.setServiceParent(top)
    routes = {}
    monitor = Monitor(config, reactor, routes)
    for service in SERVICES:
        routes[service] = routes_for(config, service, http, alive=lambda s=service: monitor.alive(s))

    heartbeats = MonitorFactory(monitor, cluster.secret, reactor, hello_timeout=cluster.heartbeat_timeout)
    where = f"{front.bind}:{front.heartbeat_port}"
    Listener(reactor, front.heartbeat_endpoint, heartbeats, "front end heartbeats", where).setServiceParent(top)
    checks = TimerService(cluster.heartbeat_interval / 2, monitor.check)
    checks.clock = reactor
    checks.setServiceParent(top)

    cache = ReplyCache(front.cache_size)
    monitor.invalidated = cache.invalidate
    _, metrics = registry_with(FrontendCollector(monitor, cache))
    app = FrontendApp(config, routes, monitor, cache, metrics)
    site = make_site(app.resource(), cluster.access_log, metrics)
    Listener(reactor, front.endpoint, site, "front end HTTP", front.where).setServiceParent(top)
    return top
