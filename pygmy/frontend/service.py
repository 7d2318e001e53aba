"""
The twistd service of the front end.
"""

from __future__ import annotations

from treq.client import HTTPClient
from twisted.application.internet import TimerService
from twisted.application.service import MultiService
from twisted.internet.defer import gatherResults, maybeDeferred
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool

from pygmy.clock import monotonic
from pygmy.config import SERVICES, Config
from pygmy.coordination.etcd import EtcdViewStore
from pygmy.coordination.etcd_gateway import Gateway
from pygmy.coordination.etcd_leader import Leadership
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

    def __init__(self, url: str, monitor: Monitor, reactor, pool: HTTPConnectionPool | None = None):
        super().__init__()
        self.setName("frontend")
        self.url = url
        self.monitor = monitor
        self._reactor = reactor
        #: The etcd client's connections, closed once the monitor has stopped.
        self._pool = pool

    def startService(self):
        """Start every child, load the stored views, then log the public URL."""
        super().startService()
        self.monitor.start().addErrback(self._unreadable)
        self.log.info("Pygmy front end at {url}", url=self.url)

    def stopService(self):
        """
        Stop the monitor's pending stores (and, with several front ends, its
        watch and candidacy: a leader resigns) and every child.
        """
        monitor = maybeDeferred(self.monitor.stop)
        if self._pool is not None:
            monitor.addBoth(lambda _: self._pool.closeCachedConnections())
        monitor.addErrback(lambda f: self.log.failure("stopping the monitor", f))
        return gatherResults([monitor, maybeDeferred(super().stopService)], consumeErrors=True)

    def _unreadable(self, failure) -> None:
        if self.monitor.coordinator == "etcd":
            hint = "Repair the views under [coordinator] prefix in etcd."
        else:
            hint = "Restore the file or, if every replica of every service is known to hold the same writes, remove it."
        self.log.critical(
            "Cannot read the stored views ({error}); stopping.  {hint}", error=failure.getErrorMessage(), hint=hint
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
        C{data_dir/frontend-views.json} (L{FileViewStore}), or with a
        C{[coordinator]} in etcd, where the front ends elect the view
        manager (L{etcd_coordination}).
    """
    front = config.frontend
    cluster = config.cluster
    clock = monotonic(reactor)
    routes = {}
    if config.coordinator is None:
        store, leadership, pool = FileViewStore(cluster.data_dir / FILENAME, reactor), None, None
    else:
        store, leadership, pool = etcd_coordination(config, reactor)
    monitor = Monitor(config, clock, routes, store, leadership=leadership)
    top = FrontendService(front.url, monitor, reactor, pool)
    http = HTTPClientService(reactor)
    http.setServiceParent(top)
    for service in SERVICES:
        routes[service] = routes_for(config, service, http, alive=lambda s=service: monitor.readable(s))

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


def etcd_coordination(config: Config, reactor) -> tuple[EtcdViewStore, Leadership, HTTPConnectionPool]:
    """
    This front end's part in C{[coordinator]}'s etcd: its views store and
    its candidacy for the view manager's lease, on a treq client of their
    own (http or https endpoints; the replicas' client is for plain HTTP
    endpoints only).  Each call may take C{min(request_timeout,
    lease_ttl / 2)}, so that a member that does not answer is left for the
    next well inside a lease.

    @return: the store, the leadership and the client's connection pool.
    """
    coordinator = config.coordinator
    pool = HTTPConnectionPool(reactor)
    client = HTTPClient(Agent(reactor, pool=pool))
    timeout = min(config.cluster.request_timeout, coordinator.lease_ttl / 2)
    gateway = Gateway(coordinator.endpoints, client, reactor, timeout=timeout)
    leadership = Leadership(gateway, coordinator.prefix, config.frontend.name, coordinator.lease_ttl, reactor)
    return EtcdViewStore(gateway, coordinator.prefix, leadership, reactor), leadership, pool
