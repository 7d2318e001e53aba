"""
The twistd service of one order replica.
"""

from __future__ import annotations

from twisted.application.service import Service

from pygmy.config import Config
from pygmy.order.app import OrderApp
from pygmy.order.orders import BUYS, ORDERS, Orders
from pygmy.replication.replica import ReplicaParts, replica_service
from pygmy.replication.store import Store


def order_service(config: Config, name: str, reactor):
    """
    Build order replica C{name} of C{config}: its database in
    C{data_dir/order-<name>.sqlite}, its node (which also follows the
    catalog's view, to reach its primary) and its HTTP listener.

    @param reactor: the reactor (and clock) its parts run on.
    """
    replica = config.replica("order", name)
    store = Store(config.cluster.data_dir / f"order-{name}.sqlite", (ORDERS, BUYS), None, reactor)
    parts = ReplicaParts(config, replica, store, reactor)
    orders = Orders(
        store, parts.routes["catalog"], parts.node, clock=reactor, recover_every=config.cluster.heartbeat_interval * 4
    )
    parts.node.observe_role(orders.became)
    service = replica_service(config, replica, parts, OrderApp(orders), reactor)
    OrdersService(orders).setServiceParent(service)
    return service


class OrdersService(Service):
    """Stops the recovery of pending buys when the replica stops."""

    def __init__(self, orders: Orders):
        self.orders = orders

    def stopService(self):
        """Stop looking for pending buys."""
        super().stopService()
        self.orders.stop()
