"""
The digest of a replica's service tables, kept up to date as rows change,
so that C{GET /status} reads it in O(1) instead of hashing every row.

Each row has a hash (SHA-256 of C{[table, row]} as canonical JSON), kept in
C{row_hashes(tbl, key, hash)} under the row's primary key (its table's
first column); each table's digest, in C{digests(tbl, value)}, is the sum
of its rows' hashes modulo 2**256, as 64 hex digits.  A sum does not
depend on the order rows were written in, so replicas with equal rows have
equal digests, whichever way they got them.  Neither the log, nor
C{requests}, nor C{meta} take part.

 - L{track} runs in the transaction of every write and applied entry,
   after its rows changed: for each changed row it takes the old hash out
   and adds the row's new one (read back by key: the row as stored).  A
   transaction of many (a batch of writes, of applied entries) takes each
   one's L{deltas} and L{settle}s their sum once, at its end.
 - L{add} counts rows inserted where none were: each page of a snapshot's
   install (which starts from empty tables).
 - L{rebuild} sets everything from the rows themselves: when a database
   is made or upgraded to schema version 4.
 - L{recount} computes the digests afresh without changing anything (the
   check of C{GET /admin/verify}).

L{rebuild} and L{recount} read the tables in pages of L{PAGE} rows, by key,
so their memory stays flat however large the tables are.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Iterable, Iterator

if TYPE_CHECKING:
    from pygmy.replication.tables import Table

#: Digests are sums modulo this.
MODULUS = 1 << 256

#: Rows read at once by L{rebuild} and L{recount}.
PAGE = 1000


def row_hash(table: str, row: dict) -> int:
    """The hash of C{row} of C{table}, as an integer below L{MODULUS}."""
    canonical = json.dumps([table, row], sort_keys=True, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(canonical.encode("utf-8")).digest(), "big")


def hex_of(value: int) -> str:
    """C{value} as 64 hex digits."""
    return format(value % MODULUS, "064x")


def checksum(digests: dict[str, str]) -> str:
    """The C{/status} checksum: a SHA-256 of the per-table digests."""
    canonical = json.dumps(digests, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def kept(txn, tables: Iterable[Table]) -> dict[str, str]:
    """The kept digest of each table: one lookup by key each."""
    return {table.name: hex_of(_digest(txn, table.name)) for table in tables}


def _digest(txn, name: str) -> int:
    found = txn.execute("SELECT value FROM digests WHERE tbl = ?", (name,)).fetchone()
    return 0 if found is None else int(found[0], 16)


def _get(txn, table: Table, key) -> dict | None:
    query = f"SELECT {', '.join(table.columns)} FROM {table.name} WHERE {table.columns[0]} = ?"
    found = txn.execute(query, (key,)).fetchone()
    return None if found is None else dict(zip(table.columns, found, strict=True))


def track(txn, tables: tuple[Table, ...], changes: list[dict]) -> None:
    """
    Bring the digests up to date after the rows of C{changes} (a log
    entry's) changed: a few lookups by key per row.

    @raise KeyError: a change names a table not in C{tables}.
    """
    settle(txn, deltas(txn, tables, changes))


def deltas(txn, tables: tuple[Table, ...], changes: list[dict]) -> dict[str, int]:
    """
    Bring the row hashes up to date after the rows of C{changes} changed,
    and return what each table's digest must change by: a transaction of
    many writes adds up their deltas and L{settle}s them once, at its end.

    @raise KeyError: a change names a table not in C{tables}.
    """
    by_name = {table.name: table for table in tables}
    sums: dict[str, int] = {}
    for changed in changes:
        table = by_name[changed["table"]]
        key = str(changed["row"][table.columns[0]])
        old = txn.execute("SELECT hash FROM row_hashes WHERE tbl = ? AND key = ?", (table.name, key)).fetchone()
        row = _get(txn, table, changed["row"][table.columns[0]])
        new = 0 if row is None else row_hash(table.name, row)
        if row is None:
            txn.execute("DELETE FROM row_hashes WHERE tbl = ? AND key = ?", (table.name, key))
        else:
            txn.execute(
                "INSERT OR REPLACE INTO row_hashes (tbl, key, hash) VALUES (?, ?, ?)", (table.name, key, hex_of(new))
            )
        sums[table.name] = sums.get(table.name, 0) + new - (0 if old is None else int(old[0], 16))
    return sums


def settle(txn, sums: dict[str, int]) -> None:
    """Add to each table's kept digest its delta of C{sums} (from L{deltas})."""
    for name, delta in sums.items():
        _set(txn, name, _digest(txn, name) + delta)


def add(txn, table: Table, rows: list[dict]) -> None:
    """
    Count C{rows}, just inserted into C{table} where no row of their keys
    was (a page of a snapshot's install), as stored: their hashes are kept
    and added to the table's digest.
    """
    hashes = [(str(row[table.columns[0]]), row_hash(table.name, row)) for row in rows]
    txn.executemany(
        "INSERT INTO row_hashes (tbl, key, hash) VALUES (?, ?, ?)",
        [(table.name, key, hex_of(value)) for key, value in hashes],
    )
    _set(txn, table.name, _digest(txn, table.name) + sum(value for _, value in hashes))


def _set(txn, name: str, value: int) -> None:
    txn.execute("INSERT OR REPLACE INTO digests (tbl, value) VALUES (?, ?)", (name, hex_of(value)))


def _pages(txn, table: Table) -> Iterator[list[dict]]:
    """Every row of C{table}, by key, in lists of at most L{PAGE}."""
    select = f"SELECT {', '.join(table.columns)} FROM {table.name}"
    order = f"ORDER BY {table.columns[0]} LIMIT {PAGE}"
    page = txn.execute(f"{select} {order}").fetchall()
    while page:
        yield [dict(zip(table.columns, values, strict=True)) for values in page]
        if len(page) < PAGE:
            return
        page = txn.execute(f"{select} WHERE {table.columns[0]} > ? {order}", (page[-1][0],)).fetchall()


def recount(txn, tables: Iterable[Table]) -> dict[str, str]:
    """Each table's digest computed from its rows (a full read; writes nothing)."""
    return {
        table.name: hex_of(sum(row_hash(table.name, row) for page in _pages(txn, table) for row in page))
        for table in tables
    }


def rebuild(txn, tables: Iterable[Table]) -> None:
    """Forget every kept hash and digest, and compute them from the rows."""
    txn.execute("DELETE FROM row_hashes")
    txn.execute("DELETE FROM digests")
    for table in tables:
        total = 0
        for page in _pages(txn, table):
            hashes = [(str(row[table.columns[0]]), row_hash(table.name, row)) for row in page]
            txn.executemany(
                "INSERT INTO row_hashes (tbl, key, hash) VALUES (?, ?, ?)",
                [(table.name, key, hex_of(value)) for key, value in hashes],
            )
            total += sum(value for _, value in hashes)
        _set(txn, table.name, total)
