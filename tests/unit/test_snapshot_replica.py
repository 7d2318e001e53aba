"""
Streamed snapshots and dumps between real replicas in memory: two catalog
nodes whose apps call each other through C{StubTreq}
(L{tests.replication_pair.Pair}).  A snapshot of many pages
rebuilds a replica; an install cut short (C{kill -9}: the database keeps
what was committed, the process nothing) is claimed by nobody after the
restart and is done again from the start; C{GET /admin/dump} is written a
page at a time and reads as one document, as before.
"""

from __future__ import annotations

import json
import math

import pytest
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, succeed

from pygmy.catalog.books import Catalog
from pygmy.errors import Diverged
from pygmy.replication import snapshot
from tests.fakes import InMemoryCluster, result
from tests.replication_pair import SECRET, Pair
from tests.snapshot_state import add_books, state
from tests.snapshots import install_records, records_of

AUTH = {"authorization": f"Bearer {SECRET}"}


@pytest.fixture
def small_pages(monkeypatch):
    """Pages of three rows, so that a handful of books takes many."""
    monkeypatch.setattr(snapshot, "PAGE_ROWS", 3)
    return 3


def load(node) -> None:
    result(Deferred.fromCoroutine(node.load()))


def test_a_snapshot_of_many_pages_rebuilds_a_replica_over_http(make_store, reactor, small_pages, monkeypatch):
    pair = Pair(make_store, reactor)
    pair.view(1, "A", [], to="A")
    add_books(pair.stores["A"], 40)
    for i in range(5):
        result(pair.buy(f"r{i}"))
    result(pair.stores["A"].compact(0, 10**9))
    installed = []
    original = pair.nodes["B"].catchup.installer

    def counting(store, source):
        install = original(store, source)
        record = install.record
        install.record = lambda r: (installed.append(next(iter(r))), record(r))[1]
        return install

    monkeypatch.setattr(pair.nodes["B"].catchup, "installer", counting)
    pair.view(1, "A", [], to="B")
    assert installed.count("page") == math.ceil(47 / small_pages)
    assert installed.count("requests") == 2 and installed[-1] == "end"
    assert state(pair.stores["B"]) == state(pair.stores["A"])
    assert pair.heartbeat.synced() == [b"SYNCED catalog B 6"]
    assert not pair.nodes["B"].installing


def crash_mid_install(make_store, reactor, pages: int) -> Pair:
    """
    A pair whose B took C{pages} pages of A's snapshot and was then killed;
    both restarted (new stores on the same files) and loaded.
    """
    before = Pair(make_store, reactor)
    before.view(1, "A", [], to="A")
    add_books(before.stores["A"], 30)
    for i in range(4):
        result(before.buy(f"r{i}"))
    result(Catalog(before.stores["B"]).decrement(3, "only-on-B"))  # a history of B's own
    records = records_of(before.stores["A"], rows=3)
    cut = 1 + pages  # the header, then the pages
    assert "page" in records[cut - 1] and "page" in records[cut]
    assert install_records(before.stores["B"], records[:cut]) is None
    for store in before.stores.values():  # kill -9: no more interactions, the files stay
        store.pool.close()
    after = Pair(make_store, reactor)
    for node in after.nodes.values():
        load(node)
    return after


@pytest.mark.parametrize("pages", [1, 5])
def test_a_replica_killed_mid_install_claims_nothing_and_installs_again(make_store, reactor, pages):
    pair = crash_mid_install(make_store, reactor, pages)
    b = pair.nodes["B"]
    assert b.installing and not pair.nodes["A"].installing
    assert (b.applied_seq, b.last_view) == (0, 0)  # the partial rows are no position
    assert result(pair.stores["B"].verify())["match"]  # their digest is right all the same
    with pytest.raises(Diverged):
        result(pair.stores["B"].apply(result(pair.stores["A"].read_log(0, 1))))
    asked = []
    remote = pair.routes["B"].remotes["A"]
    for name in ("get", "stream"):
        call = getattr(remote, name)
        setattr(remote, name, lambda path, *args, call=call: (asked.append(path), call(path, *args))[1])
    # Even a view that names it a backup leaves it recovering: it takes a fresh snapshot first.
    pair.view(2, "A", [], to="A")
    pair.view(2, "A", ["B"], to="B")
    assert asked[0] == "/replication/snapshot"
    assert b.role == "recovering" and not b.installing
    assert state(pair.stores["B"]) == state(pair.stores["A"])
    assert pair.heartbeat.synced() == [b"SYNCED catalog B 5"]


