"""
The order service's data: the C{orders} table, and buys exactly once
across the two services.

An order's id is the C{seq} of the write-log entry that recorded it, so ids
are unique and increasing on every replica, across failovers too.

A buy's life (DESIGN.md section 6), each step a replicated write or the
catalog's idempotent decrement, all under the buy's request id:

1. the **intent**: a row of C{buys} in state C{pending}, written (and so on
   every in-sync backup) before the catalog is asked for anything;
2. the catalog's conditional decrement, keyed by the request id, so that
   doing it again never takes a second copy;
3. the **outcome**: the order, with the intent marked C{ordered} in the
   same transaction; or, if the catalog refused for good (no such book, no
   copy left), the intent marked with the refusal.

A started buy runs to its end whatever happens to its caller (L{Tasks}),
and a replica that becomes primary finishes every pending intent it holds
(L{Orders.recover}): replaying step 2 is harmless, so each pending intent
gets exactly one outcome, and every decrement its order, even when nobody
retries.  A retry with the same request id answers from the outcome.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from pygmy.errors import ERRORS_BY_CODE, BadRequest, Conflict, NotFound, OutOfStock, PygmyError
from pygmy.net.routing import ServiceRoutes
from pygmy.replication.store import Store
from pygmy.replication.tables import Table, change, fingerprint_of
from pygmy.tasks import Tasks

log = Logger()

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

#: One row per buy: its intent, then its outcome.
BUYS = Table(
    name="buys",
    columns=("request_id", "item_id", "state", "order_id", "message", "created"),
    schema="""
    CREATE TABLE IF NOT EXISTS buys (
        request_id TEXT PRIMARY KEY,
        item_id    INTEGER NOT NULL,
        state      TEXT NOT NULL,      -- pending, ordered, or the refusal's error code
        order_id   INTEGER,
        message    TEXT,               -- the refusal's message
        created    TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS buys_pending ON buys (state) WHERE state = 'pending';
    """,
)

PENDING, ORDERED = "pending", "ordered"
#: Refusals of the catalog that are final: the buy is over, without an order.
FINAL = (NotFound, OutOfStock, Conflict, BadRequest)
#: The request id of a buy's intent, beside the buy's own.
INTENT = "intent:"

_COLUMNS = ", ".join(ORDERS.columns)
_BUY_COLUMNS = ", ".join(BUYS.columns)


def public(order: dict) -> dict:
    """An order as clients see it: without the internal request id."""
    return {"id": order["id"], "item_id": order["item_id"], "created": order["created"]}


def _select(txn, where: str, value):
    found = txn.execute(f"SELECT {_COLUMNS} FROM orders WHERE {where} = ?", (value,)).fetchone()
    return None if found is None else dict(zip(ORDERS.columns, found, strict=True))


def _buy_row(txn, request_id: str) -> dict | None:
    found = txn.execute(f"SELECT {_BUY_COLUMNS} FROM buys WHERE request_id = ?", (request_id,)).fetchone()
    return None if found is None else dict(zip(BUYS.columns, found, strict=True))


def _pending(txn) -> list[dict]:
    query = f"SELECT {_BUY_COLUMNS} FROM buys WHERE state = ? ORDER BY created"
    return [dict(zip(BUYS.columns, row, strict=True)) for row in txn.execute(query, (PENDING,))]


def _put_buy(txn, row: dict) -> dict:
    BUYS.put(txn, [row], replace=True)
    return change(BUYS, row)


def _record_intent(txn, seq, created, item_id, request_id):
    row = _buy_row(txn, request_id)
    if row is None:
        # An order of this request id from before intents existed is its outcome.
        order = _select(txn, "request_id", request_id)
        row = {
            "request_id": request_id,
            "item_id": item_id,
            "state": PENDING if order is None else ORDERED,
            "order_id": None if order is None else order["id"],
            "message": None,
            "created": created,
        }
    return [_put_buy(txn, row)]


def _record(txn, seq, created, item_id, request_id):
    order = {"id": seq, "item_id": item_id, "created": created, "request_id": request_id}
    txn.execute(
        f"INSERT INTO orders ({_COLUMNS}) VALUES (?, ?, ?, ?)",
        tuple(order[column] for column in ORDERS.columns),
    )
    buy = _buy_row(txn, request_id) or {"request_id": request_id, "item_id": item_id, "created": created}
    return [change(ORDERS, order), _put_buy(txn, {**buy, "state": ORDERED, "order_id": seq, "message": None})]


def _refuse(txn, seq, created, item_id, request_id, code, message):
    buy = _buy_row(txn, request_id) or {"request_id": request_id, "item_id": item_id, "created": created}
    return [_put_buy(txn, {**buy, "state": code, "order_id": None, "message": message})]


def outcome(changes: list[dict]) -> dict:
    """
    The order a buy's outcome write recorded; raise the refusal it
    recorded instead.
    """
    for changed in changes:
        if changed["table"] == ORDERS.name:
            return changed["row"]
    for changed in changes:
        row = changed["row"]
        if changed["table"] == BUYS.name and row["state"] not in (PENDING, ORDERED):
            raise ERRORS_BY_CODE.get(row["state"], PygmyError)(row["message"] or "This buy was refused.")
    raise PygmyError("This buy has no outcome.")


class Orders:
    """
    Orders over a replica's L{Store}; buys go through the catalog.

    @param catalog: where the catalog's primary is.
    @param writer: what writes go through: the replica's node (which
        replicates them), or the store itself.
    @param clock: runs the recovery of pending intents while primary.
    @param recover_every: seconds between two looks for pending intents.
    """

    def __init__(self, store: Store, catalog: ServiceRoutes, writer=None, clock=None, recover_every: float = 2.0):
        self.store = store
        self.catalog = catalog
        self.writer = store if writer is None else writer
        self.buys = Tasks("buy")
        self._recovery = LoopingCall(self.recover)
        if clock is not None:
            self._recovery.clock = clock
        self._recover_every = recover_every

    async def get(self, order_id: int) -> dict:
        """The order C{order_id}; raises L{NotFound}."""
        order = await self.store.read(_select, "id", order_id)
        if order is None:
            raise NotFound(f"No order with id {order_id}.")
        return order

    def buy(self, item_id: int, request_id: str) -> Deferred:
        """
        Buy one copy of C{item_id}, once per C{request_id}; the buy runs to
        its end even if the returned L{Deferred} is cancelled, and a call
        with a request id already being bought joins that buy.

        @return: a Deferred of the order row; fails with L{NotFound},
            L{OutOfStock}, or L{Conflict} (C{request_id} was used to buy
            another book).
        """
        return self.buys.run((request_id, item_id), lambda: self._buy(item_id, request_id))

    async def _buy(self, item_id: int, request_id: str) -> dict:
        intent = await self.writer.write(
            INTENT + request_id, _record_intent, item_id, request_id, fingerprint=fingerprint_of("buy", item_id)
        )
        return await self._finish(item_id, request_id, fresh=not intent.replayed)

    async def _finish(self, item_id: int, request_id: str, fresh: bool = False) -> dict:
        """
        Steps 2 and 3 of a buy whose intent is recorded.

        @param fresh: the intent was recorded just now (not a replay), so
            the buy is pending and nothing else happened to it: no need to
            read its state (one trip to the database thread less per buy).
            Should the intent recovery have finished it meanwhile, the
            catalog and the order write replay what it did.
        """
        buy = None if fresh else await self.store.read(_buy_row, request_id)
        if buy is not None and buy["state"] == ORDERED:
            order = await self.store.read(_select, "id", buy["order_id"])
            if order is not None:
                return order
        elif buy is not None and buy["state"] != PENDING:
            return outcome([change(BUYS, buy)])
        fingerprint = fingerprint_of("buy", item_id)
        decrement = {"item_id": item_id, "request_id": request_id}
        try:
            await self.catalog.write(lambda catalog: catalog.batched("/books/decrement", decrement))
        except FINAL as refusal:
            write = await self.writer.write(
                request_id, _refuse, item_id, request_id, refusal.code, refusal.message, fingerprint=fingerprint
            )
        else:
            write = await self.writer.write(request_id, _record, item_id, request_id, fingerprint=fingerprint)
        return outcome(write.entry["changes"])

    # Recovery (primary)

    def became(self, role: str) -> None:
        """
        The replica's role changed: as primary, finish the pending intents
        now and then; otherwise stop.
        """
        if role == "primary" and not self._recovery.running:
            self._recovery.start(self._recover_every, now=True).addErrback(
                lambda f: log.failure("intent recovery loop", f)
            )
        elif role != "primary" and self._recovery.running:
            self._recovery.stop()

    def recover(self) -> Deferred:
        """Finish every pending intent that no running buy is finishing."""
        return Deferred.fromCoroutine(self._recover()).addErrback(
            lambda f: log.failure("finishing pending buys failed", f)
        )

    async def _recover(self) -> None:
        for buy in await self.store.read(_pending):
            key = (buy["request_id"], buy["item_id"])
            if self.buys.running(key):
                continue
            log.info("finishing the pending buy {request_id}", request_id=buy["request_id"])
            try:
                await self.buys.run(key, lambda b=buy: self._finish(b["item_id"], b["request_id"]))
            except FINAL:
                pass
            except PygmyError as e:
                # The catalog is out of reach (or we are no longer primary): next round.
                log.info("pending buy {request_id} waits: {why}", request_id=buy["request_id"], why=e.message)
                return

    def stop(self) -> None:
        """Stop looking for pending intents."""
        if self._recovery.running:
            self._recovery.stop()
