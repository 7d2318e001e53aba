"""
A replica's heartbeat connections to every front end of the cluster
(DESIGN.md section 5): one reconnecting
L{BeatFactory<pygmy.replication.heartbeat.BeatFactory>} per front end's
C{heartbeat_port}, all of them feeding one node through L{FrontEnds}.

Each connection beats on its own, so every front end knows who is alive;
its VIEW lines go to the node, which follows the highest view number from
whichever front end it came (the followers push only views the manager
stored, so they never disagree, they may only lag).  What the node says to
"the front end" (SYNCED, UNREACHABLE, an early BEAT) goes to every
connected one: only the view manager acts on it.
"""

from __future__ import annotations

from twisted.logger import Logger

from pygmy.clock import monotonic
from pygmy.config import Config
from pygmy.replication.heartbeat import BeatFactory

log = Logger()


class FrontEnds:
    """
    The node as each heartbeat connection sees it, and the one C{heartbeat}
    the node sees: every connected front end.

    The node is told of a connection (C{heartbeat_connected}) when the first
    one comes, and of the end (C{heartbeat_disconnected}) when the last one
    goes; whatever else a connection asks of the node (its name, view,
    position, role, the VIEW lines) is the node's own.

    @ivar connections: the connections to front ends now up, oldest first.
    """

    def __init__(self, node):
        self._node = node
        self.connections: list = []

    def __getattr__(self, name: str):
        return getattr(self._node, name)

    def heartbeat_connected(self, protocol) -> None:
        """C{protocol} (a connection to one front end) is up."""
        first = not self.connections
        self.connections.append(protocol)
        if first:
            self._node.heartbeat_connected(self)

    def heartbeat_disconnected(self, protocol) -> None:
        """C{protocol} is gone; with it the last one, the node has no front end."""
        if protocol in self.connections:
            self.connections.remove(protocol)
            if not self.connections:
                self._node.heartbeat_disconnected(self)

    def send(self, line: bytes) -> None:
        """Send C{line} to every connected front end."""
        for connection in list(self.connections):
            connection.send(line)

    def beat(self) -> None:
        """Beat now on every connection."""
        for connection in list(self.connections):
            connection.beat()


class Connectors:
    """
    Every front end's connector and reconnecting factory, stopped together
    (what L{NodeService<pygmy.replication.node.NodeService>} stops as one).
    """

    def __init__(self):
        self.factories: list = []
        self.connectors: list = []

    def stopTrying(self) -> None:
        """Stop reconnecting to every front end."""
        for factory in self.factories:
            factory.stopTrying()

    def disconnect(self) -> None:
        """Close every connection (or attempt) to a front end."""
        for connector in self.connectors:
            connector.disconnect()


def connect_to_frontends(config: Config, node, reactor) -> tuple[Connectors, Connectors]:
    """
    Connect C{node} to every front end of C{config}, each reconnecting with
    back-off.

    @return: the connections, twice (as the factory and the connector
        L{NodeService<pygmy.replication.node.NodeService>} stops).
    """
    cluster = config.cluster
    frontends = FrontEnds(node)
    links = Connectors()
    for front in config.frontends.values():
        factory = BeatFactory(frontends, cluster.secret, monotonic(reactor), cluster.heartbeat_interval)
        links.factories.append(factory)
        links.connectors.append(reactor.connectTCP(front.host, front.heartbeat_port, factory))
    return links, links
