"""Fixtures shared by the unit tests of the stores."""

import pytest

from pygmy.catalog.books import BOOKS, seed
from tests.fakes import SyncReactor, sync_store


@pytest.fixture
def reactor():
    """A memory reactor whose threads and end-of-turn calls run at once."""
    return SyncReactor()


@pytest.fixture
def make_store(tmp_path, reactor):
    """Make seeded catalog stores on SQLite; all are closed afterwards."""
    stores = []

    def make(name):
        stores.append(sync_store(tmp_path / f"{name}.sqlite", (BOOKS,), seed, reactor))
        return stores[-1]

    yield make
    for store in stores:
        store.pool.close()
