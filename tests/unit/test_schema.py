"""
The database file before it is used: versioned schema files found through
importlib.resources, atomic creation, the backup before an upgrade, the
upgrade itself, and the refusal of what this code cannot open.  Real SQLite
files, no threads.
"""

import sqlite3
import sys
from importlib import resources
from pathlib import Path

import pytest

from pygmy import files
from pygmy.catalog.books import BOOKS, SEED, seed
from pygmy.replication import database
from pygmy.replication.database import (
    SCHEMA_VERSION,
    SchemaError,
    backup_path,
    creating_path,
    prepare,
    schema_file,
)
from tests.schema_checks import dump_of, schema_of, version_of

ROOT = Path(__file__).resolve().parents[2]

#: Two log entries as version 1 stored them (no fingerprint).
V1_LOG = [
    (1, 1, "r1", '[{"table": "books", "row": {"id": 1, "stock": 999}}]', "2026-01-01T00:00:00.000Z"),
    (2, 3, "r2", '[{"table": "books", "row": {"id": 2, "stock": 999}}]', "2026-01-01T00:00:01.000Z"),
]


def log_columns(path: Path) -> list[tuple]:
    connection = sqlite3.connect(path)
    try:
        return [row[1:] for row in connection.execute("PRAGMA table_info(log)")]
    finally:
        connection.close()


def make_v1(path: Path) -> sqlite3.Connection:
    """A version 1 catalog database with its books and two log entries; left open."""
    connection = sqlite3.connect(path)
    connection.executescript(schema_file("v1.sql") + BOOKS.schema)
    connection.executemany("INSERT INTO books VALUES (?, ?, ?, ?, ?)", SEED)
    connection.executemany("INSERT INTO log VALUES (?, ?, ?, ?, ?)", V1_LOG)
    connection.execute("UPDATE meta SET value = 2 WHERE key = 'applied_seq'")
    connection.execute("UPDATE meta SET value = 3 WHERE key = 'last_view'")
    connection.commit()
    return connection


#: Three log entries as version 2 stored them: two keyed buys, one write without a request id.
V2_LOG = [
    (1, 1, "buy:key:k1", '[{"table": "books", "row": {"id": 2, "stock": 999}}]', "2026-01-01T00:00:00.000Z"),
    (2, 1, None, '[{"table": "books", "row": {"id": 3, "stock": 999}}]', "2026-01-01T00:00:01.000Z"),
    (3, 2, "buy:key:k2", '[{"table": "books", "row": {"id": 4, "stock": 999}}]', "2026-01-01T00:00:02.000Z"),
]


def make_v2(path: Path) -> None:
    """A version 2 catalog database with its books and L{V2_LOG}, fingerprinted as decrements."""
    from pygmy.replication.tables import fingerprint_of

    connection = sqlite3.connect(path)
    connection.executescript(schema_file("v2.sql") + BOOKS.schema)
    connection.executemany("INSERT INTO books VALUES (?, ?, ?, ?, ?)", SEED)
    rows = [entry + (None if entry[2] is None else fingerprint_of("decrement", entry[0] + 1),) for entry in V2_LOG]
    connection.executemany("INSERT INTO log VALUES (?, ?, ?, ?, ?, ?)", rows)
    connection.execute("UPDATE meta SET value = 3 WHERE key = 'applied_seq'")
    connection.execute("UPDATE meta SET value = 2 WHERE key = 'last_view'")
    connection.commit()
    connection.close()


def requests_of(path: Path) -> list[tuple]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(
            "SELECT request_id, fingerprint, seq, entry, created FROM requests ORDER BY seq"
        ).fetchall()
    finally:
        connection.close()


# The files


def test_schema_files_are_package_resources():
    folder = resources.files("pygmy.replication") / "db-schemas"
    names = {entry.name for entry in folder.iterdir()}
    assert {f"v{n}.sql" for n in range(1, SCHEMA_VERSION + 1)} <= names
    assert {f"upgrade-to-v{n}.sql" for n in range(2, SCHEMA_VERSION + 1)} <= names
    assert "fingerprint" in schema_file(f"v{SCHEMA_VERSION}.sql")
    assert "fingerprint" not in schema_file("v1.sql").split("CREATE TABLE meta")[0]
    with pytest.raises(FileNotFoundError):
        schema_file("v0.sql")


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib")
def test_schema_files_ship_in_the_wheel():
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["pygmy.replication"]
    shipped = {p.name for pattern in patterns for p in (ROOT / "pygmy" / "replication").glob(pattern)}
    assert shipped == {p.name for p in (ROOT / "pygmy" / "replication" / "db-schemas").glob("*.sql")}
    assert "v1.sql" in shipped


def test_every_version_file_says_its_version(tmp_path):
    for version in range(1, SCHEMA_VERSION + 1):
        path = tmp_path / f"v{version}.sqlite"
        sqlite3.connect(path).executescript(schema_file(f"v{version}.sql"))
        assert version_of(path) == version


