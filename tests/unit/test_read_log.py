"""
A read of the log is bounded in bytes as well as in entries: a catch-up
reply (C{GET /replication/log}) costs both ends a bounded amount of memory,
however many entries the caller asks for.
"""

from __future__ import annotations

from pygmy.catalog.books import Catalog
from pygmy.replication import writelog
from tests.fakes import result


def test_a_read_stops_at_the_byte_budget_and_the_next_goes_on(make_store, monkeypatch):
    store = make_store("catalog")
    catalog = Catalog(store)
    for n in range(60):
        result(catalog.update(1 + n % 7, {"cost": f"{n}.00"}, f"update-{n}"))
    whole = result(store.read_log(0, 100))
    assert [entry["seq"] for entry in whole] == list(range(1, 61))

    monkeypatch.setattr(writelog, "READ_LOG_BYTES", 2000)
    seen, after, reads = [], 0, 0
    while True:
        entries = result(store.read_log(after, 100))
        if not entries:
            break
        reads += 1
        assert len(entries) < 60, "the budget did not bound the read"
        seen += entries
        after = entries[-1]["seq"]
    assert seen == whole
    assert reads > 2


def test_an_entry_larger_than_the_budget_is_still_read(make_store, monkeypatch):
    store = make_store("catalog")
    result(Catalog(store).update(1, {"cost": "1.00"}, "update-1"))
    monkeypatch.setattr(writelog, "READ_LOG_BYTES", 1)
    assert [entry["seq"] for entry in result(store.read_log(0, 100))] == [1]
    entries, head = result(store.entries_after(0, 0, 100))
    assert ([entry["seq"] for entry in entries], head) == ([1], 1)
