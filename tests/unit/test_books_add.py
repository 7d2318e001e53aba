"""
A new book in the catalog (L{Catalog.add}, the batched C{POST /books/add}),
below the front end: the next id taken inside the write's transaction, so
concurrent adds committed together get consecutive ids; replays and reuses
of a request id; a backup, a snapshot and a catch-up holding the same book
with the same C{topic_key}; searches matched by the folded topic through
its index; and the batch route answering each call on its own.
"""

from __future__ import annotations

import json

import pytest
from treq.testing import StubTreq
from twisted.internet.defer import Deferred

from pygmy.catalog.app import CatalogApp
from pygmy.catalog.books import BOOKS, SEED, Catalog, seed
from pygmy.errors import Conflict
from pygmy.net.validate import fold_topic
from pygmy.replication import digest
from tests.fakes import TurnReactor, committed, result, stub_remote, sync_store
from tests.query_trace import Tracer, assert_indexed
from tests.replication_pair import Pair
from tests.snapshots import install_records, records_of


def book(n: int, topic: str = "generated") -> dict:
    """The clean body of new book C{n}."""
    return {"title": f"Book {n}", "topic": topic, "cost": f"{n}.50", "stock": n}


def topic_keys(store) -> dict[int, str]:
    """Every row's stored C{topic_key}, by id."""
    return dict(result(store.read(lambda txn: txn.execute("SELECT id, topic_key FROM books").fetchall())))


def assert_keys_are_folded(store) -> None:
    rows = result(store.dump())["rows"]
    assert topic_keys(store) == {row["id"]: fold_topic(row["topic"]) for row in rows}


@pytest.fixture
def turn_store(tmp_path):
    reactor = TurnReactor()
    store = sync_store(tmp_path / "catalog.sqlite", (BOOKS,), seed, reactor)
    yield store, reactor
    store.pool.close()


# The next id


def test_a_new_book_has_the_next_id_and_its_row(make_store):
    store = make_store("catalog")
    catalog = Catalog(store)
    write = result(catalog.add(book(1, "École"), "add-1"))
    assert write.row == {"id": 8, "title": "Book 1", "topic": "École", "cost": "1.50", "stock": 1}
    assert list(write.row) == list(BOOKS.columns)
    assert result(catalog.lookup(8)) == write.row
    assert result(store.dump())["rows"][-1] == write.row
    assert_keys_are_folded(store)


def test_concurrent_adds_committed_together_get_consecutive_ids(turn_store):
    store, reactor = turn_store
    catalog = Catalog(store)
    writes, transactions = committed(store, reactor, [catalog.add(book(n), f"add-{n}") for n in range(200)])
    assert [write.row["id"] for write in writes] == list(range(8, 208))
    assert [write.row["title"] for write in writes] == [f"Book {n}" for n in range(200)]
    assert transactions <= 2, f"the adds took {transactions} transactions, not one"
    more, _ = committed(store, reactor, [catalog.add(book(n), f"more-{n}") for n in range(3)])
    assert [write.row["id"] for write in more] == [208, 209, 210]
    assert len(result(catalog.list())) == len(SEED) + 203
    verified = result(store.verify())
    assert verified["match"], verified


def test_a_failed_add_in_a_group_takes_no_id(turn_store):
    """A conflicting request id in the middle of a group: the others still get consecutive ids."""
    store, reactor = turn_store
    catalog = Catalog(store)
    committed(store, reactor, [catalog.add(book(1), "taken")])
    calls = [catalog.add(book(2), "a"), catalog.add(book(3), "taken"), catalog.add(book(4), "b")]
    calls[1].addErrback(lambda f: f.trap(Conflict) and "conflict")
    outcomes, _ = committed(store, reactor, calls)
    assert [getattr(o, "row", o) for o in outcomes][1] == "conflict"
    assert (outcomes[0].row["id"], outcomes[2].row["id"]) == (9, 10)


def test_the_same_request_id_replays_the_first_add_and_another_book_conflicts(make_store):
    store = make_store("catalog")
    catalog = Catalog(store)
    first = result(catalog.add(book(1), "key"))
    replay = result(catalog.add(book(1), "key"))
    assert replay.replayed and replay.row == first.row and replay.seq == first.seq
    with pytest.raises(Conflict):
        result(catalog.add(book(2), "key"))
    with pytest.raises(Conflict):
        result(catalog.decrement(1, "key"))
    assert [row["id"] for row in result(catalog.list())] == list(range(1, 9))


# Search by the folded topic


def test_search_matches_any_case_of_any_script(make_store):
    store = make_store("catalog")
    catalog = Catalog(store)
    for n, topic in enumerate(["École", "straße", "ΣΊΣΥΦΟΣ", "ecole"]):
        result(catalog.add(book(n, topic), f"add-{n}"))
    ids = lambda topic: [item["id"] for item in result(catalog.search(topic))]  # noqa: E731
    assert ids("école") == ids("ÉCOLE") == ids("E\u0301COLE") == [8]
    assert ids("ECOLE") == [11]
    assert ids("STRASSE") == ids("Straße") == [9]
    assert ids("σίσυφοσ") == [10]
    assert ids("Distributed SYSTEMS") == [1, 2]


