"""
Unit tests of several front ends for the client tools
(L{pygmy.cli.frontends}), without sockets: a fake network of front ends
by URL, some refusing connections or closing them before an answer, the
rest canned Klein-like resources behind C{StubTreq}.  A request that gets
no answer goes to the next front end with the same headers (the same
C{Idempotency-Key}); an HTTP error answer is final; no front end at all is
one line.  The same for C{pygmy load}'s clients and C{pygmy import}'s rows.
"""

from __future__ import annotations

import io
import json
import random

import pytest
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, ensureDeferred, fail
from twisted.internet.error import ConnectionLost, ConnectionRefusedError
from twisted.internet.task import Clock, deferLater
from twisted.python.failure import Failure
from twisted.web.client import ResponseNeverReceived
from twisted.web.resource import Resource

from pygmy import cli
from pygmy.cli import client, frontends, loadgen
from pygmy.cli.frontends import Frontends, Unreachable, resolve_urls
from pygmy.cli.loadgen import Request

ORDER = {"order": {"id": 12, "item_id": 3, "created": "2026-11-21T19:53:52.770Z"}}
BOOK = {"id": 3, "title": "RPCs for Dummies", "topic": "distributed systems", "cost": "9.99", "stock": 4}


class Front(Resource):
    """One front end: canned answers by C{(method, path)}; remembers C{(method, uri, Idempotency-Key)}."""

    isLeaf = True

    def __init__(self, replies=None):
        super().__init__()
        self.seen = []
        self.replies = replies or {
            ("GET", "/lookup/3"): (200, BOOK),
            ("GET", "/lookup/99"): (404, {"error": {"code": "not_found", "message": "No book with id 99."}}),
            ("POST", "/buy/3"): (200, ORDER),
            ("POST", "/buy/4"): (409, {"error": {"code": "out_of_stock", "message": "Book 4 is out of stock."}}),
            ("POST", "/buy/5"): (503, {"error": {"code": "unavailable", "message": "No order primary."}}),
            ("POST", "/books"): (201, {"item": BOOK}),
        }

    def render(self, request):
        method, path = request.method.decode(), request.path.decode()
        key = request.getHeader("idempotency-key")
        self.seen.append((method, request.uri.decode(), key))
        code, body = self.replies.get((method, path), (404, {"error": {"code": "not_found", "message": "?"}}))
        request.setResponseCode(code)
        return json.dumps(body).encode()


class Network:
    """
    An HTTP client that reaches front ends by base URL: C{up} ones answer
    (C{StubTreq} of a L{Front}), C{refused} ones refuse the connection,
    C{lost} ones close it before an answer (after the request was sent).
    With a C{clock}, every answer comes a second later on it.

    @ivar tried: every URL asked for, in order.
    """

    def __init__(self, up=(), refused=(), lost=(), clock=None):
        self.fronts = {url: Front() for url in up}
        self.refused, self.lost = set(refused), set(lost)
        self.tried: list[str] = []
        self.clock = clock

    def request(self, method, url, **kwargs):
        answer = self.answer(method, url, **kwargs)
        if self.clock is None:
            return answer
        return deferLater(self.clock, 1.0, lambda: answer)

    def answer(self, method, url, **kwargs):

        self.tried.append(url)
        base = "/".join(url.split("/")[:3])
        if base in self.refused:
            return fail(ConnectionRefusedError())
        if base in self.lost:
            return fail(ResponseNeverReceived([Failure(ConnectionLost())]))
        kwargs.pop("timeout", None)
        return StubTreq(self.fronts[base]).request(method, url, **kwargs)


A, B, C = "http://a:1", "http://b:2", "http://c:3"


def run(network, argv, urls=(A, B)):
    """The C{pygmy} command C{argv} against C{urls} over C{network}: (status, out, err)."""
    args = cli.build_parser().parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    api = client.Frontend(network, list(urls), timeout=None)
    found = []
    ensureDeferred(client.run(api, args, out, err)).addBoth(found.append)
    return found[0], out.getvalue(), err.getvalue()


