"""
Batches of calls between processes (pygmy.net.batching): when calls are sent,
which calls share a request, and that every call gets its own answer or its
own error -- on the caller's side with a controllable sender and a Clock,
on the replica's side through the real catalog and order apps.
"""

import json

import pytest
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.task import Clock
from twisted.logger import capturedLogs

from pygmy.errors import BadRequest, NotFound, OutOfStock, PygmyError
from pygmy.net.batching import BATCH_LIMIT, Batcher, answer_each, requests_of
from pygmy.net.remote import ReplicaDown
from tests.fakes import InMemoryCluster, result, stub_remote


class Sender:
    """Records each batch it is asked to send; the test answers them."""

    def __init__(self):
        self.sent: list[tuple[list, Deferred]] = []

    def __call__(self, bodies):
        d = Deferred()
        self.sent.append((bodies, d))
        return d

    @property
    def batches(self):
        return [bodies for bodies, _ in self.sent]


def outcomes(*calls):
    """What each call's Deferred fired with so far (None if it has not)."""
    seen = []
    for d in calls:
        box = []
        d.addBoth(box.append)
        seen.append(box[0] if box else None)
        if box and hasattr(box[0], "value"):
            d.addErrback(lambda f: None)
    return seen


def test_calls_of_one_turn_share_one_request():
    clock, send = Clock(), Sender()
    batcher = Batcher(send, clock)
    calls = [batcher.call({"n": n}) for n in range(3)]
    assert send.batches == []  # nothing goes before the turn ends
    clock.advance(0)
    assert send.batches == [[{"n": 0}, {"n": 1}, {"n": 2}]]
    send.sent[0][1].callback(["a", "b", "c"])
    assert outcomes(*calls) == ["a", "b", "c"]


def test_calls_made_while_the_batches_are_out_wait_and_go_together():
    clock, send = Clock(), Sender()
    batcher = Batcher(send, clock, parallel=1)
    first = batcher.call(1)
    clock.advance(0)
    later = [batcher.call(2), batcher.call(3)]
    clock.advance(0)
    assert send.batches == [[1]]
    send.sent[0][1].callback(["one"])
    assert outcomes(first) == ["one"]
    clock.advance(0)
    assert send.batches == [[1], [2, 3]]
    send.sent[1][1].callback(["two", "three"])
    assert outcomes(*later) == ["two", "three"]


def test_by_default_two_batches_overlap():
    clock, send = Clock(), Sender()
    batcher = Batcher(send, clock)
    batcher.call(1)
    clock.advance(0)
    batcher.call(2)
    clock.advance(0)
    batcher.call(3)
    clock.advance(0)
    assert send.batches == [[1], [2]]  # the third waits for one of them
    send.sent[0][1].callback(["one"])
    clock.advance(0)
    assert send.batches == [[1], [2], [3]]


def test_limit_and_parallel_batches():
    clock, send = Clock(), Sender()
    batcher = Batcher(send, clock, limit=2, parallel=2)
    calls = [batcher.call(n) for n in range(5)]
    clock.advance(0)
    assert send.batches == [[0, 1], [2, 3]]
    send.sent[1][1].callback(["c", "d"])
    clock.advance(0)
    assert send.batches == [[0, 1], [2, 3], [4]]
    send.sent[0][1].callback(["a", "b"])
    send.sent[2][1].callback(["e"])
    assert outcomes(*calls) == ["a", "b", "c", "d", "e"]


def test_each_call_gets_its_own_error():
    clock = Clock()
    batcher = Batcher(lambda bodies: succeed(["ok", OutOfStock("none left"), NotFound("no book")]), clock)
    calls = [batcher.call(n) for n in range(3)]
    clock.advance(0)
    ok, out, missing = outcomes(*calls)
    assert ok == "ok"
    assert out.check(OutOfStock) and out.value.message == "none left"
    assert missing.check(NotFound)


def test_a_failed_request_fails_every_call_and_the_next_batch_still_goes():
    clock, send = Clock(), Sender()
    batcher = Batcher(send, clock, parallel=1)
    calls = [batcher.call(n) for n in range(2)]
    clock.advance(0)
    batcher.call(2)
    send.sent[0][1].errback(ReplicaDown("catalog:A is unreachable."))
    assert all(f.check(ReplicaDown) for f in outcomes(*calls))
    clock.advance(0)
    assert send.batches[-1] == [2]


def test_wrong_number_of_answers_fails_the_batch():
    clock = Clock()
    batcher = Batcher(lambda bodies: succeed(["only one"]), clock)
    calls = [batcher.call(n) for n in range(2)]
    clock.advance(0)
    failures = outcomes(*calls)
    assert all(f.check(PygmyError) and "2 calls got 1 answers" in f.value.message for f in failures)


def test_a_cancelled_call_leaves_the_others_alone():
    clock, send = Clock(), Sender()
    batcher = Batcher(send, clock)
    gone, kept = batcher.call(1), batcher.call(2)
    clock.advance(0)
    gone.cancel()
    send.sent[0][1].callback(["late", "kept"])
    cancelled, answered = outcomes(gone, kept)
    assert cancelled.check(CancelledError) and answered == "kept"


# The replica's side


def test_a_cancelled_batch_cancels_its_calls_quietly():
    """The caller went away (Klein cancels): no call is logged as failed."""
    waits = []

    async def handle(call):
        waits.append(Deferred())
        return await waits[-1]

    with capturedLogs() as events:
        answer = Deferred.fromCoroutine(answer_each([{"n": 0}, {"n": 1}], handle))
        answer.cancel()
        failure = outcomes(answer)[0]
    assert failure.check(CancelledError)
    assert all(w.called for w in waits)
    assert not [e for e in events if e.get("log_failure") is not None], events


