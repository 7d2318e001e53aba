"""
The twistd service of one catalog replica.
"""

from __future__ import annotations

from pygmy.catalog.app import CatalogApp
from pygmy.catalog.books import BOOKS, Catalog, seed
from pygmy.catalog.coherence import AcknowledgedWrites, InvalidationPush
from pygmy.clock import monotonic
from pygmy.config import Config
from pygmy.replication.replica import ReplicaParts, replica_service
from pygmy.replication.store import Store

__all__ = ["InvalidationPush", "catalog_service"]


def catalog_service(config: Config, name: str, reactor):
    """
    Build catalog replica C{name} of C{config}: its database in
    C{data_dir/catalog-<name>.sqlite}, its node (which, as primary, pushes
    invalidations to the front ends and acknowledges a write once they have
    answered; L{pygmy.catalog.coherence}) and its HTTP listener.
    """
    replica = config.replica("catalog", name)
    store = Store(config.cluster.data_dir / f"catalog-{name}.sqlite", (BOOKS,), seed, reactor)
    parts = ReplicaParts(config, replica, store, reactor)
    push = InvalidationPush(parts.node, config.cluster.heartbeat_timeout, monotonic(reactor))
    parts.node.observe_writes(push)
    app = CatalogApp(Catalog(store, AcknowledgedWrites(parts.node, push)))
    return replica_service(config, replica, parts, app, reactor)