# Which front ends


def test_url_is_repeatable_and_kept_in_order():
    args = cli.build_parser().parse_args(["lookup", "3", "--url", B, "-u", "a:1/", "--url", B])
    assert args.url == [B, "a:1/", B]
    assert resolve_urls(args.url, None) == (B, A)
    for command in (["search", "t"], ["list"], ["status"], ["order", "1"], ["buy", "1"], ["load"], ["import", "f"]):
        assert cli.build_parser().parse_args([*command, "-u", A, "-u", C]).url == [A, C]


def test_every_front_end_of_the_config_in_file_order(tmp_path):
    path = tmp_path / "config.ini"
    path.write_text(
        "[cluster]\nheartbeat_timeout = 1.5\n"
        "[frontend:west]\nhost = 127.0.0.3\nport = 9180\nheartbeat_port = 9190\n"
        "[frontend:east]\nhost = 127.0.0.2\nport = 9080\nheartbeat_port = 9090\n"
        "[coordinator]\netcd = http://127.0.0.1:2379\n"
        "[catalog:A]\nport = 9081\n[catalog:B]\nport = 9082\n[order:A]\nport = 9083\n[order:B]\nport = 9084\n"
    )
    assert resolve_urls(None, str(path)) == ("http://127.0.0.3:9180", "http://127.0.0.2:9080")
    assert resolve_urls([A], str(path)) == (A,)


def test_rotation_starts_at_the_current_one_and_spread_starts_elsewhere():
    fronts = Frontends([A, B, C])
    assert fronts.rotation() == [A, B, C] and fronts.several
    assert fronts.spread(1).rotation() == [B, C, A]
    assert fronts.spread(5).url == C
    assert not Frontends(A).several
    with pytest.raises(client.UsageError):
        Frontends([])


# Going to the next one


def test_a_refused_front_end_is_skipped_and_the_next_one_answers():
    network = Network(up=[B], refused=[A])
    status, out, err = run(network, ["lookup", "3", "--json"])
    assert (status, json.loads(out), err) == (0, BOOK, "")
    assert network.tried == [f"{A}/lookup/3", f"{B}/lookup/3"]
    # The next request goes straight to the one that answered.
    run_again = client.Frontend(network, [A, B], timeout=None)
    assert run_again.url == A


def test_the_front_end_that_answered_is_tried_first_next_time():
    network = Network(up=[B], refused=[A])
    api = client.Frontend(network, [A, B], timeout=None)
    for _ in range(3):
        result = []
        ensureDeferred(client.lookup(api, "3")).addBoth(result.append)
        assert result == [BOOK]
    assert network.tried == [f"{A}/lookup/3", f"{B}/lookup/3", f"{B}/lookup/3", f"{B}/lookup/3"]
    assert api.url == B and api.frontends.moves == 1


def test_a_buy_lost_mid_request_goes_to_the_next_with_the_same_key():
    network = Network(up=[B], lost=[A])
    status, out, _ = run(network, ["buy", "3", "--key", "k-7"])
    assert status == 0 and out.startswith("order    12")
    assert network.fronts[B].seen == [("POST", "/buy/3", "k-7")]
    assert network.tried == [f"{A}/buy/3", f"{B}/buy/3"]


def test_a_buy_without_a_key_gets_one_when_it_may_go_elsewhere():
    network = Network(up=[B], refused=[A])
    assert run(network, ["buy", "3"])[0] == 0
    [(_, _, key)] = network.fronts[B].seen
    assert key and len(key) == 32
    alone = Network(up=[A])
    assert run(alone, ["buy", "3"], urls=[A])[0] == 0
    assert alone.fronts[A].seen == [("POST", "/buy/3", None)]


