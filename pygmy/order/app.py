"""
The order replica's own HTTP routes (mounted behind the shared secret by
L{pygmy.replication.replica.ReplicaApp}).

====================================  ==========================================
C{POST /orders/buy}                  a batch (L{pygmy.net.batching}) of
  calls C{{"item_id", "request_id"}}  C{{"order": order}}, 404 C{not_found},
                                      409 C{out_of_stock}
C{GET  /orders/<id>}                 C{{"order": order}}
====================================  ==========================================

Buys come from the front end in batches: one request carries every buy it
received while the previous request was on its way.
"""

from __future__ import annotations

from klein import Klein

from pygmy.net.batching import answer_batch
from pygmy.net.validate import parse_id, parse_item_call
from pygmy.net.web import install_error_handlers, json_response
from pygmy.order.orders import Orders, public


class OrderApp:
    """
    Orders over HTTP for the front end.
    """

    app = Klein()

    def __init__(self, orders: Orders):
        self.orders = orders

    @app.route("/orders/buy", methods=["POST"])
    async def buy(self, request):
        """Buy one copy of a book per call."""
        return await answer_batch(request, self._buy)

    async def _buy(self, call: dict) -> dict:
        return {"order": public(await self.orders.buy(*parse_item_call(call)))}

    @app.route("/orders/<order_id>", methods=["GET"])
    async def get(self, request, order_id):
        """One order by id."""
        order = await self.orders.get(parse_id(order_id, "order id"))
        return json_response(request, {"order": public(order)})

    install_error_handlers(app)
