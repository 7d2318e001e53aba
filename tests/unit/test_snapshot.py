"""
Snapshots in bounded pages (L{pygmy.replication.snapshot}) and their
install (L{pygmy.replication.install}): the primary reads one page per
interaction, never more rows than a page; a copy made while the primary
writes between its pages, and compacts, installs into the same rows,
position, requests and digest as the primary's; an install cut short is
claimed by nobody, even after a restart.  Real SQLite, no threads.
"""

from __future__ import annotations

import json
import math
import random
from contextlib import nullcontext

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from pygmy.catalog.books import Catalog
from pygmy.errors import Diverged, PygmyError
from pygmy.order import orders
from pygmy.order.orders import BUYS, ORDERS
from pygmy.replication import snapshot
from pygmy.replication.install import Install
from pygmy.replication.writelog import Pins
from tests.fakes import result, sync_store
from tests.snapshot_state import add_books, state
from tests.snapshots import install_records, records_of


def random_writes(store, chance: random.Random, count: int, tag: str) -> None:
    """Decrements, updates and new books, under request ids; some are refused."""
    catalog = Catalog(store)
    for n in range(count):
        item = chance.randint(1, 40)
        roll = chance.random()
        try:
            if roll < 0.45:
                result(catalog.decrement(item, f"{tag}-d{n}"))
            elif roll < 0.9:
                result(catalog.update(item, {"stock_delta": chance.randint(-2, 9)}, f"{tag}-u{n}"))
            else:
                top = result(store.read(lambda txn: txn.execute("SELECT max(id) FROM books").fetchone()[0]))
                add_books(store, chance.randint(1, 4), top + 1)
        except PygmyError:
            pass


def counting(monkeypatch, name: str) -> list[int]:
    """The size of every page C{snapshot.<name>} reads, in order."""
    sizes = []
    original = getattr(snapshot, name)

    def counted(*args):
        page = original(*args)
        sizes.append(len(page))
        return page

    monkeypatch.setattr(snapshot, name, counted)
    return sizes


# The primary's reads


@pytest.mark.parametrize("page", [1, 4, 10, 37, 1000])
def test_a_copy_reads_each_table_in_pages_of_at_most_the_page_size(make_store, monkeypatch, page):
    store = make_store("primary")
    add_books(store, 30)  # 37 books
    for n in range(12):
        result(Catalog(store).decrement(1 + n % 7, f"r{n}"))  # 12 requests
    rows, reqs = counting(monkeypatch, "read_rows"), counting(monkeypatch, "read_requests")
    records = records_of(store, rows=page)
    assert max(rows) <= page and sum(rows) == 37
    # Each read is one interaction; a full last page costs one empty read more.
    assert len(rows) == math.ceil(37 / page) + (37 % page == 0)
    assert len(reqs) == math.ceil(12 / page) + (12 % page == 0) and sum(reqs) == 12
    pages = [r["page"]["rows"] for r in records if "page" in r]
    assert [len(p) for p in pages] == [n for n in rows if n]
    assert [row["id"] for p in pages for row in p] == list(range(1, 8)) + list(range(100, 130))


def test_a_page_ends_at_the_byte_budget(make_store, monkeypatch):
    store = make_store("primary")
    add_books(store, 9)
    rows = counting(monkeypatch, "read_rows")
    records_of(store, rows=1000, budget=1)  # every row is over the budget alone
    assert rows == [1] * 16 + [0]  # one row a page (a page cut by the budget is followed by a read)
    pages = counting(monkeypatch, "read_rows")
    records_of(store, rows=1000, budget=150)
    assert 1 < max(pages) < 16 and sum(pages) == 16 and len(pages) <= 16


def test_a_paused_reader_holds_the_next_page_read(make_store, monkeypatch):
    store = make_store("primary")
    add_books(store, 20)
    rows = counting(monkeypatch, "read_rows")
    waiting: list[Deferred] = []

    async def send(data):
        waiting.append(Deferred())
        await waiting[-1]  # the client's transport is paused

    copying = Deferred.fromCoroutine(snapshot.copy(store, send, rows=5))
    assert rows == [] and len(waiting) == 1  # the header, not yet taken
    for n in range(1, 4):
        waiting[-1].callback(None)
        assert rows == [5] * n and len(waiting) == n + 1  # one page read per page taken
    while not copying.called:
        waiting[-1].callback(None)
    result(copying)
    assert sum(rows) == 27


# A copy while the primary writes