@pytest.mark.parametrize(
    "argv, code",
    [
        (["lookup", "99"], "404 not_found: No book with id 99."),
        (["buy", "4", "--key", "k"], "409 out_of_stock: Book 4 is out of stock."),
        (["buy", "5", "--key", "k"], "503 unavailable: No order primary."),
    ],
)
def test_an_error_answer_is_final_and_never_sent_elsewhere(argv, code):
    network = Network(up=[A, B])
    status, out, err = run(network, argv)
    assert status == 1 and out == ""
    assert err == f"pygmy {argv[0]}: {code}\n"
    assert len(network.fronts[A].seen) == 1 and network.fronts[B].seen == []


def test_no_front_end_at_all_is_one_line_naming_each_and_exit_3():
    network = Network(refused=[A], lost=[B])
    status, out, err = run(network, ["status"])
    assert (status, out) == (3, "")
    assert err == (
        f"pygmy status: cannot reach any front end: {A} (connection refused), "
        f"{B} (connection closed before an answer)\n"
    )
    assert network.tried == [f"{A}/status", f"{B}/status"]


def test_first_raises_unreachable_with_every_failure():
    fronts = Frontends([A, B])

    async def attempt(url):
        raise ConnectionRefusedError()

    found = []
    ensureDeferred(fronts.first(attempt)).addErrback(found.append)
    assert found[0].check(Unreachable)
    assert found[0].value.failures == ((A, "connection refused"), (B, "connection refused"))
    assert found[0].value.status == frontends.UNREACHABLE
    assert fronts.url == A and fronts.moves == 0


# pygmy load and pygmy import


def test_load_clients_start_at_different_front_ends_and_move_on_from_a_dead_one():
    clock = Clock()
    network = Network(up=[A, B], refused=[C], clock=clock)
    fronts = Frontends([A, B, C])
    samples = []
    done = ensureDeferred(
        loadgen.drive(clock, network, lambda n: Request("lookup", "GET", "/lookup/3"), 3, count=9, frontends=fronts)
    )
    done.addCallback(samples.extend)
    for _ in range(20):
        clock.advance(1.0)
    assert len(samples) == 9 and all(s.ok for s in samples)
    # Client 0 stays on A, client 1 on B; client 2 began at C, found it refused
    # once and stays on A (the next after C) from then on.
    assert len(network.fronts[A].seen) == 6 and len(network.fronts[B].seen) == 3
    assert [url for url in network.tried if url.startswith(C)] == [f"{C}/lookup/3"]
    assert fronts.moves == 1
    # A request that moved on took the time of every front end tried.
    assert sorted(s.seconds for s in samples) == [1.0] * 8 + [2.0]


def test_load_counts_no_answer_only_when_every_front_end_is_down():
    network = Network(refused=[A, B])
    samples = []
    ensureDeferred(
        loadgen.drive(
            Clock(), network, lambda n: Request("buy", "POST", "/buy/3"), 2, count=4, frontends=Frontends([A, B])
        )
    ).addCallback(samples.extend)
    assert [s.status for s in samples] == [0, 0, 0, 0]


def test_an_import_row_goes_to_the_next_front_end_with_its_key(tmp_path):
    from pygmy.cli.import_file import Rows
    from pygmy.cli.importer import Import, Settings
    from tests.fakes import ThreadedClock

    path = tmp_path / "b.jsonl"
    path.write_text(json.dumps({"title": "T", "topic": "t", "cost": "1.00", "stock": 1}) + "\n")
    network = Network(up=[B], refused=[A])
    settings = Settings(path=str(path), form="jsonl", url=A, urls=(A, B), secret="s", concurrency=1, retries=0)
    with open(path, "rb") as stream:
        rows = Rows(stream, "jsonl", path.stat().st_size, str(path))
        rows.read_header()
        found = []
        job = Import(ThreadedClock(), network, settings, rows, random.Random(1))
        Deferred.fromCoroutine(job.run()).addBoth(found.append)
    [summary] = found
    assert summary.added == 1 and summary.retries == 0
    [(method, uri, key)] = network.fronts[B].seen
    assert (method, uri) == ("POST", "/books") and key.startswith("import-")
    assert network.tried == [f"{A}/books", f"{B}/books"]


