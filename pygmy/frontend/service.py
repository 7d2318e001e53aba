"""
The twistd service of the front end.
"""

from __future__ import annotations

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger

from pygmy.config import SERVICES, Config
from pygmy.frontend.app import FrontendApp
from pygmy.remote import HTTPClientService
from pygmy.routing import routes_for
from pygmy.web import endpoint_description, make_site


class FrontendService(MultiService):
    """The front end's services; says where it listens once started."""

    log = Logger()

    def __init__(self, url: str):
        super().__init__()
        self.setName("frontend")
        self.url = url

    def startService(self):
        super().startService()
        self.log.info("Pygmy front end at {url}", url=self.url)


def frontend_service(config: Config, reactor) -> MultiService:
    """
    Build the front end of ``config``: an HTTP client for the replicas and
    the public HTTP listener.
    """
    top = FrontendService(config.frontend.url)
    http = HTTPClientService(reactor)
    http.setServiceParent(top)
    routes = {service: routes_for(config, service, http) for service in SERVICES}
    app = FrontendApp(config, routes)
    endpoint = serverFromString(
        reactor, endpoint_description(config.frontend.port, config.frontend.bind)
    )
    StreamServerEndpointService(endpoint, make_site(app.app.resource())).setServiceParent(top)
    return top
