"""
The whole cluster in one process: what C{pygmy.tac} runs.
"""

from __future__ import annotations

from twisted.application.service import MultiService

from pygmy.catalog.service import catalog_service
from pygmy.config import Config
from pygmy.frontend.service import frontend_service
from pygmy.order.service import order_service

FACTORIES = {"catalog": catalog_service, "order": order_service}


def cluster_service(config: Config, reactor) -> MultiService:
    """
    Every replica of C{config} and then the front end, as one service.

    @param reactor: the reactor every process's services run on (the
        caller's choice: C{pygmy.tac} passes the global one).
    """
    top = MultiService()
    for service, replicas in config.replicas.items():
        for replica in replicas:
            FACTORIES[service](config, replica.name, reactor).setServiceParent(top)
    frontend_service(config, reactor).setServiceParent(top)
    return top
