"""
A replica's SQLite file: made new, upgraded, or refused, before it is used.

The schema of the write log (tables C{log}, C{requests} and C{meta}, shared by every
service) lives in versioned files shipped with the package, as
magic-wormhole-mailbox-server keeps its C{db-schemas/}::

    db-schemas/v<N>.sql              the log's whole schema at version N
    db-schemas/upgrade-to-v<N>.sql   from version N - 1 to N

An upgrade that SQL alone cannot do has a Python step as well,
L{UPGRADE_STEPS}, run after the C{.sql} files in the same transaction
(version 4: the digests of the rows, L{pygmy.replication.digest}).

A service's L{Derived<pygmy.replication.tables.Derived>} columns (version 5:
the catalog's C{topic_key}) are added by L{add_derived}, which runs at every
open and at creation, after the service's tables: a column missing from the
file is added, filled from the rows and indexed, in the same transaction.

(A folder name that is no Python identifier, so that setuptools ships it as
data and never takes it for a package.)

A service's own tables come from its L{Table<pygmy.replication.tables.Table>}
schemas (C{CREATE ... IF NOT EXISTS}): made with a new database, and run
again at every open, as before the schema files, so that a table or index a
service adds later appears in older files too.

L{prepare} runs in the pool's database thread right before it connects
(L{Pool.connect}), so the reactor thread never waits for it:

 - no file (or one with no tables at all): the database is made at
   C{<db>.creating} (log schema at L{SCHEMA_VERSION}, the service's tables,
   its seed, the digests of the seeded rows), synced, then renamed into place.  A crash leaves nothing
   half-made at the real path, and the next start begins afresh.
 - an older version: copied to C{<db>.v<N>.backup} first (through SQLite's
   backup API, which includes what the write-ahead log still holds), then
   upgraded in one transaction.
 - a newer version than this code's: refused with L{SchemaError}.
"""

from __future__ import annotations

import sqlite3
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Callable

from twisted.enterprise import adbapi
from twisted.logger import Logger

from pygmy.files import replace_durably
from pygmy.replication import digest

#: The version of the log schema this code writes: C{db-schemas/v<SCHEMA_VERSION>.sql}.
SCHEMA_VERSION = 5

#: Rows read and rewritten at once by L{add_derived}.
PAGE = 1000

#: Where the C{.sql} files are: C{pygmy/replication/db-schemas/}.
SCHEMA_PACKAGE = "pygmy.replication"
SCHEMA_FOLDER = "db-schemas"

#: The Python step of an upgrade, by the version it upgrades to: called
#: with the connection and the service's tables after the C{.sql} files.
UPGRADE_STEPS: dict[int, Callable] = {4: digest.rebuild}

log = Logger()


class SchemaError(Exception):
    """A database file this code cannot open: not Pygmy's, too new, or no way to upgrade it."""


def schema_file(name: str) -> str:
    """
    The text of C{db-schemas/<name>}, as shipped in the package.

    @raise FileNotFoundError: there is no such file.
    """
    return (resources.files(SCHEMA_PACKAGE) / SCHEMA_FOLDER / name).read_text(encoding="utf-8")


def backup_path(path: Path, version: int) -> Path:
    """Where the copy of C{path} at C{version} goes before an upgrade."""
    return path.with_name(f"{path.name}.v{version}.backup")


def creating_path(path: Path) -> Path:
    """Where a new database for C{path} is made before it is renamed into place."""
    return path.with_name(path.name + ".creating")


