"""
Unit tests of the everyday client commands (L{pygmy.cli.client}), without
sockets: what each command asks (through C{StubTreq} and a canned front
end), how replies and errors are printed.  Where the front end is and the
commands' arguments are in C{tests/unit/test_client_arguments.py}; the same
commands against a real cluster are in
C{tests/integration/test_client_commands.py}.
"""

from __future__ import annotations

import io
import json

import pytest
from treq.testing import StubTreq
from twisted.internet.defer import ensureDeferred, fail
from twisted.internet.error import ConnectionRefusedError, DNSLookupError, TimeoutError
from twisted.web.resource import Resource

from pygmy import cli
from pygmy.cli import client, formats

BOOK = {
    "id": 3,
    "title": "Xen and the Art of Surviving Graduate School",
    "topic": "graduate school",
    "cost": "15.00",
    "stock": 1000,
}
ORDER = {"order": {"id": 12, "item_id": 3, "created": "2026-11-21T19:53:52.770Z"}}
SEARCH = {
    "topic": "distributed systems",
    "items": [
        {"id": 1, "title": "How to get a good grade in 677 in 20 minutes a day"},
        {"id": 2, "title": "RPCs for Dummies"},
    ],
}
LIST = {
    "items": [
        {
            "id": 1,
            "title": "How to get a good grade in 677 in 20 minutes a day",
            "topic": "distributed systems",
            "cost": "19.99",
            "stock": 1000,
        },
        {"id": 6, "title": "Why theory classes are so hard", "topic": "theory", "cost": "9.99", "stock": 7},
    ],
    "next": None,
}
STATUS = {
    "services": {
        "catalog": {
            "view": 3,
            "primary": "B",
            "backups": ["A"],
            "in_sync": ["A", "B"],
            "replicas": {
                "A": {"alive": True, "state": "backup", "applied_seq": 41},
                "B": {"alive": True, "state": "primary", "applied_seq": 41},
            },
        },
        "order": {
            "view": 2,
            "primary": "A",
            "backups": [],
            "in_sync": ["A"],
            "replicas": {
                "A": {"alive": True, "state": "primary", "applied_seq": 12},
                "B": {"alive": False, "state": "down", "applied_seq": 9},
            },
        },
    },
    "cache": {
        "size": 3,
        "capacity": 1000,
        "hits": 10,
        "misses": 4,
        "invalidations": 2,
        "evictions": 0,
        "refused_fills": 0,
    },
    "balancer": "round_robin",
}


def error(code, word, message):
    return code, {"error": {"code": word, "message": message}}