def test_status_says_which_front_end_answered_and_who_manages_the_views():
    from pygmy.cli import formats

    follower = {"name": "2", "role": "follower", "leader": "1", "coordinator": "etcd"}
    text = formats.format_status({"services": {}, "balancer": "round_robin", "frontend": follower})
    assert text.splitlines()[-1] == "front end  2: follower, views managed by 1 (etcd)"
    leader = {"name": "frontend", "role": "leader", "leader": "frontend", "coordinator": "local"}
    assert formats.describe_frontend(leader) == "frontend: manages the views (local)"
    alone = {"name": "2", "role": "follower", "leader": None, "coordinator": "etcd"}
    assert formats.describe_frontend(alone) == "2: follower, no front end manages the views now (etcd)"
    starting = {**alone, "views_read": False}
    assert formats.describe_frontend(starting) == (
        "2: follower, no front end manages the views now (etcd), "
        "not yet read the stored views (its view numbers say nothing)"
    )
    assert "front end" not in formats.format_status({"services": {}, "balancer": "round_robin"})


# pygmy update


def updated(network, argv, urls=(A, B)):
    """C{pygmy update ...} as the command runs it, with its secret already resolved."""
    args = cli.build_parser().parse_args(argv)
    args.secret = args.secret or "s3cret"
    out, err = io.StringIO(), io.StringIO()
    found = []
    ensureDeferred(client.run(client.Frontend(network, list(urls), timeout=None), args, out, err)).addBoth(found.append)
    return found[0], out.getvalue(), err.getvalue()


class Updates(Front):
    """A front end whose C{POST /update/3} checks the secret and echoes the change."""

    def render(self, request):
        if request.path == b"/update/3":
            body = json.loads(request.content.read())
            self.seen.append((request.getHeader("authorization"), request.getHeader("idempotency-key"), body))
            request.setResponseCode(200)
            return json.dumps({"item": {**BOOK, "cost": body.get("cost", BOOK["cost"])}}).encode()
        return super().render(request)


def test_an_update_goes_to_the_next_front_end_with_its_secret_body_and_key():
    network = Network(refused=[A])
    network.fronts[B] = Updates()
    status, out, err = updated(network, ["update", "3", "--cost", "12.50", "--stock-delta", "-2", "--key", "u-1"])
    assert (status, err) == (0, "")
    assert "cost   12.50" in out
    assert network.fronts[B].seen == [("Bearer s3cret", "u-1", {"cost": "12.50", "stock_delta": -2})]
    assert network.tried == [f"{A}/update/3", f"{B}/update/3"]
    # Without a key, one of its own when it may go elsewhere.
    updated(network, ["update", "3", "--stock-delta", "5"])
    assert len(network.fronts[B].seen[-1][1]) == 32


def test_an_update_needs_a_change():
    network = Network(up=[A])
    status, out, err = updated(network, ["update", "3"])
    assert (status, out) == (2, "") and err == "pygmy update: give --cost and/or --stock-delta\n"
    assert network.tried == []


def test_update_takes_the_secret_from_the_config(tmp_path, monkeypatch):
    monkeypatch.delenv("PYGMY_SECRET", raising=False)
    path = tmp_path / "config.ini"
    path.write_text(
        "[cluster]\nsecret = from-file\n[frontend]\nport = 9\nheartbeat_port = 10\n"
        "[catalog:A]\nport = 9081\n[catalog:B]\nport = 9082\n[order:A]\nport = 9083\n[order:B]\nport = 9084\n"
    )
    monkeypatch.setattr(client, "react_for_status", lambda command: 0)
    args = cli.build_parser().parse_args(["update", "3", "--cost", "1.00", "--config", str(path)])
    assert client.main(args) == 0 and args.secret == "from-file"
    args = cli.build_parser().parse_args(["update", "3", "--cost", "1.00", "--config", str(path), "--secret", "given"])
    assert client.main(args) == 0 and args.secret == "given"
