"""
The catalog's data: the C{books} table, its seed, and the operations on it.

Costs are stored as canonical two-decimal strings (C{"19.99"}) so that a row
in the database, in the write log and in an HTTP reply is the same dict.

Searches match the topic case-insensitively in every script: each row also
stores C{topic_key}, its topic folded by
L{fold_topic<pygmy.net.validate.fold_topic>}, a derived column
(L{Derived<pygmy.replication.tables.Derived>}) that every replica computes for
itself and indexes (C{books_topic_key}), and that no row shows.  (SQLite's
C{COLLATE NOCASE}, which the index C{books_topic} of schema version 4 used,
folds ASCII only: C{"ÉCOLE"} missed C{"école"}.)
"""

from __future__ import annotations

from pygmy.errors import BadRequest, NotFound, OutOfStock
from pygmy.net.validate import MAX_ID, fold_topic
from pygmy.replication.store import Store
from pygmy.replication.tables import Derived, Table, change, fingerprint_of

BOOKS = Table(
    name="books",
    columns=("id", "title", "topic", "cost", "stock"),
    schema="""
    CREATE TABLE IF NOT EXISTS books (
        id    INTEGER PRIMARY KEY,
        title TEXT NOT NULL,
        topic TEXT NOT NULL,
        cost  TEXT NOT NULL,
        stock INTEGER NOT NULL CHECK (stock >= 0)
    );
    DROP INDEX IF EXISTS books_topic;
    """,
    derived=(Derived("topic_key", lambda row: fold_topic(row["topic"])),),
)

SEED = (
    (1, "How to get a good grade in 677 in 20 minutes a day", "distributed systems", "19.99", 1000),
    (2, "RPCs for Dummies", "distributed systems", "24.50", 1000),
    (3, "Xen and the Art of Surviving Graduate School", "graduate school", "15.00", 1000),
    (4, "Cooking for the Impatient Graduate Student", "graduate school", "12.75", 1000),
    (5, "How to finish Project 3 on time", "project management", "29.95", 1000),
    (6, "Why theory classes are so hard", "theory", "9.99", 1000),
    (7, "Spring in the Pioneer Valley", "travel", "17.25", 1000),
)

_COLUMNS = ", ".join(BOOKS.columns)


def seed(cursor) -> None:
    """Fill a new catalog with the seven books of the store."""
    cursor.executemany(f"INSERT INTO books ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)", SEED)


def _row(values) -> dict:
    return dict(zip(BOOKS.columns, values, strict=True))


def _get(txn, item_id: int) -> dict:
    found = txn.execute(f"SELECT {_COLUMNS} FROM books WHERE id = ?", (item_id,)).fetchone()
    if found is None:
        raise NotFound(f"No book with id {item_id}.")
    return _row(found)


class Catalog:
    """
    Searches, lookups and writes of books over a replica's L{Store}.

    @param writer: what writes go through: the replica's node (which
        replicates them), or the store itself.
    """

    def __init__(self, store: Store, writer=None):
        self.store = store
        self.writer = store if writer is None else writer

    def search(self, topic: str):
        """@return: Deferred of C{[{"id", "title"}]} for C{topic}, any case."""
        return self.store.read(self._search, topic)

    @staticmethod
    def _search(txn, topic):
        return [
            {"id": id, "title": title}
            for id, title in txn.execute(
                "SELECT id, title FROM books WHERE topic_key = ? ORDER BY id",
                (fold_topic(topic),),
            )
        ]

    def lookup(self, item_id: int):
        """@return: Deferred of the book's row; fails with L{NotFound}."""
        return self.store.read(_get, item_id)

    def list(self, after: int = 0, limit: int = -1):
        """
        @return: Deferred of the rows of the books whose id is above
            C{after}, by id: at most C{limit} of them, every one if it is
            negative.
        """
        return self.store.read(self._list, after, limit)

    @staticmethod
    def _list(txn, after, limit):
        # The primary key's range: a seek to after and a walk of limit rows.
        query = f"SELECT {_COLUMNS} FROM books WHERE id > ? ORDER BY id LIMIT ?"
        return [_row(v) for v in txn.execute(query, (after, limit))]

    async def page(self, after: int, limit: int) -> dict:
        """
        A page of the list: C{{"items": rows, "next": id or None}}, the
        books above C{after} (at most C{limit}), and as C{next} the id of the
        last of them if another book follows.
        """
        rows = await self.list(after, limit + 1)
        items = rows[:limit]
        return {"items": items, "next": items[-1]["id"] if len(rows) > limit else None}

    def add(self, book: dict, request_id: str):
        """
        Add a book (C{{"title", "topic", "cost", "stock"}}, clean) under the
        next id: one above the highest, taken inside the write's transaction
        on the primary, so concurrent adds never share an id and every
        backup gets the same one through the log entry.

        @return: Deferred of a L{Write} whose row is the new book; the same
            C{request_id} again replays the first add, and fails with
            L{Conflict} if it asked for another book.
        """
        fingerprint = fingerprint_of("add", book)
        return self.writer.write(request_id, self._add, book, fingerprint=fingerprint)

    @staticmethod
    def _add(txn, seq, created, book):
        (highest,) = txn.execute("SELECT max(id) FROM books").fetchone()
        highest = highest or 0
        if highest >= MAX_ID:
            raise BadRequest(f"The catalog has no id left above {highest}.")
        row = {"id": highest + 1, "title": book["title"], "topic": book["topic"], "cost": book["cost"]}
        row["stock"] = book["stock"]
        BOOKS.put(txn, [row])
        return [change(BOOKS, row)]

    def update(self, item_id: int, update: dict, request_id: str):
        """
        Set the cost and/or add C{stock_delta} to the stock.

        @return: Deferred of a L{Write} whose row is the updated book; fails
            with L{NotFound}, L{BadRequest} if stock would go negative, or
            L{Conflict} if C{request_id} was used for another request.
        """
        fingerprint = fingerprint_of("update", item_id, update)
        return self.writer.write(request_id, self._update, item_id, update, fingerprint=fingerprint)

    @staticmethod
    def _update(txn, seq, created, item_id, update):
        book = _get(txn, item_id)
        stock = book["stock"] + update.get("stock_delta", 0)
        if stock < 0:
            raise BadRequest(
                f"stock_delta {update['stock_delta']} would take the stock of "
                f"book {item_id} below zero (it is {book['stock']})."
            )
        book.update(stock=stock, cost=update.get("cost", book["cost"]))
        txn.execute(
            "UPDATE books SET cost = ?, stock = ? WHERE id = ?",
            (book["cost"], book["stock"], item_id),
        )
        return [change(BOOKS, book)]

    def decrement(self, item_id: int, request_id: str):
        """
        Take one copy of a book if any is left, once per C{request_id}.

        @return: Deferred of a L{Write} whose row is the book after the
            decrement; fails with L{NotFound} or L{OutOfStock}.
        """
        fingerprint = fingerprint_of("decrement", item_id)
        return self.writer.write(request_id, self._decrement, item_id, fingerprint=fingerprint)

    @staticmethod
    def _decrement(txn, seq, created, item_id):
        book = _get(txn, item_id)
        if book["stock"] <= 0:
            raise OutOfStock(f"Book {item_id} is out of stock.")
        book["stock"] -= 1
        txn.execute("UPDATE books SET stock = ? WHERE id = ?", (book["stock"], item_id))
        return [change(BOOKS, book)]
