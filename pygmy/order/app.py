"""
The order replica's own HTTP routes (mounted behind the shared secret by
:class:`pygmy.replica.ReplicaApp`).

====================================  ==========================================
``POST /orders``                      ``{"order": order}``
  body ``{"item_id", "request_id"}``  404 ``not_found``, 409 ``out_of_stock``
``GET  /orders/<id>``                 ``{"order": order}``
====================================  ==========================================
"""

from __future__ import annotations

from klein import Klein

from pygmy.order.orders import Orders, public
from pygmy.validate import parse_id, parse_request_id
from pygmy.web import install_error_handlers, json_response, read_json_body


class OrderApp:
    """
    Orders over HTTP for the front end.
    """

    app = Klein()

    def __init__(self, orders: Orders):
        self.orders = orders

    @app.route("/orders", methods=["POST"])
    async def buy(self, request):
        """Buy one copy of a book."""
        body = read_json_body(request)
        item_id = parse_id(body.get("item_id"), "item_id")
        request_id = parse_request_id(body.get("request_id"))
        order = await self.orders.buy(item_id, request_id)
        return json_response(request, {"order": public(order)})

    @app.route("/orders/<order_id>", methods=["GET"])
    async def get(self, request, order_id):
        """One order by id."""
        order = await self.orders.get(parse_id(order_id, "order id"))
        return json_response(request, {"order": public(order)})

    install_error_handlers(app)
