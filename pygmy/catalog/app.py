"""
The catalog replica's own HTTP routes (mounted behind the shared secret by
L{pygmy.replication.replica.ReplicaApp}).

=========================================  ====================================
C{GET  /books?topic=T}                    C{{"items": [{"id", "title"}]}}
C{GET  /books?after=A&limit=N}            C{{"items": [book, ...], "next": id}}
C{GET  /books/<id>}                       C{book}
C{POST /books/<id>/update}                C{{"item": book, "seq": n}}
  body C{{"request_id", "cost"?, "stock_delta"?}}
C{POST /books/decrement}                  a batch (L{pygmy.net.batching})
  calls C{{"item_id", "request_id"}}       of C{{"item": book, "seq": n}},
                                           404 C{not_found}, 409
                                           C{out_of_stock}
C{POST /books/add}                        a batch of C{{"item": book,
  calls C{{"request_id", "title",          "seq": n}} (the new book, its id
  "topic", "cost", "stock"}}               the next one), 400
                                           C{bad_request}, 409 C{conflict}
=========================================  ====================================

Decrements come from the order primary, one per buy, so they arrive in
batches: one request carries every decrement the order primary started
while the previous request was on its way.  New books come from the front
ends' C{POST /books} the same way, so that a bulk load's concurrent adds
share round trips and commits.
"""

from __future__ import annotations

from klein import Klein

from pygmy.catalog.books import Catalog
from pygmy.net.batching import answer_batch
from pygmy.net.validate import (
    parse_id,
    parse_item_call,
    parse_new_book,
    parse_page,
    parse_request_id,
    parse_topic,
    parse_update,
)
from pygmy.net.web import install_error_handlers, json_response, read_json_body


class CatalogApp:
    """
    Books over HTTP for the front end and the order service.
    """

    app = Klein()

    def __init__(self, catalog: Catalog):
        self.catalog = catalog

    @app.route("/books", methods=["GET"])
    async def books(self, request):
        """Search by C{?topic=}, or a page of the list without it."""
        topics = request.args.get(b"topic")
        if topics is None:
            return json_response(request, await self.catalog.page(*parse_page(request.args)))
        topic = parse_topic(topics[0].decode("utf-8", "replace"))
        return json_response(request, {"items": await self.catalog.search(topic)})

    @app.route("/books/<item_id>", methods=["GET"])
    async def lookup(self, request, item_id):
        """One book by id."""
        return json_response(request, await self.catalog.lookup(parse_id(item_id)))

    @app.route("/books/<item_id>/update", methods=["POST"])
    async def update(self, request, item_id):
        """Change the cost and/or the stock of a book."""
        item_id = parse_id(item_id)
        body = read_json_body(request)
        request_id = parse_request_id(body.pop("request_id", None))
        write = await self.catalog.update(item_id, parse_update(body), request_id)
        return _written(request, write)

    @app.route("/books/decrement", methods=["POST"])
    async def decrement(self, request):
        """Take one copy of a book per call, once per request id."""
        return await answer_batch(request, self._decrement)

    async def _decrement(self, call: dict) -> dict:
        write = await self.catalog.decrement(*parse_item_call(call))
        return {"item": write.row, "seq": write.seq}

    @app.route("/books/add", methods=["POST"])
    async def add(self, request):
        """Add one book per call, once per request id."""
        return await answer_batch(request, self._add)

    async def _add(self, call: dict) -> dict:
        book = dict(call)
        request_id = parse_request_id(book.pop("request_id", None))
        write = await self.catalog.add(parse_new_book(book), request_id)
        return {"item": write.row, "seq": write.seq}

    install_error_handlers(app)


def _written(request, write) -> bytes:
    """The reply to a write of a book."""
    return json_response(request, {"item": write.row, "seq": write.seq})
