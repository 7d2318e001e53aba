"""
The twistd service of one catalog replica.
"""

from __future__ import annotations

from pygmy.catalog.app import CatalogApp
from pygmy.catalog.books import BOOKS, Catalog, seed
from pygmy.config import Config
from pygmy.replication.heartbeat import invalidate_line
from pygmy.replication.replica import ReplicaParts, replica_service
from pygmy.replication.store import Store


class InvalidationPush:
    """
    Tells the front end which books a write changed, with one
    C{INVALIDATE <id> <seq> <topic>} line per book over the heartbeat
    connection, so that its cache drops them, and the searches of their
    topics, before the write is acknowledged (the catalog's books are what
    the front end caches).  The topic is what makes a new book show: no
    cached search lists its id yet, but every search of its topic goes.

    Installed on a catalog node with
    L{observe_writes<pygmy.replication.node.Node.observe_writes>}.

    @param node: the catalog replica's node; its C{heartbeat} (if connected)
        carries the lines.
    """

    def __init__(self, node):
        self.node = node

    def __call__(self, write) -> None:
        """Push the changes of C{write}, a new write of this primary."""
        heartbeat = self.node.heartbeat
        if heartbeat is None:
            return
        for changed in write.entry["changes"]:
            row = changed["row"]
            heartbeat.send(invalidate_line(row["id"], write.seq, row["topic"]))


def catalog_service(config: Config, name: str, reactor):
    """
    Build catalog replica C{name} of C{config}: its database in
    C{data_dir/catalog-<name>.sqlite}, its node (which pushes invalidations
    to the front end) and its HTTP listener.
    """
    replica = config.replica("catalog", name)
    store = Store(config.cluster.data_dir / f"catalog-{name}.sqlite", (BOOKS,), seed, reactor)
    parts = ReplicaParts(config, replica, store, reactor)
    parts.node.observe_writes(InvalidationPush(parts.node))
    app = CatalogApp(Catalog(store, parts.node))
    return replica_service(config, replica, parts, app, reactor)
