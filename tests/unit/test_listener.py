"""
Unit tests of L{pygmy.net.listener.Listener}: it listens where its endpoint
string says, on the reactor it is given, closes its port when stopped, and
a port it cannot open is one critical log line and a stopped reactor.
"""

from __future__ import annotations

from twisted.internet.defer import succeed
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, capturedLogs

from pygmy.net.listener import Listener


class Port:
    """A listening port that remembers it was closed."""

    def __init__(self):
        self.closed = False

    def stopListening(self):
        """Close the port."""
        self.closed = True
        return succeed(None)


class PortReactor(MemoryReactorClock):
    """A memory reactor whose TCP ports are L{Port}s."""

    def listenTCP(self, port, factory, backlog=50, interface=""):
        """Record the call, like the memory reactor; return a L{Port}."""
        super().listenTCP(port, factory, backlog, interface)
        self.port = Port()
        return self.port


class BusyReactor(MemoryReactorClock):
    """A memory reactor where every TCP port is taken."""

    def listenTCP(self, port, factory, backlog=50, interface=""):
        """Refuse, as a reactor does when the address is in use."""
        raise CannotListenError(interface, port, OSError(98, "Address already in use"))


def run_hooks(reactor) -> None:
    """Pretend C{reactor} started: run its C{callWhenRunning} hooks."""
    reactor.running = True
    for f, args, kwargs in reactor.whenRunningHooks:
        f(*args, **kwargs)


def test_listens_on_the_description():
    reactor = MemoryReactorClock()
    factory = Factory()
    listener = Listener(reactor, "tcp:8081:interface=10.0.0.1", factory, "catalog:A HTTP")
    assert reactor.tcpServers == []
    listener.startService()
    assert [(port, f, interface) for port, f, _, interface in reactor.tcpServers] == [(8081, factory, "10.0.0.1")]
    assert listener.where == "tcp:8081:interface=10.0.0.1"


def test_unix_socket():
    reactor = MemoryReactorClock()
    Listener(reactor, "unix:/run/pygmy/fe.sock:mode=600", Factory(), "front end HTTP").startService()
    assert [(address, mode) for address, _, _, mode, _ in reactor.unixServers] == [("/run/pygmy/fe.sock", 0o600)]
    assert reactor.tcpServers == []


def test_privileged_start_listens_once():
    """twistd calls privilegedStartService, then startService: one port, not two."""
    reactor = MemoryReactorClock()
    listener = Listener(reactor, "tcp:8080", Factory(), "front end HTTP")
    listener.privilegedStartService()
    listener.startService()
    assert len(reactor.tcpServers) == 1
    assert listener.running


def test_stop_closes_the_port():
    reactor = PortReactor()
    listener = Listener(reactor, "tcp:8080", Factory(), "front end HTTP")
    listener.startService()
    assert not reactor.port.closed
    stopped = listener.stopService()
    assert reactor.port.closed
    assert stopped.called
    assert listener.listening is None
    assert not listener.running


def test_stop_before_start():
    listener = Listener(MemoryReactorClock(), "tcp:8080", Factory(), "front end HTTP")
    assert listener.stopService() is None


def test_cannot_listen_logs_one_line_and_stops_the_reactor():
    reactor = BusyReactor()
    listener = Listener(reactor, "tcp:8080:interface=127.0.0.1", Factory(), "front end HTTP", "127.0.0.1:8080")
    with capturedLogs() as events:
        listener.privilegedStartService()
    critical = [e for e in events if e["log_level"] == LogLevel.critical]
    assert len(critical) == 1
    assert critical[0]["log_format"].format(**critical[0]) == (
        "front end HTTP: cannot listen on 127.0.0.1:8080: [Errno 98] Address already in use; stopping."
    )
    assert not reactor.hasStopped
    run_hooks(reactor)
    assert reactor.hasStopped
    assert listener.stopService().called


def test_missing_key_file_is_reported_when_listening():
    """A TLS key that is not there stops this process when it starts, not when the service is built."""
    reactor = MemoryReactorClock()
    listener = Listener(reactor, "ssl:8443:privateKey=/nonexistent/key.pem", Factory(), "front end HTTP")
    with capturedLogs() as events:
        listener.startService()
    critical = [e for e in events if e["log_level"] == LogLevel.critical]
    assert len(critical) == 1
    assert "front end HTTP: cannot listen on ssl:8443:privateKey=/nonexistent/key.pem: " in critical[0][
        "log_format"
    ].format(**critical[0])
    run_hooks(reactor)
    assert reactor.hasStopped
    assert reactor.sslServers == []
