"""
Listening ports that fail loudly.

twistd's own C{StreamServerEndpointService} logs a port it cannot bind as
an "Unhandled Error" and keeps the process running without it.  A Pygmy
process without its port is useless and misleading (a replica that never
answers, a front end that swallows heartbeats), so L{Listener} logs
one clear line and stops the process instead.
"""

from __future__ import annotations

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import Service
from twisted.internet.defer import CancelledError
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger

log = Logger()


def endpoint_description(port: int, bind: str) -> str:
    """The server endpoint string for a TCP C{port} on address C{bind}."""
    return f"tcp:{port}:interface=" + bind.replace(":", r"\:")


class Listener(StreamServerEndpointService):
    """
    Listen on TCP C{bind:port} with C{factory}; if that fails, log why
    and stop the reactor.

    @param what: what listens, for the log line (C{catalog:A HTTP}).
    """

    def __init__(self, reactor, port: int, bind: str, factory, what: str):
        super().__init__(serverFromString(reactor, endpoint_description(port, bind)), factory)
        self._reactor = reactor
        self.where = f"{bind}:{port}"
        self.what = what

    def privilegedStartService(self):
        Service.privilegedStartService(self)
        self._waitingForPort = self.endpoint.listen(self.factory)
        self._waitingForPort.addErrback(self._failed)

    def _failed(self, failure) -> None:
        if failure.check(CancelledError):
            return
        why = getattr(failure.value, "socketError", None) or failure.getErrorMessage()
        log.critical(
            "{what}: cannot listen on {where}: {why}; stopping.",
            what=self.what,
            where=self.where,
            why=why,
        )
        self._reactor.callWhenRunning(self._stop)

    def _stop(self) -> None:
        if self._reactor.running:
            self._reactor.stop()