class FakeFrontend(Resource):
    """Canned replies by C{(method, path)}; remembers every request."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.seen = []
        self.replies = {
            ("GET", "/search"): (200, SEARCH),
            ("GET", "/lookup/3"): (200, BOOK),
            ("GET", "/lookup/99"): error(404, "not_found", "No book with id 99."),
            ("GET", "/lookup/x%2Fy"): error(400, "bad_request", "id must be a positive integer."),
            ("POST", "/buy/3"): (200, ORDER),
            ("POST", "/buy/4"): error(409, "out_of_stock", "Book 4 is out of stock."),
            ("GET", "/orders/12"): (200, ORDER),
            ("GET", "/list"): (200, LIST),
            ("GET", "/status"): (200, STATUS),
            ("GET", "/html"): (502, "<html>bad gateway</html>"),
        }

    def render(self, request):
        method, path = request.method.decode(), request.path.decode()
        self.seen.append((method, request.uri.decode(), request.getHeader("idempotency-key")))
        code, body = self.replies.get((method, path), error(404, "not_found", "No such path."))
        request.setResponseCode(code)
        return body.encode() if isinstance(body, str) else json.dumps(body).encode()


@pytest.fixture
def front():
    return FakeFrontend()


def run(front, argv):
    """Parse C{argv} as the C{pygmy} command and run it against C{front}; (status, out, err)."""
    args = cli.build_parser().parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    api = client.Frontend(StubTreq(front), "http://front", timeout=None)
    found = []
    ensureDeferred(client.run(api, args, out, err)).addBoth(found.append)
    return found[0], out.getvalue(), err.getvalue()


# Each command, readable


def test_search(front):
    status, out, err = run(front, ["search", "distributed", "systems"])
    assert (status, err) == (0, "")
    assert out == (
        "id  title\n"
        "--  --------------------------------------------------\n"
        " 1  How to get a good grade in 677 in 20 minutes a day\n"
        " 2  RPCs for Dummies\n"
        '2 books on "distributed systems"\n'
    )
    assert front.seen == [("GET", "/search?topic=distributed+systems", None)]


def test_search_with_nothing_found():
    assert formats.format_search({"topic": "knitting", "items": []}) == 'no books on "knitting"'
    assert formats.format_search({"topic": "t", "items": [{"id": 7, "title": "x"}]}).endswith('1 book on "t"')


def test_lookup(front):
    status, out, _ = run(front, ["lookup", "3"])
    assert status == 0
    assert out == (
        "id     3\n"
        "title  Xen and the Art of Surviving Graduate School\n"
        "topic  graduate school\n"
        "cost   15.00\n"
        "stock  1000\n"
    )


def test_buy_sends_the_idempotency_key(front):
    status, out, _ = run(front, ["buy", "3", "--key", "k-1"])
    assert status == 0
    assert out == "order    12\nbook     3\ncreated  2026-11-21T19:53:52.770Z\n"
    assert front.seen == [("POST", "/buy/3", "k-1")]
    run(front, ["buy", "3"])
    assert front.seen[-1] == ("POST", "/buy/3", None)


def test_order(front):
    status, out, _ = run(front, ["order", "12"])
    assert status == 0 and out.splitlines()[0] == "order    12"


def test_list(front):
    status, out, _ = run(front, ["list"])
    assert status == 0
    assert out == (
        "id  title                                               topic                 cost  stock\n"
        "--  --------------------------------------------------  -------------------  -----  -----\n"
        " 1  How to get a good grade in 677 in 20 minutes a day  distributed systems  19.99   1000\n"
        " 6  Why theory classes are so hard                      theory                9.99      7\n"
    )


def test_status(front):
    status, out, _ = run(front, ["status"])
    assert status == 0
    assert out == (
        "service  view  primary  backups  in sync\n"
        "-------  ----  -------  -------  -------\n"
        "catalog     3  B        A        A, B\n"
        "order       2  A        -        A\n"
        "\n"
        "replica    alive  state    applied_seq\n"
        "---------  -----  -------  -----------\n"
        "catalog:A  yes    backup            41\n"
        "catalog:B  yes    primary           41\n"
        "order:A    yes    primary           12\n"
        "order:B    no     down               9\n"
        "\n"
        "cache     3 of 1000 entries; hits 10, misses 4, invalidations 2, evictions 0, refused fills 0\n"
        "balancer  round_robin\n"
    )


@pytest.mark.parametrize(
    "argv, body",
    [
        (["search", "distributed systems"], SEARCH),
        (["lookup", "3"], BOOK),
        (["buy", "3"], ORDER),
        (["order", "12"], ORDER),
        (["list"], LIST),
        (["status"], STATUS),
    ],
)
def test_json_prints_the_reply(front, argv, body):
    status, out, err = run(front, argv + ["--json"])
    assert (status, err) == (0, "")
    assert json.loads(out) == body


class PagedList(Resource):
    """C{GET /list} over the books of C{LIST} and three more, page by page as the front end does."""

    isLeaf = True
    books = LIST["items"] + [dict(BOOK, id=i) for i in (7, 8, 9)]

    def __init__(self, next_of=None):
        super().__init__()
        self.seen = []
        self.next_of = next_of

    def render(self, request):
        after = int(request.args.get(b"after", [b"0"])[0])
        limit = int(request.args.get(b"limit", [b"1000"])[0])
        self.seen.append(request.uri.decode())
        following = [book for book in self.books if book["id"] > after]
        page = following[:limit]
        last = page[-1]["id"] if len(following) > limit else None
        next_ = last if self.next_of is None else self.next_of(after, last)
        return json.dumps({"items": page, "next": next_}).encode()


def test_list_follows_the_pages():
    front = PagedList()
    status, out, _ = run(front, ["list", "--limit", "2", "--json"])
    assert status == 0
    assert front.seen == ["/list?limit=2", "/list?after=6&limit=2", "/list?after=8&limit=2"]
    assert json.loads(out) == {"items": PagedList.books, "next": None}
    front = PagedList()
    status, out, _ = run(front, ["list"])
    assert (status, front.seen) == (0, ["/list"])
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["1", "6", "7", "8", "9"]


def test_list_refuses_a_next_that_does_not_move_on():
    for next_of in (
        lambda after, last: after,
        lambda after, last: 0,
        lambda after, last: "7",
        lambda after, last: True,
    ):
        status, out, err = run(PagedList(next_of), ["list", "--limit", "2"])
        assert (status, out) == (1, "")
        assert err.startswith("pygmy list: 200 bad_reply: next ")


@pytest.mark.parametrize("limit", ["0", "1001", "x", "-1"])
def test_list_limit_is_1_to_1000(limit, capsys):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["list", "--limit", limit])
    assert cli.build_parser().parse_args(["list", "--limit", "1000"]).limit == 1000
    assert cli.build_parser().parse_args(["list"]).limit is None


# Failures


def test_server_error_exits_1_with_its_message(front):
    status, out, err = run(front, ["lookup", "99"])
    assert (status, out) == (1, "")
    assert err == "pygmy lookup: 404 not_found: No book with id 99.\n"
    status, out, err = run(front, ["buy", "4"])
    assert status == 1 and err == "pygmy buy: 409 out_of_stock: Book 4 is out of stock.\n"


def test_server_error_with_json_prints_the_error_body_too(front):
    status, out, err = run(front, ["lookup", "99", "--json"])
    assert status == 1
    assert json.loads(out) == {"error": {"code": "not_found", "message": "No book with id 99."}}
    assert err == "pygmy lookup: 404 not_found: No book with id 99.\n"


def test_ids_are_quoted_into_one_path_segment(front):
    status, _, err = run(front, ["lookup", "x/y"])
    assert front.seen == [("GET", "/lookup/x%2Fy", None)]
    assert status == 1 and err == "pygmy lookup: 400 bad_request: id must be a positive integer.\n"


def test_a_reply_that_is_not_pygmy_json(front):
    api = client.Frontend(StubTreq(front), "http://front", timeout=None)
    found = []
    ensureDeferred(api.call("GET", "/html")).addErrback(found.append)
    assert found[0].check(client.ServerError)
    assert str(found[0].value) == "HTTP 502 from the front end, and not a Pygmy JSON reply"
    assert (found[0].value.code, found[0].value.body, found[0].value.status) == (502, None, 1)


class Refusing:
    """An HTTP client whose every request fails with C{error}."""

    def __init__(self, error):
        self.error = error

    def request(self, *args, **kwargs):
        return fail(self.error)


@pytest.mark.parametrize(
    "error, words",
    [
        (ConnectionRefusedError(), "connection refused"),
        (TimeoutError(), "timed out"),
        (DNSLookupError("nowhere"), "unknown host"),
        (ValueError("odd\nmore"), "ValueError: odd"),
    ],
)
def test_unreachable_front_end_is_one_line_and_exit_3(error, words):
    args = cli.build_parser().parse_args(["status"])
    out, err = io.StringIO(), io.StringIO()
    api = client.Frontend(Refusing(error), "http://127.0.0.1:9", timeout=None)
    found = []
    ensureDeferred(client.run(api, args, out, err)).addBoth(found.append)
    assert found == [3] and out.getvalue() == ""
    assert err.getvalue() == f"pygmy status: cannot reach the front end at http://127.0.0.1:9 ({words})\n"


def test_plain_table():
    assert formats.table(["a", "bb"], [[1, None], [222, "x"]], right=(0,)) == "  a  bb\n---  --\n  1\n222  x"