@pytest.mark.parametrize("seed", range(6))
def test_a_copy_made_while_the_primary_writes_installs_the_primary_as_it_was_at_the_end(make_store, seed):
    chance = random.Random(seed)
    primary, rebuilt = make_store("primary"), make_store("rebuilt")
    add_books(primary, 25)
    random_writes(primary, chance, 30, "before")
    random_writes(rebuilt, chance, 10, "elsewhere")  # a history of its own, to be replaced
    at_end = {}

    def between(record):
        if "log" in record:
            at_end.update(state(primary))  # the log's end H was read: the copy's target
        random_writes(primary, chance, chance.randint(0, 4), f"during-{len(at_end)}-{chance.random()}")

    records = records_of(primary, rows=chance.choice([2, 3, 7]), between=between)
    assert records[-1]["end"]["applied_seq"] > records[0]["snapshot"]["applied_seq"], "no write during the copy"
    assert install_records(rebuilt, records) == at_end["status"][:2]
    assert state(rebuilt) == at_end
    # And it goes on from there like any backup.
    result(rebuilt.apply(result(primary.read_log(at_end["status"][0], 10_000))))
    assert state(rebuilt) == state(primary)


def test_rows_the_order_service_inserts_before_the_copy_reaches_them_or_after_it_passed(tmp_path, reactor):
    # The buys table has text keys: new intents land anywhere among the pages.
    primary, rebuilt = (sync_store(tmp_path / f"{n}.sqlite", (ORDERS, BUYS), None, reactor) for n in ("p", "r"))
    chance = random.Random(3)
    keys = iter(f"buy-{chance.random():.6f}" for _ in range(1000))

    def buy():
        request_id = next(keys)
        result(primary.write(None, orders._record_intent, chance.randint(1, 7), request_id))
        if chance.random() < 0.7:
            result(primary.write(f"o{request_id}", orders._record, 1, request_id))

    try:
        for _ in range(40):
            buy()
        at_end = {}

        def between(record):
            if "log" in record:
                at_end.update(state(primary))
            for _ in range(chance.randint(0, 3)):
                buy()

        records = records_of(primary, rows=4, between=between)
        install_records(rebuilt, records)
        assert state(rebuilt) == at_end
    finally:
        primary.pool.close()
        rebuilt.pool.close()


# Compaction during a copy


def test_compaction_cannot_take_the_entries_a_copy_in_progress_replays(make_store):
    primary, rebuilt = make_store("primary"), make_store("rebuilt")
    add_books(primary, 20)
    chance = random.Random(1)
    at_end, compacted = {}, []

    def between(record):
        if "log" in record:
            at_end.update(state(primary))
        random_writes(primary, chance, 3, f"w{len(compacted)}")
        compacted.append(result(primary.compact(0, 10**9)))  # keep nothing, no backup to wait for

    records = records_of(primary, rows=3, between=between)
    start = records[0]["snapshot"]["applied_seq"]
    replayed = [entry["seq"] for r in records if "entries" in r for entry in r["entries"]]
    assert replayed and replayed == list(range(start + 1, records[-1]["end"]["applied_seq"] + 1))
    assert sum(compacted) > 0  # compaction did run, on what came before the copy
    install_records(rebuilt, records)
    assert state(rebuilt) == at_end
    # Once the copy is over its pin is gone: compaction takes the log.
    assert len(primary.pins) == 0
    result(primary.compact(0, 10**9))
    assert result(primary.read_log(0, 10)) == []


def test_without_the_pin_compaction_strands_the_copy(make_store, monkeypatch):
    # The test above can fail: with pins that hold nothing, the log the copy
    # needs is compacted away and the copy cannot be completed.
    monkeypatch.setattr(Pins, "lowest", lambda self: None)
    primary = make_store("primary")
    add_books(primary, 20)

    def between(record):
        result(Catalog(primary).decrement(1, f"w{json.dumps(record)[:40]}"))
        result(primary.compact(0, 10**9))

    with pytest.raises(Diverged, match="no longer holds entry"):
        records_of(primary, rows=3, between=between)


def test_a_copy_cut_short_releases_its_pin(make_store):
    primary = make_store("primary")
    sent = []

    async def send(data):
        sent.append(data)
        if len(sent) == 2:
            raise ConnectionError("the reader went away")

    assert len(primary.pins) == 0
    with pytest.raises(ConnectionError):
        result(Deferred.fromCoroutine(snapshot.copy(primary, send, rows=2)))
    assert len(primary.pins) == 0


def test_a_complete_copy_keeps_the_log_after_its_end_a_while_for_the_catch_up(make_store):
    primary, clock = make_store("primary"), Clock()
    records = []

    async def send(data):
        records.append(json.loads(data))
        if len(records) == 2:
            result(Catalog(primary).decrement(1, "during"))  # so that the end is past the start

    result(Deferred.fromCoroutine(snapshot.copy(primary, send, rows=3, clock=clock, linger=30.0)))
    end = records[-1]["end"]["applied_seq"]
    assert end == records[0]["snapshot"]["applied_seq"] + 1
    assert primary.pins.lowest() == end
    for n in range(5):
        result(Catalog(primary).decrement(2, f"after-{n}"))
    result(primary.compact(0, 10**9))
    # The replica, its log now ending at the copy's end, is matched there and served what follows.
    view = records[-1]["end"]["last_view"]
    entries, head = result(primary.entries_after(end, view, 10))
    assert [e["seq"] for e in entries] == list(range(end + 1, end + 6)) and head == end + 5
    clock.advance(30.0)
    assert len(primary.pins) == 0
    result(primary.compact(0, 10**9))
    assert result(primary.read_log(0, 10)) == []


