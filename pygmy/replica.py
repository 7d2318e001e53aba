"""
What every replica serves, whatever its service, and how it is assembled.

:class:`ReplicaApp` answers ``GET /status`` to anyone, and mounts the
service's own Klein app (books or orders) plus ``/admin/dump`` behind the
shared secret, so no internal route can forget the check.

:func:`replica_service` composes the twistd service of one replica: its
:class:`~pygmy.storage.Store`, an HTTP client for calls to other replicas, and
the HTTP listener.
"""

from __future__ import annotations

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet.endpoints import serverFromString
from klein import Klein

from pygmy.config import Config, ReplicaConfig
from pygmy.web import (
    endpoint_description,
    install_error_handlers,
    json_response,
    make_site,
    require_secret,
)


class ReplicaApp:
    """
    The HTTP app of one replica.

    @param service_app: the service's own Klein app instance (it provides
        ``app``); its routes are served after the secret check.
    """

    app = Klein()

    def __init__(self, replica: ReplicaConfig, store, secret: str, service_app):
        self.replica = replica
        self.store = store
        self.role = "idle"
        self._secret = secret
        self._service = service_app.app.resource()

    @app.route("/status", methods=["GET"])
    async def status(self, request):
        """Who this replica is, its role and view, and how far it has applied."""
        applied_seq, view, checksum = await self.store.status()
        return json_response(
            request,
            {
                "service": self.replica.service,
                "replica": self.replica.name,
                "role": self.role,
                "view": view,
                "applied_seq": applied_seq,
                "checksum": checksum,
            },
        )

    @app.route("/admin/dump", methods=["GET"])
    async def dump(self, request):
        """The whole replicated table, by id, with the applied sequence number."""
        require_secret(request, self._secret)
        return json_response(request, await self.store.dump())

    @app.route("/", branch=True)
    def service(self, request):
        """The service's own routes, for holders of the secret only."""
        require_secret(request, self._secret)
        return self._service

    install_error_handlers(app)


def replica_service(
    config: Config, replica: ReplicaConfig, store, service_app, reactor, http=None
) -> MultiService:
    """
    The twistd service of one replica: store, optional HTTP client, listener.

    Children start in order, so the store is open before the port listens,
    and stop in reverse, so the port closes before the store.
    """
    top = MultiService()
    top.setName(replica.label)
    store.setServiceParent(top)
    if http is not None:
        http.setServiceParent(top)
    app = ReplicaApp(replica, store, config.cluster.secret, service_app)
    endpoint = serverFromString(reactor, endpoint_description(replica.port, replica.bind))
    StreamServerEndpointService(endpoint, make_site(app.app.resource())).setServiceParent(top)
    return top