# New databases


def test_new_database_is_at_the_current_version_and_seeded(tmp_path):
    path = tmp_path / "data" / "catalog.sqlite"
    prepare(path, BOOKS.schema, seed)
    assert version_of(path) == SCHEMA_VERSION
    assert sqlite3.connect(path).execute("SELECT count(*) FROM books").fetchone() == (len(SEED),)
    assert sorted(p.name for p in path.parent.iterdir()) == ["catalog.sqlite"]


def test_an_empty_file_is_made_a_new_database(tmp_path):
    path = tmp_path / "catalog.sqlite"
    path.touch()
    prepare(path, BOOKS.schema, seed)
    assert version_of(path) == SCHEMA_VERSION
    assert sqlite3.connect(path).execute("SELECT count(*) FROM books").fetchone() == (len(SEED),)


def test_a_crash_before_the_rename_leaves_nothing_at_the_real_path(tmp_path, monkeypatch):
    path = tmp_path / "catalog.sqlite"

    def crash(source, target):
        raise KeyboardInterrupt("killed before the rename")

    monkeypatch.setattr(files.os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        prepare(path, BOOKS.schema, seed)
    assert not path.exists()


def test_a_failing_seed_leaves_nothing_behind(tmp_path):
    path = tmp_path / "catalog.sqlite"

    def broken(cursor):
        seed(cursor)
        raise ValueError("seed failed")

    with pytest.raises(ValueError):
        prepare(path, BOOKS.schema, broken)
    assert list(tmp_path.iterdir()) == []


def test_what_a_crashed_creation_left_is_ignored(tmp_path):
    path = tmp_path / "catalog.sqlite"
    half = sqlite3.connect(creating_path(path))
    half.executescript(schema_file(f"v{SCHEMA_VERSION}.sql"))  # no books, no seed: half made
    half.close()
    Path(str(creating_path(path)) + "-journal").write_bytes(b"junk of the crash")
    assert not path.exists()  # the state a kill -9 between creation and rename leaves
    prepare(path, BOOKS.schema, seed)
    assert version_of(path) == SCHEMA_VERSION
    assert sqlite3.connect(path).execute("SELECT count(*) FROM books").fetchone() == (len(SEED),)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog.sqlite"]


# Upgrades


def test_version_1_is_upgraded_with_its_data_and_a_backup(tmp_path):
    path = tmp_path / "catalog.sqlite"
    make_v1(path).close()
    original = dump_of(path)
    prepare(path, BOOKS.schema, seed)
    assert version_of(path) == SCHEMA_VERSION
    assert dump_of(backup_path(path, 1)) == original
    assert version_of(backup_path(path, 1)) == 1
    connection = sqlite3.connect(path)
    assert connection.execute("SELECT id, title, topic, cost, stock FROM books ORDER BY id").fetchall() == list(SEED)
    assert connection.execute("SELECT seq, view, request_id, changes, created, fingerprint FROM log").fetchall() == [
        entry + (None,) for entry in V1_LOG
    ]
    assert connection.execute("SELECT key, value FROM meta ORDER BY key").fetchall() == [
        ("applied_seq", 2),
        ("last_view", 3),
        ("schema_version", SCHEMA_VERSION),
    ]
    fresh = tmp_path / "fresh.sqlite"
    prepare(fresh, BOOKS.schema, seed)
    assert log_columns(path) == log_columns(fresh)
    assert [row[:3] + row[4:] for row in requests_of(path)] == [
        ("r1", None, 1, "2026-01-01T00:00:00.000Z"),
        ("r2", None, 2, "2026-01-01T00:00:01.000Z"),
    ]


def test_version_2_is_upgraded_with_its_request_ids_remembered(tmp_path):
    import json

    path = tmp_path / "catalog.sqlite"
    make_v2(path)
    original = dump_of(path)
    prepare(path, BOOKS.schema, seed)
    assert version_of(path) == SCHEMA_VERSION
    assert dump_of(backup_path(path, 2)) == original
    connection = sqlite3.connect(path)
    assert connection.execute("SELECT id, title, topic, cost, stock FROM books ORDER BY id").fetchall() == list(SEED)
    assert [row[:3] for row in connection.execute("SELECT seq, view, request_id FROM log")] == [
        entry[:3] for entry in V2_LOG
    ]
    connection.close()
    remembered = requests_of(path)
    assert [(row[0], row[2], row[4]) for row in remembered] == [
        ("buy:key:k1", 1, "2026-01-01T00:00:00.000Z"),
        ("buy:key:k2", 3, "2026-01-01T00:00:02.000Z"),
    ]
    first = json.loads(remembered[0][3])
    assert first == {
        "seq": 1,
        "view": 1,
        "request_id": "buy:key:k1",
        "changes": [{"table": "books", "row": {"id": 2, "stock": 999}}],
        "created": "2026-01-01T00:00:00.000Z",
        "fingerprint": remembered[0][1],
    }
    fresh = tmp_path / "fresh.sqlite"
    prepare(fresh, BOOKS.schema, seed)
    assert schema_of(path) == schema_of(fresh)


def test_after_the_upgrade_to_3_replays_are_answered_without_the_log(tmp_path):
    from pygmy.catalog.books import Catalog
    from pygmy.errors import Conflict
    from tests.fakes import SyncReactor, result, sync_store

    path = tmp_path / "catalog.sqlite"
    make_v2(path)
    store = sync_store(path, (BOOKS,), seed, SyncReactor())
    try:
        assert result(store.compact(0, 10)) == 3  # the whole log is gone
        again = result(Catalog(store).decrement(2, "buy:key:k1"))
        assert again.replayed and again.seq == 1 and again.row == {"id": 2, "stock": 999}
        with pytest.raises(Conflict):
            result(Catalog(store).decrement(5, "buy:key:k2"))
        assert result(Catalog(store).lookup(2))["stock"] == SEED[1][4]
        assert result(store.status())[0] == 3
    finally:
        store.pool.close()


def test_backup_holds_what_only_the_write_ahead_log_had(tmp_path):
    # A replica killed with -9 leaves committed writes in <db>-wal; a copy of
    # the main file alone would miss them.
    source = tmp_path / "running.sqlite"
    make_v1(source).close()
    running = sqlite3.connect(source)
    running.execute("PRAGMA journal_mode=WAL")
    running.execute("PRAGMA wal_autocheckpoint=0")
    running.execute("UPDATE books SET stock = 7 WHERE id = 1")
    running.commit()
    expected = list(running.iterdump())
    path = tmp_path / "catalog.sqlite"
    path.write_bytes(source.read_bytes())
    Path(f"{path}-wal").write_bytes(Path(f"{source}-wal").read_bytes())
    running.close()
    prepare(path, BOOKS.schema, seed)
    assert dump_of(backup_path(path, 1)) == expected
    assert sqlite3.connect(path).execute("SELECT stock FROM books WHERE id = 1").fetchone() == (7,)


def test_a_failing_upgrade_leaves_the_database_as_it_was(tmp_path, monkeypatch):
    path = tmp_path / "catalog.sqlite"
    make_v1(path).close()
    original = dump_of(path)
    real = database.schema_file

    def broken(name):
        if name.startswith("upgrade-to-"):
            return real(name) + "INSERT INTO no_such_table VALUES (1);"
        return real(name)

    monkeypatch.setattr(database, "schema_file", broken)
    with pytest.raises(sqlite3.OperationalError):
        prepare(path, BOOKS.schema, seed)
    assert dump_of(path) == original
    assert dump_of(backup_path(path, 1)) == original


def test_a_version_without_an_upgrade_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "catalog.sqlite"
    prepare(path, BOOKS.schema, seed)
    monkeypatch.setattr(database, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(SchemaError, match=f"no upgrade to schema version {SCHEMA_VERSION + 1}"):
        prepare(path, BOOKS.schema, seed)
    assert version_of(path) == SCHEMA_VERSION
    assert not backup_path(path, SCHEMA_VERSION).exists()


def test_a_current_database_is_opened_as_it_is(tmp_path):
    path = tmp_path / "catalog.sqlite"
    prepare(path, BOOKS.schema, seed)
    sqlite3.connect(path).execute("DELETE FROM books WHERE id = 7").connection.commit()
    before = dump_of(path)
    prepare(path, BOOKS.schema, seed)
    assert dump_of(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog.sqlite"]


# Refusals


def test_a_newer_version_is_refused_with_a_clear_message(tmp_path):
    path = tmp_path / "catalog.sqlite"
    prepare(path, BOOKS.schema, seed)
    connection = sqlite3.connect(path)
    connection.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (SCHEMA_VERSION + 1,))
    connection.commit()
    connection.close()
    before = dump_of(path)
    with pytest.raises(SchemaError) as caught:
        prepare(path, BOOKS.schema, seed)
    message = str(caught.value)
    assert str(path) in message
    assert f"schema version {SCHEMA_VERSION + 1} is newer than this Pygmy's ({SCHEMA_VERSION})" in message
    assert dump_of(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog.sqlite"]


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"not a database at all, just some text" * 100, id="junk"),
        pytest.param(None, id="another-schema"),
    ],
)
def test_a_file_that_is_not_a_pygmy_database_is_refused(tmp_path, content):
    path = tmp_path / "catalog.sqlite"
    if content is None:
        sqlite3.connect(path).execute("CREATE TABLE something (x)")
    else:
        path.write_bytes(content)
    with pytest.raises(SchemaError, match="not a Pygmy database"):
        prepare(path, BOOKS.schema, seed)