def test_a_failed_copy_releases_its_pin_at_once_even_with_a_linger(make_store):
    primary, clock = make_store("primary"), Clock()

    async def send(data):
        raise ConnectionError("gone")

    with pytest.raises(ConnectionError):
        result(Deferred.fromCoroutine(snapshot.copy(primary, send, clock=clock, linger=30.0)))
    assert len(primary.pins) == 0 and clock.getDelayedCalls() == []


def test_pins_hold_the_lowest_position_until_released():
    pins = Pins()
    assert pins.lowest() is None
    first, second = pins.hold(7), pins.hold(3)
    assert pins.lowest() == 3 and len(pins) == 2
    pins.release(second)
    assert pins.lowest() == 7
    pins.move(first, 9)
    pins.move(second, 1)  # released: stays so
    assert pins.lowest() == 9
    pins.release(second)
    pins.release(first)
    assert pins.lowest() is None and len(pins) == 0


# The install's records


def copy_with_a_replay(store) -> list[dict]:
    """The records of a copy of C{store} during which it wrote (so they replay entries)."""
    add_books(store, 5)
    writes = iter(range(100))

    def between(record):
        if "page" in record:
            result(Catalog(store).decrement(1, f"r{next(writes)}"))

    records = records_of(store, rows=3, between=between)
    assert any("entries" in r for r in records)
    return records


def test_an_install_is_marked_from_its_first_record_to_its_last(make_store):
    primary, rebuilt = make_store("primary"), make_store("rebuilt")
    records = copy_with_a_replay(primary)
    install = Install(rebuilt, "primary")
    marks = []
    for record in records:
        result(install.record(record))
        marks.append(result(rebuilt.installing()))
        assert result(rebuilt.verify())["match"]  # the digest follows every page
    assert marks == [True] * (len(records) - 1) + [False]
    assert install.position == result(primary.status())[:2]
    assert state(rebuilt) == state(primary)


@pytest.mark.parametrize(
    "cut",
    [
        lambda rs: [rs[1]] + rs,  # a page before the header
        lambda rs: [r for r in rs if "log" not in r],  # entries and end without the log record
        lambda rs: rs[:1] + [{"page": {"table": "nope", "rows": [{"id": 1}]}}],
        lambda rs: rs[:1] + [{"page": {"table": "books", "rows": []}}],
        lambda rs: rs[:1] + [{"page": {"table": "books", "rows": [{"id": 2}, {"id": 1}]}}],
        lambda rs: rs[:1] + [{"what": 1}],
        lambda rs: rs[:1] + [["not", "an", "object"]],
        lambda rs: rs[:1] + [{"snapshot": {"applied_seq": -1, "last_view": 0}}],
        lambda rs: rs[:2] + rs[1:],  # a page twice
        lambda rs: rs[:-1] + [{"end": {"applied_seq": rs[-1]["end"]["applied_seq"] + 1, "last_view": 0}}],
        lambda rs: [r for r in rs if "entries" not in r],  # the replay left out
        lambda rs: [r for r in rs if "log" not in r and "entries" not in r],
        lambda rs: [{"log": {"after": 0, "until": 0}} if "log" in r else r for r in rs],
        lambda rs: rs[:-1],  # no end: complete in every other way, still unfinished
    ],
    ids=[
        "page-first",
        "no-log",
        "unknown-table",
        "empty-page",
        "keys-out-of-order",
        "unknown-kind",
        "not-an-object",
        "two-headers",
        "page-twice",
        "end-elsewhere",
        "no-replay",
        "end-in-rows",
        "log-elsewhere",
        "no-end",
    ],
)
def test_an_install_fed_records_out_of_order_is_refused_and_stays_unfinished(make_store, cut):
    primary, rebuilt = make_store("primary"), make_store("rebuilt")
    records = copy_with_a_replay(primary)
    assert install_records(make_store("control"), records) is not None  # the uncut records install
    fed = cut(records)
    install = Install(rebuilt, "primary")
    with pytest.raises(Diverged) if fed != records[:-1] else nullcontext():
        for record in fed:
            result(install.record(record))
    assert install.position is None
    began = isinstance(fed[0], dict) and "snapshot" in fed[0]
    assert result(rebuilt.installing()) is began
    if began:
        with pytest.raises(Diverged, match="snapshot is being installed"):
            result(rebuilt.apply(result(primary.read_log(0, 1))))