def test_a_replica_mid_install_refuses_forwarded_entries_and_says_recovering(make_store, reactor):
    pair = crash_mid_install(make_store, reactor, 2)
    pair.nodes["B"].view_received("catalog", 2, None, [])  # no primary known: it waits
    with pytest.raises(Diverged, match="installing"):
        result(pair.nodes["B"].apply(2, result(pair.stores["A"].read_log(0, 1))))
    response = result(StubTreq(pair.apps["B"].resource()).get("http://b/status"))
    assert json.loads(result(response.content()))["role"] == "recovering"


# GET /admin/dump


@pytest.fixture
def cluster(tmp_path):
    cluster = InMemoryCluster(tmp_path)
    yield cluster
    cluster.close()


def dump_over_http(stub) -> tuple[int, dict, bytes]:
    response = result(stub.get("http://replica/admin/dump", headers=AUTH))
    body = result(response.content())
    return response.code, json.loads(body), response.headers


@pytest.mark.parametrize("page", [1, 2, 1000])
def test_the_dump_is_the_whole_table_by_id_written_a_page_at_a_time(cluster, monkeypatch, page):
    monkeypatch.setattr(snapshot, "PAGE_ROWS", page)
    add_books(cluster.catalog_store, 5)
    result(Catalog(cluster.catalog_store).decrement(2, "one"))
    code, body, headers = dump_over_http(cluster.catalog)
    assert code == 200 and headers.getRawHeaders("content-type") == ["application/json"]
    assert body == result(cluster.catalog_store.dump())
    assert list(body) == ["applied_seq", "rows"] and [row["id"] for row in body["rows"]][:8] == [*range(1, 8), 100]


def test_the_order_dump_carries_its_other_tables_under_their_names(cluster, monkeypatch):
    monkeypatch.setattr(snapshot, "PAGE_ROWS", 2)
    for n in range(5):
        response = result(cluster.front.post(f"http://front/buy/{1 + n % 3}", headers={"Idempotency-Key": f"k{n}"}))
        assert response.code == 200, result(response.content())
    code, body, _ = dump_over_http(cluster.order)
    assert code == 200 and body == result(cluster.order_store.dump())
    assert len(body["rows"]) == 5 and len(body["buys"]) == 5


def test_an_empty_table_dumps_as_an_empty_list(cluster):
    code, body, _ = dump_over_http(cluster.order)
    assert (code, body) == (200, {"applied_seq": 0, "rows": [], "buys": []})


def test_the_dump_sends_one_piece_per_page(make_store):
    store = make_store("dumped")
    add_books(store, 10)
    pieces = []

    async def send(data):
        pieces.append(data)

    result(Deferred.fromCoroutine(snapshot.dump(store, send, rows=4)))
    rows = [piece for piece in pieces if b'"title"' in piece]
    assert len(rows) == math.ceil(17 / 4) and len(pieces) == len(rows) + 2  # and the head and the tail
    assert json.loads(b"".join(pieces)) == result(store.dump())


def test_a_replica_mid_install_does_not_compact(make_store, reactor, monkeypatch):
    pair = crash_mid_install(make_store, reactor, 2)
    b, calls = pair.nodes["B"], []
    monkeypatch.setattr(pair.stores["B"], "compact", lambda *args: calls.append(args) or succeed(0))
    result(Deferred.fromCoroutine(b.compact()))
    assert calls == []
    b.installing = False
    result(Deferred.fromCoroutine(b.compact()))
    assert len(calls) == 1
