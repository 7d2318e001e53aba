"""
Reading a database file with plain C{sqlite3}, for tests of the schema and
its upgrades: the version a file says it is at (L{version_of}), its whole
content as SQL (L{dump_of}), and its tables, indexes and triggers
(L{schema_of}).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


def version_of(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        return connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    finally:
        connection.close()


def dump_of(path: Path) -> list[str]:
    connection = sqlite3.connect(path)
    try:
        return list(connection.iterdump())
    finally:
        connection.close()


def schema_of(path: Path) -> list[tuple]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    finally:
        connection.close()
