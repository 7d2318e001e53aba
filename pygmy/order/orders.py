"""
The order service's data: the C{orders} table and the buy operation.

An order's id is the C{seq} of the write-log entry that recorded it, so ids
are unique and increasing on every replica, across failovers too.
"""

from __future__ import annotations

from pygmy.errors import NotFound
from pygmy.net.routing import ServiceRoutes
from pygmy.replication.store import Store, Table, change, fingerprint_of

ORDERS = Table(
    name="orders",
    columns=("id", "item_id", "created", "request_id"),
    schema="""
    CREATE TABLE IF NOT EXISTS orders (
        id         INTEGER PRIMARY KEY,
        item_id    INTEGER NOT NULL,
        created    TEXT NOT NULL,
        request_id TEXT NOT NULL UNIQUE
    );
    """,
)

_COLUMNS = ", ".join(ORDERS.columns)


def public(order: dict) -> dict:
    """An order as clients see it: without the internal request id."""
    return {"id": order["id"], "item_id": order["item_id"], "created": order["created"]}


def _select(txn, where: str, value):
    found = txn.execute(f"SELECT {_COLUMNS} FROM orders WHERE {where} = ?", (value,)).fetchone()
    return None if found is None else dict(zip(ORDERS.columns, found, strict=True))


def _record(txn, seq, created, item_id, request_id):
    order = {"id": seq, "item_id": item_id, "created": created, "request_id": request_id}
    txn.execute(
        f"INSERT INTO orders ({_COLUMNS}) VALUES (?, ?, ?, ?)",
        tuple(order[column] for column in ORDERS.columns),
    )
    return [change(ORDERS, order)]


class Orders:
    """
    Orders over a replica's L{Store}; buys go through the catalog.

    @param catalog: where the catalog's primary is.
    @param writer: what writes go through: the replica's node (which
        replicates them), or the store itself.
    """

    def __init__(self, store: Store, catalog: ServiceRoutes, writer=None):
        self.store = store
        self.catalog = catalog
        self.writer = store if writer is None else writer

    async def get(self, order_id: int) -> dict:
        """The order C{order_id}; raises L{NotFound}."""
        order = await self.store.read(_select, "id", order_id)
        if order is None:
            raise NotFound(f"No order with id {order_id}.")
        return order

    async def buy(self, item_id: int, request_id: str) -> dict:
        """
        Buy one copy of C{item_id}, once per C{request_id}.

        The catalog's decrement and the order record both carry
        C{request_id}, so a retry after any failure decrements at most once
        and returns the same order.

        @raise NotFound: no such book.
        @raise OutOfStock: no copy left.
        @raise Conflict: C{request_id} was used to buy another book.
        """
        # No look-up first: on a retry the catalog replays its decrement
        # and our log replays the order, both by request id; a request id
        # reused for another book is refused by the catalog (Conflict).
        decrement = {"item_id": item_id, "request_id": request_id}
        await self.catalog.write(lambda catalog: catalog.batched("/books/decrement", decrement))
        write = await self.writer.write(
            request_id, _record, item_id, request_id, fingerprint=fingerprint_of("buy", item_id)
        )
        return write.row