def test_answer_each_keeps_order_and_isolates_errors():
    async def handle(call):
        if call["n"] == 1:
            raise OutOfStock("Book 1 is out of stock.")
        if call["n"] == 2:
            raise RuntimeError("bug")
        return {"n": call["n"]}

    with capturedLogs() as events:
        answer = result(answer_each([{"n": 0}, {"n": 1}, {"n": 2}, "junk"], handle))
    assert answer["results"] == [
        {"ok": {"n": 0}},
        {"error": {"code": "out_of_stock", "message": "Book 1 is out of stock."}},
        {"error": {"code": "internal", "message": "Internal server error."}},
        {"error": {"code": "bad_request", "message": "Each call of a batch must be a JSON object."}},
    ]
    assert [e for e in events if e.get("log_failure") is not None], "the bug is logged"


@pytest.mark.parametrize(
    "body",
    [{}, {"requests": "x"}, {"requests": []}, {"requests": [{}] * (BATCH_LIMIT + 1)}, []],
    ids=["missing", "not-a-list", "empty", "too-many", "not-an-object"],
)
def test_requests_of_refuses_bad_envelopes(body):
    with pytest.raises(BadRequest):
        requests_of(body)


@pytest.fixture
def cluster(tmp_path):
    cluster = InMemoryCluster(tmp_path)
    yield cluster
    cluster.close()


def post(stub, path, body, secret=InMemoryCluster.secret):
    headers = {"Authorization": f"Bearer {secret}"}
    response = result(stub.post("http://replica.invalid" + path, data=json.dumps(body).encode(), headers=headers))
    return response.code, json.loads(result(response.content()))


def test_catalog_batch_of_decrements_of_the_last_copy(cluster):
    code, body = post(cluster.front, "/update/2", {"stock_delta": 1 - 1000})
    assert code == 200 and body["item"]["stock"] == 1
    calls = [{"item_id": 2, "request_id": f"buy:{n}"} for n in range(20)]
    calls += [{"item_id": 99, "request_id": "buy:x"}, {"item_id": "two", "request_id": "buy:y"}]
    code, body = post(cluster.catalog, "/books/decrement", {"requests": calls})
    assert code == 200
    results = body["results"]
    won = [r for r in results[:20] if "ok" in r]
    assert len(won) == 1 and won[0]["ok"]["item"]["stock"] == 0
    assert [r["error"]["code"] for r in results[:20] if "error" in r] == ["out_of_stock"] * 19
    assert results[20]["error"]["code"] == "not_found"
    assert results[21]["error"]["code"] == "bad_request"


@pytest.mark.parametrize("route", ["/books/decrement", "/orders/buy"])
@pytest.mark.parametrize("body", [{"requests": "x"}, {"requests": []}, {"nothing": 1}])
def test_batch_routes_refuse_bad_envelopes(cluster, route, body):
    stub = cluster.catalog if route.startswith("/books") else cluster.order
    code, answer = post(stub, route, body)
    assert code == 400 and answer["error"]["code"] == "bad_request"


@pytest.mark.parametrize("route", ["/books/decrement", "/orders/buy"])
def test_batch_routes_need_the_secret(cluster, route):
    stub = cluster.catalog if route.startswith("/books") else cluster.order
    code, _ = post(stub, route, {"requests": [{"item_id": 1, "request_id": "r"}]}, secret="wrong")
    assert code == 401


def test_order_batch_buys_each_call_once(cluster):
    calls = [
        {"item_id": 3, "request_id": "buy:a"},
        {"item_id": 3, "request_id": "buy:a"},
        {"item_id": 4, "request_id": "buy:b"},
        {"item_id": 404, "request_id": "buy:c"},
    ]
    code, body = post(cluster.order, "/orders/buy", {"requests": calls})
    assert code == 200
    first, again, other, missing = body["results"]
    assert first == again  # the same request id: the same order
    assert other["ok"]["order"]["item_id"] == 4
    assert missing["error"]["code"] == "not_found"
    headers = {"Authorization": f"Bearer {cluster.secret}"}
    book = result(result(cluster.catalog.get("http://replica.invalid/books/3", headers=headers)).json())
    assert book["stock"] == 999  # one decrement for the two calls of buy:a


def test_remote_batched_maps_each_answer(cluster):
    remote = stub_remote(cluster.catalog_app.resource(), "catalog", "A", cluster.reactor, cluster.secret)
    ok = remote.batched("/books/decrement", {"item_id": 6, "request_id": "buy:r1"})
    missing = remote.batched("/books/decrement", {"item_id": 77, "request_id": "buy:r2"})
    assert result(ok)["item"]["stock"] == 999
    with pytest.raises(NotFound):
        result(missing)


@pytest.mark.parametrize(
    "answer",
    [{"nothing": []}, {"results": [{"error": {"code": "made_up", "message": "?"}}]}, {"results": [7]}, {"results": []}],
    ids=["no-results", "unknown-code", "not-an-object", "too-few"],
)
def test_remote_batched_turns_odd_answers_into_replica_down(answer):
    from klein import Klein

    from tests.fakes import SyncReactor

    app = Klein()

    @app.route("/odd", methods=["POST"])
    def odd(request):
        return json.dumps(answer).encode()

    remote = stub_remote(app.resource(), "catalog", "A", SyncReactor())
    with pytest.raises(ReplicaDown):
        result(remote.batched("/odd", {"item_id": 1, "request_id": "r"}))
