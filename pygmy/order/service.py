"""
The twistd service of one order replica.
"""

from __future__ import annotations

from pygmy.config import Config
from pygmy.order.app import OrderApp
from pygmy.order.orders import ORDERS, Orders
from pygmy.remote import HTTPClientService
from pygmy.replica import replica_service
from pygmy.routing import routes_for
from pygmy.storage import Store


def order_service(config: Config, name: str, reactor):
    """
    Build order replica ``name`` of ``config``: its database in
    ``data_dir/order-<name>.sqlite``, a client for the catalog, and its HTTP
    listener.
    """
    replica = config.replica("order", name)
    store = Store(config.cluster.data_dir / f"order-{name}.sqlite", (ORDERS,), None, reactor)
    http = HTTPClientService(reactor)
    orders = Orders(store, routes_for(config, "catalog", http))
    return replica_service(config, replica, store, OrderApp(orders), reactor, http=http)
