"""
Listening ports that fail loudly.

twistd's own C{StreamServerEndpointService} logs a port it cannot bind as
an "Unhandled Error" and keeps the process running without it.  A Pygmy
process without its port is useless and misleading (a replica that never
answers, a front end that swallows heartbeats), so L{Listener} logs
one clear line and stops the process instead.
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, fail
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger

log = Logger()


class Listener(Service):
    """
    Listen on the server endpoint string C{description} with C{factory}; if
    that fails, log why and stop the reactor.

    It listens in C{privilegedStartService} (before twistd drops
    privileges), or in C{startService} if nobody called that; it stops
    listening, or gives up trying, in C{stopService}.

    @ivar what: what listens, for the log line (C{catalog:A HTTP}).
    @ivar where: where it listens, for the log line.
    @ivar listening: the L{Deferred} of C{endpoint.listen}, firing with
        the listening port (or with C{None} once the failure is logged);
        C{None} while the service is not started.
    """

    def __init__(self, reactor, description: str, factory, what: str, where: str | None = None):
        """
        @param reactor: the reactor the endpoint listens with.
        @param description: a server endpoint string, for L{serverFromString}.
        @param factory: the protocol factory served.
        @param what: see L{what}.
        @param where: see L{where}; C{description} by default.
        """
        self._reactor = reactor
        self.description = description
        self.factory = factory
        self.what = what
        self.where = where or description
        self.listening = None

    def privilegedStartService(self):
        """Start listening."""
        super().privilegedStartService()
        self._listen()

    def startService(self):
        """Start listening, unless L{privilegedStartService} already did."""
        super().startService()
        if self.listening is None:
            self._listen()

    def stopService(self):
        """
        Stop listening, or stop trying to.

        @return: a L{Deferred} that fires when the port is closed.
        """
        super().stopService()
        listening, self.listening = self.listening, None
        if listening is None:
            return None
        listening.cancel()
        return listening.addCallback(lambda port: None if port is None else port.stopListening())

    def _listen(self) -> None:
        try:
            self.listening = serverFromString(self._reactor, self.description).listen(self.factory)
        except Exception:
            # A listen string that named a file or descriptor this process lacks.
            self.listening = fail()
        self.listening.addErrback(self._failed)

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
