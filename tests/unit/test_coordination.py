"""
The views store of a lone front end (L{pygmy.coordination.local}), without
threads: its thread pool is held by the test, which runs each job itself.
"""

import json
import os

import pytest

from pygmy import files
from pygmy.coordination.local import FileViewStore, read_views, write_views
from pygmy.coordination.store import StoredView, ViewStoreError
from tests.fakes import result
from tests.held import HeldReactor

A1 = StoredView(1, "A", ("B",), frozenset({"A", "B"}))
A2 = StoredView(2, "A", (), frozenset({"A"}))
B3 = StoredView(3, "B", ("A",), frozenset({"A", "B"}))


@pytest.fixture
def reactor():
    return HeldReactor()


def test_no_file_is_no_views(tmp_path, reactor):
    d = FileViewStore(tmp_path / "views.json", reactor).load()
    reactor.pool.run_all()
    assert result(d) == {}


def test_stored_views_are_loaded_by_the_next_store(tmp_path, reactor):
    store = FileViewStore(tmp_path / "views.json", reactor)
    d1, d2 = store.store("catalog", A1), store.store("order", B3)
    reactor.pool.run_all()
    assert result(d1) is None and result(d2) is None
    again = FileViewStore(tmp_path / "views.json", reactor).load()
    reactor.pool.run_all()
    assert result(again) == {"catalog": A1, "order": B3}


def test_a_store_fires_only_once_the_file_is_written(tmp_path, reactor):
    path = tmp_path / "views.json"
    store = FileViewStore(path, reactor)
    d = store.store("catalog", A1)
    fired = []
    d.addCallback(fired.append)
    assert fired == [] and not path.exists()
    reactor.pool.run_one()
    assert fired == [None]
    assert read_views(path) == {"catalog": A1}


def test_stores_during_a_write_are_written_together_by_the_next(tmp_path, reactor):
    path = tmp_path / "views.json"
    store = FileViewStore(path, reactor)
    first = store.store("catalog", A1)
    second, third = store.store("catalog", A2), store.store("order", B3)
    assert len(reactor.pool.jobs) == 1
    reactor.pool.run_one()
    assert result(first) is None
    assert len(reactor.pool.jobs) == 1
    reactor.pool.run_one()
    assert result(second) is None and result(third) is None
    assert read_views(path) == {"catalog": A2, "order": B3}


def test_a_view_number_never_goes_down(tmp_path, reactor):
    path = tmp_path / "views.json"
    store = FileViewStore(path, reactor)
    store.store("catalog", A2)
    store.store("catalog", A1)
    reactor.pool.run_all()
    assert read_views(path) == {"catalog": A2}


def test_watchers_see_each_stored_view(tmp_path, reactor):
    store = FileViewStore(tmp_path / "views.json", reactor)
    seen = []
    store.watch(lambda service, view: seen.append((service, view.number)))
    store.store("catalog", A1)
    assert seen == []
    reactor.pool.run_all()
    assert seen == [("catalog", 1)]


def test_a_failed_write_fails_its_stores_and_the_next_one_is_tried(tmp_path, reactor):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    store = FileViewStore(blocker / "views.json", reactor)
    d = store.store("catalog", A1)
    reactor.pool.run_all()
    with pytest.raises(ViewStoreError, match="not-a-dir"):
        result(d)
    blocker.unlink()
    again = store.store("catalog", A2)
    reactor.pool.run_all()
    assert result(again) is None
    assert read_views(blocker / "views.json") == {"catalog": A2}


def test_the_write_is_atomic_a_crash_before_rename_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "views.json"
    write_views(path, {"catalog": A1})

    def crash(src, dst):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(files.os, "replace", crash)
    with pytest.raises(ViewStoreError, match="Input/output error"):
        write_views(path, {"catalog": A2})
    assert read_views(path) == {"catalog": A1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["views.json"]


def test_the_file_and_its_directory_are_fsynced(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def fsync(fd):
        synced.append(os.path.realpath(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(files.os, "fsync", fsync)
    path = tmp_path / "views.json"
    write_views(path, {"catalog": A1})
    assert len(synced) == 2
    assert synced[0].endswith(".tmp") and synced[1] == str(tmp_path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("{", "not JSON"),
        ("[]", "not a views file"),
        ('{"format": 2, "views": {}}', "not a views file"),
        ('{"format": 1, "views": {"catalog": {"number": "1"}}}', "not a stored view"),
        ('{"format": 1, "views": {"catalog": {"number": -1, "primary": null, "backups": [], "in_sync": []}}}', "not a"),
        ('{"format": 1, "views": {"catalog": {"number": 1, "primary": 5, "backups": [], "in_sync": []}}}', "not a"),
    ],
)
def test_a_damaged_file_is_an_error_not_an_empty_store(tmp_path, text, message):
    path = tmp_path / "views.json"
    path.write_text(text)
    with pytest.raises(ViewStoreError, match=message):
        read_views(path)


def test_the_file_is_plain_json(tmp_path):
    path = tmp_path / "views.json"
    write_views(path, {"order": B3})
    assert json.loads(path.read_text()) == {
        "format": 1,
        "views": {"order": {"number": 3, "primary": "B", "backups": ["A"], "in_sync": ["A", "B"]}},
    }
