"""
The whole cluster in one process: what C{pygmy.tac} runs.  One front end
only: several front ends are separate processes by design (a kill of one
must leave the others), each started with C{pygmy-frontend --name NAME}.
"""

from __future__ import annotations

from twisted.application.service import MultiService

from pygmy.catalog.service import catalog_service
from pygmy.config import Config, ConfigError
from pygmy.frontend.service import frontend_service
from pygmy.order.service import order_service

FACTORIES = {"catalog": catalog_service, "order": order_service}


def cluster_service(config: Config, reactor) -> MultiService:
    """
    Every replica of C{config} and then the front end, as one service.

    @param reactor: the reactor every process's services run on (the
        caller's choice: C{pygmy.tac} passes the global one).
    @raise ConfigError: if C{config} has several front ends.
    """
    one_frontend(config)
    top = MultiService()
    for service, replicas in config.replicas.items():
        for replica in replicas:
            FACTORIES[service](config, replica.name, reactor).setServiceParent(top)
    frontend_service(config, reactor).setServiceParent(top)
    return top


def one_frontend(config: Config) -> None:
    """
    Refuse a C{config} of several front ends for the cluster in one process.

    @raise ConfigError: one line naming the sections and what to do instead.
    """
    if len(config.frontends) > 1:
        sections = ", ".join(f"[{front.section}]" for front in config.frontends.values())
        raise ConfigError(
            f"{config.path}: {len(config.frontends)} front ends ({sections}): the cluster in one process has one "
            "[frontend]; run each front end as its own process (pygmy-frontend --name NAME, or pygmy up)"
        )