@pytest.mark.parametrize("topic", ["école", "ÉCOLE", "Distributed SYSTEMS"])
def test_search_and_add_use_indexes(make_store, topic):
    store = make_store("catalog")
    catalog = Catalog(store)
    for n in range(50):
        result(catalog.add(book(n, "École" if n % 2 else "travel"), f"history-{n}"))
    with Tracer(store) as tracer:
        assert result(catalog.search(topic))
        result(catalog.add(book(99, topic), "add-99"))
    assert_indexed(tracer)


# Replicas


def test_a_backup_holds_the_same_book_with_its_topic_key(make_store, reactor):
    pair = Pair(make_store, reactor)
    pair.view(1, "A", ["B"])
    write = result(Deferred.fromCoroutine(_add(pair, book(1, "ÉCOLE"), "add-1")))
    assert write.row["id"] == 8
    assert result(pair.stores["B"].dump()) == result(pair.stores["A"].dump())
    assert pair.status("B") == pair.status("A")
    assert_keys_are_folded(pair.stores["B"])
    assert [item["id"] for item in result(Catalog(pair.stores["B"]).search("école"))] == [8]


async def _add(pair, body, request_id):
    return await Catalog(pair.stores["A"], pair.nodes["A"]).add(body, request_id)


def test_an_installed_snapshot_and_an_applied_log_compute_the_topic_key(make_store):
    source, installed, applied = make_store("source"), make_store("installed"), make_store("applied")
    catalog = Catalog(source)
    for n, topic in enumerate(["École", "ΣΊΣΥΦΟΣ", "travel"]):
        result(catalog.add(book(n, topic), f"add-{n}"))
    records = records_of(source)
    assert all(set(row) == set(BOOKS.columns) for r in records if "page" in r for row in r["page"]["rows"])
    assert install_records(installed, records) is not None
    result(applied.apply(result(source.read_log(0, 100))))
    for store in (installed, applied):
        assert result(store.dump()) == result(source.dump())
        assert result(store.status()) == result(source.status())
        assert_keys_are_folded(store)
        assert [item["id"] for item in result(Catalog(store).search("ÉCOLE"))] == [8]


def test_the_digest_and_the_dump_leave_the_topic_key_out(make_store):
    store = make_store("catalog")
    result(Catalog(store).add(book(1, "École"), "add-1"))
    rows = result(store.dump())["rows"]
    assert all(set(row) == set(BOOKS.columns) for row in rows)
    kept = result(store.read(lambda txn: digest.kept(txn, (BOOKS,))))
    assert kept["books"] == digest.hex_of(sum(digest.row_hash("books", row) for row in rows))


# The batch route


def test_the_batch_route_answers_each_call_on_its_own(make_store, reactor):
    store = make_store("catalog")
    resource = CatalogApp(Catalog(store)).app.resource()
    calls = [
        {"request_id": "r1", **book(1)},
        {"request_id": "r2", **book(2), "cost": "1.234"},
        {"request_id": "r1", **book(3)},
        {**book(4)},
        "not an object",
        {"request_id": "r5", **book(5), "extra": 1},
        {"request_id": "r6", **book(6, "Travel")},
    ]
    response = result(StubTreq(resource).post("http://catalog/books/add", data=json.dumps({"requests": calls})))
    results = json.loads(result(response.content()))["results"]
    assert results[0]["ok"]["item"]["id"] == 8 and results[6]["ok"]["item"]["id"] == 9
    assert [r.get("error", {}).get("code") for r in results] == [
        None,
        "bad_request",
        "conflict",
        "bad_request",
        "bad_request",
        "bad_request",
        None,
    ]
    assert "cost" in results[1]["error"]["message"] and "extra" in results[5]["error"]["message"]


def test_concurrent_adds_share_requests(tmp_path):
    """Adds made in one turn travel together: 100 calls, two requests, consecutive ids."""
    reactor = TurnReactor()
    store = sync_store(tmp_path / "catalog.sqlite", (BOOKS,), seed, reactor)
    posts = []
    resource = CatalogApp(Catalog(store)).app.resource()
    remote = stub_remote(resource, "catalog", "A", reactor)
    real = remote._post_batch

    async def counting(path, bodies):
        posts.append(len(bodies))
        return await real(path, bodies)

    remote._post_batch = counting
    try:
        calls = [remote.batched("/books/add", {"request_id": f"r{n}", **book(n)}) for n in range(100)]
        answers, _ = committed(store, reactor, calls, remote._http.client.flush)
    finally:
        store.pool.close()
    assert sorted(posts, reverse=True) == [64, 36]
    assert sorted(answer["item"]["id"] for answer in answers) == list(range(8, 108))
    assert {answer["item"]["title"] for answer in answers} == {f"Book {n}" for n in range(100)}
