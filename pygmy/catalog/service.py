"""
The twistd service of one catalog replica.
"""

from __future__ import annotations

from pygmy.catalog.app import CatalogApp
from pygmy.catalog.books import BOOKS, Catalog, seed
from pygmy.config import Config
from pygmy.replication.replica import ReplicaParts, replica_service
from pygmy.replication.store import Store


def catalog_service(config: Config, name: str, reactor):
    """
    Build catalog replica C{name} of C{config}: its database in
    C{data_dir/catalog-<name>.sqlite}, its node and its HTTP listener.
    """
    replica = config.replica("catalog", name)
    store = Store(config.cluster.data_dir / f"catalog-{name}.sqlite", (BOOKS,), seed, reactor)
    parts = ReplicaParts(config, replica, store, reactor)
    app = CatalogApp(Catalog(store, parts.node))
    return replica_service(config, replica, parts, app, reactor)
