"""
Rows and state of a store, for snapshot tests: L{add_books} writes new
books in one write (so the log and the digest follow), and L{state} is
everything a snapshot must carry (rows, position, checksum, requests),
after checking that the kept digest matches a recount.  For stores whose
interactions complete at once (L{tests.fakes.sync_store}).
"""

from __future__ import annotations

from pygmy.catalog.books import BOOKS
from pygmy.replication.tables import change
from tests.fakes import result


def add_books(store, count: int, start: int = 100) -> None:
    """C{count} books from id C{start}, in one write (so the log and the digest follow)."""

    def mutate(txn, seq, created):
        rows = [
            {"id": start + n, "title": f"T{start + n}", "topic": "more", "cost": "1.00", "stock": n}
            for n in range(count)
        ]
        BOOKS.put(txn, rows)
        return [change(BOOKS, row) for row in rows]

    result(store.write(None, mutate))


def requests(store) -> list[tuple]:
    return result(store.read(lambda txn: txn.execute("SELECT * FROM requests ORDER BY request_id").fetchall()))


def state(store) -> dict:
    """Everything a snapshot must carry: rows, position, checksum, requests; and the digest checked."""
    verified = result(store.verify())
    assert verified["match"], verified
    return {"dump": result(store.dump()), "status": result(store.status()), "requests": requests(store)}
