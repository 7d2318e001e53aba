"""
Which replica of a service gets a call.

A :class:`ServiceRoutes` knows every replica of one service (from
``config.ini``) and picks the one that takes writes (the primary) and the ones
that serve reads.  Callers hand it a function of a :class:`~pygmy.remote.Remote`
rather than a replica, so the choice of replica, and what happens when one
fails, stays in this one place.

Until replicas report views over heartbeats, the primary is the first replica
in ``config.ini`` and it also serves the reads.
"""

from __future__ import annotations

from typing import Awaitable, Callable, TypeVar

from pygmy.config import Config
from pygmy.remote import HTTPClientService, Remote

T = TypeVar("T")


class ServiceRoutes:
    """
    The replicas of one service and the choice between them.
    """

    def __init__(self, service: str, remotes: list[Remote]):
        if not remotes:
            raise ValueError(f"no replicas for {service}")
        self.service = service
        self.remotes = {remote.name: remote for remote in remotes}
        self._order = list(remotes)

    def primary(self) -> Remote:
        """The replica that takes writes."""
        return self._order[0]

    def reader(self) -> Remote:
        """A replica to read from."""
        return self._order[0]

    async def write(self, call: Callable[[Remote], Awaitable[T]]) -> T:
        """Run ``call`` against the primary."""
        return await call(self.primary())

    async def read(self, call: Callable[[Remote], Awaitable[T]]) -> T:
        """Run ``call`` against a replica chosen for reading."""
        return await call(self.reader())


def routes_for(config: Config, service: str, http: HTTPClientService) -> ServiceRoutes:
    """Build the L{ServiceRoutes} of ``service`` from ``config``."""
    return ServiceRoutes(
        service,
        [
            Remote(http, replica, config.cluster.secret, config.cluster.request_timeout)
            for replica in config.replicas[service]
        ],
    )

