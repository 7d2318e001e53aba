"""
C{[frontend] listen}: a front end (a real twistd process) that serves its
public HTTP API on a UNIX socket instead of its TCP port, while the
replicas still reach its heartbeat port over TCP.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
import pytest_twisted
from treq.client import HTTPClient
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.internet.error import ConnectError
from twisted.internet.task import deferLater
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from pygmy.config import load
from pygmy.testing import START_TIMEOUT, Cluster

pytestmark = pytest.mark.integration


@implementer(IAgentEndpointFactory)
class UNIXSocket:
    """Every request to the UNIX socket at C{path}, whatever the URL's host."""

    def __init__(self, reactor, path: str):
        self._reactor = reactor
        self._path = path

    def endpointForURI(self, uri):
        """The socket's client endpoint."""
        return UNIXClientEndpoint(self._reactor, self._path)


def start_frontend(cluster: Cluster) -> subprocess.Popen:
    """
    Start the front end with the contract's command, without waiting: it
    does not answer on its TCP port, where L{Cluster.start} would look.
    Its output goes to L{frontend_log}.
    """
    with open(frontend_log(cluster), "ab") as log:
        process = subprocess.Popen(
            cluster.command("frontend"), cwd=cluster.directory, stdout=log, stderr=subprocess.STDOUT
        )
    cluster.processes["frontend"] = process
    return process


def frontend_log(cluster: Cluster) -> Path:
    """Where L{start_frontend} writes the front end's output."""
    return cluster.directory / "frontend-unix.log"


def log_tail(cluster: Cluster) -> str:
    """The end of the front end's output, for a failing assertion."""
    return "\n".join(frontend_log(cluster).read_text(errors="replace").splitlines()[-30:])


async def get(http, cluster, path, until=200):
    """GET C{path} with C{http} (over the socket) until it answers C{until}; its JSON body."""
    from twisted.internet import reactor

    deadline = reactor.seconds() + START_TIMEOUT
    while True:
        process = cluster.processes["frontend"]
        assert process.poll() is None, log_tail(cluster)
        try:
            response = await http.get("http://frontend" + path)
            body = await response.json()
            if response.code == until:
                return body
        except ConnectError:
            pass  # not listening yet
        assert reactor.seconds() < deadline, f"GET {path} did not answer {until}:\n{log_tail(cluster)}"
        await deferLater(reactor, 0.1, lambda: None)


@pytest_twisted.ensureDeferred
async def test_frontend_on_a_unix_socket(tmp_path):
    from twisted.internet import reactor

    cluster = Cluster(tmp_path)
    sock = tmp_path / "fe.sock"
    text = cluster.path.read_text().replace("[frontend]\n", f"[frontend]\nlisten = unix:{sock}\n")
    cluster.path.write_text(text)
    cluster.config = load(cluster.path)
    assert cluster.config.frontend.listen == f"unix:{sock}"
    pool = HTTPConnectionPool(reactor)
    http = HTTPClient(Agent.usingEndpointFactory(reactor, UNIXSocket(reactor, str(sock)), pool=pool))
    try:
        for service in ("catalog", "order"):
            for replica in cluster.config.replicas[service]:
                cluster.start(service, replica.name)
        start_frontend(cluster)
        assert await get(http, cluster, "/health") == {"status": "ok"}
        book = await get(http, cluster, "/lookup/1")
        assert book["id"] == 1
        assert book["title"] == "How to get a good grade in 677 in 20 minutes a day"
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", cluster.config.frontend.port), timeout=2).close()
    finally:
        cluster.stop_all()
        await pool.closeCachedConnections()
    assert cluster.processes == {}
    assert not sock.exists(), "a clean stop removes the socket file"