def prepare(path: Path, tables_schema: str, seed: Callable[[sqlite3.Cursor], None] | None, tables: tuple = ()) -> None:
    """
    Make sure C{path} holds a database at L{SCHEMA_VERSION} with the
    service's tables: create it, upgrade it, or refuse it.

    @param tables_schema: the service's C{CREATE ... IF NOT EXISTS} statements.
    @param seed: called with a cursor once, when the database is created.
    @param tables: the service's L{Table<pygmy.replication.tables.Table>}s,
        whose digests are computed when the database is made or upgraded.
    @raise SchemaError: the file is not a Pygmy database, or is newer than
        this code, or has no upgrade path.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        connection = sqlite3.connect(path, isolation_level=None)
        try:
            version = _version(connection, path)
            if version is not None:
                _open_existing(connection, path, version, tables_schema, tables)
                return
        finally:
            connection.close()
    _create(path, tables_schema, seed, tables)


def _version(connection: sqlite3.Connection, path: Path) -> int | None:
    """The schema version in C{meta}, or C{None} for a database with no tables."""
    try:
        if connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
            return None
        found = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.DatabaseError as e:
        raise SchemaError(f"{path}: not a Pygmy database ({e})") from e
    if found is None:
        raise SchemaError(f"{path}: not a Pygmy database (no schema_version in its meta table)")
    return found[0]


def _open_existing(connection: sqlite3.Connection, path: Path, version: int, tables_schema: str, tables) -> None:
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"{path}: schema version {version} is newer than this Pygmy's ({SCHEMA_VERSION}); "
            "run a newer Pygmy, or restore a backup made for this one"
        )
    upgrades = ""
    steps = range(version + 1, SCHEMA_VERSION + 1)
    if version < SCHEMA_VERSION:
        upgrades = "".join(_upgrade_script(path, step) for step in steps)
        backup = backup_path(path, version)
        _back_up(connection, backup)
        log.info("{path}: copied schema version {version} to {backup}", path=path, version=version, backup=backup)
    after = [partial(UPGRADE_STEPS[step], tables=tables) for step in steps if step in UPGRADE_STEPS]
    after.append(partial(add_derived, tables=tables))
    _in_transaction(connection, upgrades + tables_schema, path, after)
    if upgrades:
        log.info("{path}: upgraded from schema version {old} to {new}", path=path, old=version, new=SCHEMA_VERSION)


def _upgrade_script(path: Path, version: int) -> str:
    try:
        return schema_file(f"upgrade-to-v{version}.sql")
    except FileNotFoundError:
        raise SchemaError(f"{path}: no upgrade to schema version {version}; left at {version - 1}") from None


def _in_transaction(connection: sqlite3.Connection, script: str, path: Path, after=()) -> None:
    """
    Run C{script}, then each of C{after} with the connection, and check the
    version they leave, all in one transaction.

    Not C{executescript(script)} alone: it runs each statement in its own
    transaction.  (The C{connection} has C{isolation_level=None}.)
    """
    try:
        connection.executescript("BEGIN IMMEDIATE;\n" + script)
        for step in after:
            step(connection)
        found = connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if found != (SCHEMA_VERSION,):
            raise SchemaError(f"{path}: the upgrade left schema version {found}, not {SCHEMA_VERSION}")
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


def _back_up(connection: sqlite3.Connection, backup: Path) -> None:
    """Copy the database of C{connection} to C{backup}, atomically."""
    temp = creating_path(backup)
    temp.unlink(missing_ok=True)
    copy = sqlite3.connect(temp)
    try:
        connection.backup(copy)
    finally:
        copy.close()
    replace_durably(temp, backup)


def _create(path: Path, tables_schema: str, seed, tables) -> None:
    """Make a new database at a temporary path, then rename it to C{path}."""
    temp = creating_path(path)
    temp.unlink(missing_ok=True)  # what a crash during an earlier creation left
    try:
        connection = sqlite3.connect(temp, isolation_level=None)
        try:
            cursor = connection.cursor()
            cursor.executescript("BEGIN IMMEDIATE;\n" + schema_file(f"v{SCHEMA_VERSION}.sql") + tables_schema)
            if seed is not None:
                seed(cursor)
            add_derived(cursor, tables)
            digest.rebuild(cursor, tables)
            cursor.execute("COMMIT")
        finally:
            connection.close()
        replace_durably(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    log.info("{path}: new database at schema version {version}", path=path, version=SCHEMA_VERSION)


def add_derived(txn, tables) -> None:
    """
    Give every table of C{tables} its L{Derived<pygmy.replication.tables.Derived>}
    columns: add each one the file lacks and compute it for every row (in
    pages of L{PAGE}, by key, so memory stays flat), then make sure it has
    its index, C{<table>_<column>}.  Runs inside the caller's transaction.
    """
    for table in tables:
        if not table.derived:
            continue
        present = {row[1] for row in txn.execute(f"PRAGMA table_info({table.name})")}
        for column in table.derived:
            if column.name not in present:
                txn.execute(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {column.declaration}")
                _fill(txn, table, column)
            txn.execute(f"CREATE INDEX IF NOT EXISTS {table.name}_{column.name} ON {table.name} ({column.name})")


def _fill(txn, table, column) -> None:
    """Compute C{column} of every row of C{table}."""
    key = table.columns[0]
    select = f"SELECT {', '.join(table.columns)} FROM {table.name} WHERE {key} > ? ORDER BY {key} LIMIT {PAGE}"
    update = f"UPDATE {table.name} SET {column.name} = ? WHERE {key} = ?"
    after = -(2**63)
    while True:
        rows = [dict(zip(table.columns, values, strict=True)) for values in txn.execute(select, (after,)).fetchall()]
        if not rows:
            return
        txn.executemany(update, [(column.compute(row), row[key]) for row in rows])
        after = rows[-1][key]


def set_pragmas(connection: sqlite3.Connection) -> None:
    """Prepare a new connection of the pool, outside any transaction."""
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA busy_timeout=5000")
    connection.execute("PRAGMA foreign_keys=ON")


class Pool(adbapi.ConnectionPool):
    """
    The connection pool of one replica's database: a single connection,
    made once L{prepare} has made the file ready, in the same thread.

    @param path: the SQLite file.
    @param tables: the service's L{Table<pygmy.replication.tables.Table>}s.
    @param seed: called with a cursor once, when the database is created.
    @param reactor: runs the pool's thread.
    """

    def __init__(self, path: Path, tables: tuple, seed, reactor):
        self._prepare = partial(prepare, Path(path), "".join(table.schema for table in tables), seed, tables)
        super().__init__(
            "sqlite3",
            str(path),
            check_same_thread=False,
            cp_min=1,
            cp_max=1,
            cp_noisy=False,
            cp_openfun=set_pragmas,
            cp_reactor=reactor,
        )

    def connect(self):
        """
        The connection of this thread, made (after L{prepare}) if there is
        none yet.  Runs in the pool's thread, as adbapi's does.
        """
        if self.connections.get(self.threadID()) is None:
            self._prepare()
        return super().connect()
