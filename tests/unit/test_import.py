"""
Unit tests of C{pygmy import} (L{pygmy.cli.importer}, L{pygmy.cli.import_file},
L{pygmy.cli.import_report}), without sockets: the rows of CSV and JSON
lines files, their keys, and whole imports against a fake front end that
keeps the contract of C{POST /books} (DESIGN.md section 3: the secret,
201 C{{"item"}}, 400 and 409 C{{"error"}}, the C{Idempotency-Key}, 503
with C{Retry-After}) behind C{StubTreq}, on a C{Clock}.  The same command
against a real cluster is in C{tests/integration/test_import.py}.
"""

from __future__ import annotations

import io
import json
import random
from types import SimpleNamespace

import pytest
from klein import Klein
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionLost, ConnectionRefusedError
from twisted.internet.task import Clock

from pygmy import cli
from pygmy.cli import importer
from pygmy.cli.import_file import MAX_LINE, FileError, Row, Rows, check_book, choose_format, row_key
from pygmy.cli.import_report import PLAIN_EVERY, PlainProgress, Refusal, Refusals, Summary
from pygmy.cli.importer import Import, Settings
from pygmy.errors import BadRequest

SECRET = "s3cret"
URL = "http://front.example"


# A front end that keeps the contract of POST /books


class FakeFrontEnd:
    """
    C{POST /books} as DESIGN.md section 3 has it, in memory; its own checks
    are written apart from L{check_book}, and it refuses (400) any title
    containing C{"server says no"}, which no local check can know.

    @ivar unavailable: how many of the next requests answer 503 with
        C{Retry-After: retry_after} before doing anything.
    """

    app = Klein()

    def __init__(self):
        self.books: dict[int, dict] = {}
        self.keys: dict[str, tuple[dict, dict]] = {}
        self.requests: list[tuple[str | None, dict | None]] = []
        self.unavailable = 0
        self.retry_after = "1"

    def error(self, request, status, code, message):
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps({"error": {"code": code, "message": message}}).encode()

    @app.route("/books", methods=["POST"])
    def add(self, request):
        key = request.getHeader(b"idempotency-key")
        key = key.decode() if key is not None else None
        try:
            body = json.loads(request.content.read())
        except ValueError:
            body = None
        self.requests.append((key, body))
        if request.getHeader(b"authorization") != f"Bearer {SECRET}".encode():
            return self.error(request, 401, "unauthorized", "This route needs 'Authorization: Bearer <secret>'.")
        if self.unavailable:
            self.unavailable -= 1
            request.setHeader(b"retry-after", self.retry_after.encode())
            return self.error(request, 503, "unavailable", "No catalog primary.")
        if not isinstance(body, dict) or sorted(body) != ["cost", "stock", "title", "topic"]:
            return self.error(request, 400, "bad_request", "Give exactly title, topic, cost and stock.")
        if type(body["stock"]) is not int or body["stock"] < 0 or not isinstance(body["cost"], str):
            return self.error(request, 400, "bad_request", "Bad stock or cost.")
        if not 1 <= len(body["title"]) <= 300 or not 1 <= len(body["topic"]) <= 200:
            return self.error(request, 400, "bad_request", "Bad title or topic.")
        if "server says no" in body["title"]:
            return self.error(request, 400, "bad_request", "The server does not like this title.")
        if key is not None and key in self.keys:
            first, reply = self.keys[key]
            if first != body:
                return self.error(request, 409, "conflict", "Idempotency-Key used with another request.")
        else:
            item = {"id": len(self.books) + 1, **body}
            self.books[item["id"]] = item
            reply = {"item": item}
            if key is not None:
                self.keys[key] = (body, reply)
        request.setResponseCode(201)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(reply).encode()

    def titles(self) -> list[str]:
        return sorted(book["title"] for book in self.books.values())


class Flaky:
    """
    An HTTP client in front of C{StubTreq}: the first C{refuse} requests
    are refused, the answers of the next C{lose} are lost after the front
    end did the work, and the next C{hang} never answer.
    """

    def __init__(self, stub, refuse=0, lose=0, hang=0):
        self.stub, self.refuse, self.lose, self.hang = stub, refuse, lose, hang

    def request(self, method, url, **kwargs):
        if self.refuse:
            self.refuse -= 1
            return fail(ConnectionRefusedError())
        if self.lose:
            self.lose -= 1
            done = self.stub.request(method, url, **kwargs)
            return done.addCallback(lambda _: fail(ConnectionLost()))
        if self.hang:
            self.hang -= 1
            return Deferred()
        return self.stub.request(method, url, **kwargs)


class Held:
    """An HTTP client whose requests wait until the test lets them through (to count those in flight)."""

    def __init__(self, stub):
        self.stub = stub
        self.waiting: list[tuple[Deferred, tuple, dict]] = []

    def request(self, method, url, **kwargs):
        d = Deferred()
        self.waiting.append((d, (method, url), kwargs))
        return d

    def release(self):
        waiting, self.waiting = self.waiting, []
        for d, args, kwargs in waiting:
            self.stub.request(*args, **kwargs).chainDeferred(d)


@pytest.fixture
def front():
    return FakeFrontEnd()


@pytest.fixture
def clock():
    return Clock()


def write(tmp_path, name: str, text: str | bytes):
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def read_rows(tmp_path, name: str, text, form: str | None = None) -> list[Row]:
    path = write(tmp_path, name, text)
    with open(path, "rb") as stream:
        return list(Rows(stream, form or choose_format(str(path), None), path.stat().st_size, str(path)))


def settle(clock, done: Deferred, step: float = 0.25, limit: int = 20_000):
    """Advance C{clock} until C{done} has fired; its result."""
    for _ in range(limit):
        if done.called:
            break
        clock.advance(step)
    assert done.called, "the import never finished"
    results = []
    done.addBoth(results.append)
    if hasattr(results[0], "raiseException"):
        results[0].raiseException()
    return results[0]


def run_import(tmp_path, clock, http, name, text, progress=None, **options):
    path = write(tmp_path, name, text)
    settings = Settings(
        path=str(path),
        form=options.pop("form", None) or choose_format(str(path), None),
        url=URL,
        secret=options.pop("secret", SECRET),
        **options,
    )
    stream = open(path, "rb")
    try:
        rows = Rows(stream, settings.form, path.stat().st_size, str(path))
        rows.read_header()
        job = Import(clock, http, settings, rows, random.Random(7))
        return settle(clock, Deferred.fromCoroutine(job.run(progress)))
    finally:
        stream.close()


GOOD_CSV = (
    "stock,Title,topic,cost\r\n"
    "3,Dune,science fiction,9.99\r\n"
    "\r\n"
    '1,"Gödel, Escher, Bach",mathematics,25.5\r\n'
    '0,"The ""Mythical"" Man-Month",software,19.00\r\n'
)


# Reading rows


def test_csv_any_column_order_case_bom_crlf_and_blank_lines(tmp_path):
    rows = read_rows(tmp_path, "books.csv", "\ufeff" + GOOD_CSV)
    assert [(r.line, r.error) for r in rows] == [(2, None), (4, None), (5, None)]
    assert rows[0].book == {"title": "Dune", "topic": "science fiction", "cost": "9.99", "stock": 3}
    assert rows[1].book == {"title": "Gödel, Escher, Bach", "topic": "mathematics", "cost": "25.50", "stock": 1}
    assert rows[2].book["title"] == 'The "Mythical" Man-Month'


@pytest.mark.parametrize(
    "line, reason",
    [
        ('2,"Dune,scifi,9.99', "a quote left open"),
        ('2,"Dune"x,scifi,9.99', "bad CSV"),
        ("2,Dune,scifi", "no cost"),
        ("2,Dune", "no topic, cost"),
        ("2,Dune,scifi,9.99,extra", "5 fields, but the header has 4 columns"),
        ("many,Dune,scifi,9.99", "stock must be a whole number of 0 or more, not 'many'."),
        ("x" * 50 + ",Dune,scifi,9.99", f"stock must be a whole number of 0 or more, not {'x' * 40!r}...."),
        ("-1,Dune,scifi,9.99", "stock must be a whole number"),
        ("2.0,Dune,scifi,9.99", "stock must be a whole number"),
        ("2,Dune,scifi,9.999", "cost must be a decimal string"),
        ("2,Dune,scifi,$9", "cost must be a decimal string"),
        ("2,Dune,scifi,", "cost must be a decimal string"),
        ("2,,scifi,9.99", "title must not be empty or only white space."),
        ("2,  ,scifi,9.99", "title must not be empty or only white space."),
        ("2,Dune,,9.99", "topic must not be empty or only white space."),
        ("2," + "x" * 301 + ",scifi,9.99", "title must be at most 300 characters, not 301."),
        ("2,Dune," + "t" * 201 + ",9.99", "topic must be at most 200 characters, not 201."),
        ("1000000001,Dune,scifi,9.99", "stock must be from 0 to 1000000000."),
        ("9" * 40 + ",Dune,scifi,9.99", "stock must be from 0 to 1000000000."),
        ("2,Dune,scifi,1000000000", "cost must be below 1000000000."),
    ],
)
def test_a_bad_csv_row_is_refused_alone(tmp_path, line, reason):
    text = f"stock,title,topic,cost\n1,Before,t,1.00\n{line}\n1,After,t,2.00\n"
    rows = read_rows(tmp_path, "books.csv", text)
    assert [r.line for r in rows] == [2, 3, 4]
    assert rows[0].book["title"] == "Before" and rows[2].book["title"] == "After"
    assert rows[1].book is None and reason in rows[1].error


def test_titles_are_counted_in_characters_not_bytes(tmp_path):
    text = "title,topic,cost,stock\n" + "é" * 300 + ",t,1.00,1\n" + "😀" * 301 + ",t,1.00,1\n"
    first, second = read_rows(tmp_path, "books.csv", text)
    assert first.error is None and len(first.book["title"]) == 300
    assert second.error == "title must be at most 300 characters, not 301."


def test_a_line_not_utf8_or_too_long_spoils_only_itself(tmp_path):
    text = b"title,topic,cost,stock\nA,t,1.00,1\nB\xff,t,1.00,1\n" + b"C" * (MAX_LINE + 10) + b",t,1.00,1\nD,t,1.00,1\n"
    rows = read_rows(tmp_path, "books.csv", text)
    assert [r.line for r in rows] == [2, 3, 4, 5]
    assert rows[1].error == "not UTF-8 (byte 2 of the line)."
    assert rows[2].error == f"the line is longer than {MAX_LINE} bytes."
    assert rows[0].book["title"] == "A" and rows[3].book["title"] == "D"


@pytest.mark.parametrize(
    "head, says",
    [
        ("title,topic,cost", "missing stock"),
        ("title,topic,cost,stock,price", "unknown 'price'"),
        ("title,topic,cost,stock,title", "twice title"),
        ('title,"topic', "not valid CSV"),
    ],
)
def test_a_bad_header_stops_the_file(tmp_path, head, says):
    path = write(tmp_path, "books.csv", f"\n{head}\nDune,scifi,9.99,3\n")
    with open(path, "rb") as stream, pytest.raises(FileError) as caught:
        Rows(stream, "csv", name="books.csv").read_header()
    assert "books.csv line 2: " in str(caught.value) and says in str(caught.value)


def test_json_lines(tmp_path):
    lines = [
        {"title": "Dune", "topic": "scifi", "cost": "9.5", "stock": 3},
        '{"title": "Dune", "topic": "scifi", "cost": "9.5", "stock": 3',
        [1, 2],
        {"title": "Dune", "topic": "scifi", "cost": "9.50", "stock": "3"},
        {"title": "Dune", "topic": "scifi", "cost": "9.50", "stock": 3.0},
        {"title": "Dune", "topic": "scifi", "cost": "9.50", "stock": True},
        {"title": "Dune", "topic": "scifi", "cost": 9.5, "stock": 3},
        '{"title": "Dune", "topic": "scifi", "cost": "9.50", "stock": NaN}',
        {"title": "Dune", "topic": "scifi", "stock": 3},
        {"title": "Dune", "topic": "scifi", "cost": "1.00", "stock": 3, "id": 9},
        "[" * 10_000 + "]" * 10_000,
        {"title": 7, "topic": "scifi", "cost": "1.00", "stock": 3},
        '{"title": "\\ud800", "topic": "scifi", "cost": "1.00", "stock": 3}',
        {"title": "Dune", "topic": "scifi", "cost": "1.00", "stock": -1},
    ]
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    rows = read_rows(tmp_path, "books.jsonl", text)
    assert [r.line for r in rows] == list(range(1, len(lines) + 1))
    assert rows[0].book == {"title": "Dune", "topic": "scifi", "cost": "9.50", "stock": 3}
    errors = [r.error for r in rows[1:]]
    assert errors[0].startswith("not valid JSON")
    assert errors[1] == "A book must be a JSON object."
    assert errors[2:5] == ["stock must be a JSON integer."] * 3
    assert errors[5].startswith("cost must be a decimal string")
    assert errors[6].startswith("not valid JSON")
    assert errors[7] == "Missing field(s): cost."
    assert errors[8] == "Unknown field(s): id; a book has title, topic, cost and stock."
    assert errors[9] == "not valid JSON: it nests too deeply."
    assert errors[10] == "title must be a string."
    assert errors[11] == "title must be Unicode text (it holds a lone surrogate)."
    assert errors[12] == "stock must be from 0 to 1000000000."


def test_check_book_gives_the_canonical_body():
    assert check_book({"stock": 0, "cost": "3", "topic": "t", "title": "x"}) == {
        "title": "x",
        "topic": "t",
        "cost": "3.00",
        "stock": 0,
    }
    with pytest.raises(BadRequest):
        check_book({"title": "x", "topic": "t", "cost": "1000000000", "stock": 1})


def test_the_format_comes_from_the_ending_or_the_option():
    assert choose_format("a/books.CSV", None) == "csv"
    assert choose_format("books.jsonl", None) == "jsonl"
    assert choose_format("books.ndjson", None) == "jsonl"
    assert choose_format("books.txt", "csv") == "csv"
    with pytest.raises(FileError) as caught:
        choose_format("books.json", None)
    assert "--format" in str(caught.value)


def test_keys_follow_the_line_and_the_book():
    book = {"title": "Dune", "topic": "scifi", "cost": "9.99", "stock": 3}
    key = row_key(2, book)
    assert key == row_key(2, dict(reversed(list(book.items()))))
    assert key != row_key(3, book)
    assert key != row_key(2, {**book, "stock": 4})
    assert 1 <= len(key) <= 128 and key.isascii() and key.isprintable() and " " not in key


def test_rows_are_read_as_they_are_taken_not_all_at_once(tmp_path):
    text = "title,topic,cost,stock\n" + "".join(f"Book {n},t,1.00,1\n" for n in range(20_000))
    path = write(tmp_path, "big.csv", text)
    with open(path, "rb") as stream:
        rows = Rows(stream, "csv", path.stat().st_size)
        taken = iter(rows)
        next(taken)
        # Buffered reading reads ahead a little, never the whole file.
        assert stream.tell() < 16 * 1024 < rows.size
        assert rows.position < 100


# Whole imports


def test_good_rows_are_added_bad_ones_reported_without_a_request(tmp_path, clock, front):
    text = GOOD_CSV + "many,Bad stock,t,1.00\n2,Server says no,t,1.00\n2,server says no,t,1.00\n"
    summary = run_import(tmp_path, clock, StubTreq(front.app.resource()), "books.csv", text)
    assert front.titles() == ["Dune", "Gödel, Escher, Bach", "Server says no", 'The "Mythical" Man-Month']
    assert summary.added == 4 and summary.rows == 6
    assert [(r.line, r.status, r.code) for r in sorted(summary.refused, key=lambda r: r.line)] == [
        (6, None, "invalid"),
        (8, 400, "bad_request"),
    ]
    assert len(front.requests) == 5  # the local refusal cost none; the server's one, one
    assert importer.exit_status(summary) == 1
    keys = [key for key, _ in front.requests]
    assert len(set(keys)) == 5 and all(key.startswith("import-") for key in keys)


def test_a_rerun_adds_nothing_twice_and_identical_rows_are_two_books(tmp_path, clock, front):
    text = "title,topic,cost,stock\nDune,scifi,9.99,3\nDune,scifi,9.99,3\nEmma,novel,5.00,1\n"
    stub = StubTreq(front.app.resource())
    first = run_import(tmp_path, clock, stub, "books.csv", text)
    second = run_import(tmp_path, clock, stub, "books.csv", text)
    assert front.titles() == ["Dune", "Dune", "Emma"]
    assert first.added == second.added == 3 and importer.exit_status(second) == 0
    assert len(front.requests) == 6


def test_a_rerun_after_fixing_a_row_adds_only_that_row(tmp_path, clock, front):
    stub = StubTreq(front.app.resource())
    run_import(tmp_path, clock, stub, "books.csv", "title,topic,cost,stock\nDune,scifi,9.999,3\nEmma,novel,5,1\n")
    fixed = run_import(
        tmp_path, clock, stub, "books.csv", "title,topic,cost,stock\nDune,scifi,9.99,3\nEmma,novel,5.00,1\n"
    )
    assert front.titles() == ["Dune", "Emma"]
    assert fixed.clean and fixed.added == 2


def test_503_is_retried_with_the_same_key_after_retry_after(tmp_path, clock, front):
    front.unavailable, front.retry_after = 3, "2"
    summary = run_import(tmp_path, clock, StubTreq(front.app.resource()), "b.jsonl", JSONL_ONE, concurrency=1)
    assert front.titles() == ["Dune"] and summary.added == 1 and summary.retries == 3
    assert len({key for key, _ in front.requests}) == 1 and len(front.requests) == 4
    assert clock.seconds() >= 6  # three waits of at least Retry-After: 2


JSONL_ONE = json.dumps({"title": "Dune", "topic": "scifi", "cost": "9.99", "stock": 3}) + "\n"


@pytest.mark.parametrize("trouble", [{"refuse": 2}, {"lose": 2}, {"hang": 2}])
def test_no_answer_is_retried_and_adds_the_book_once(tmp_path, clock, front, trouble):
    http = Flaky(StubTreq(front.app.resource()), **trouble)
    summary = run_import(tmp_path, clock, http, "b.jsonl", JSONL_ONE, timeout=3.0)
    assert front.titles() == ["Dune"] and summary.clean and summary.retries == 2


def test_4xx_is_not_retried(tmp_path, clock, front):
    line = json.dumps({"title": "server says no", "topic": "t", "cost": "1.00", "stock": 1}) + "\n"
    summary = run_import(tmp_path, clock, StubTreq(front.app.resource()), "b.jsonl", line)
    assert len(front.requests) == 1 and summary.retries == 0
    assert [r.reason() for r in summary.refused] == ["400 bad_request: The server does not like this title."]


def test_a_row_given_up_stops_the_import_and_is_not_confirmed(tmp_path, clock, front):
    front.unavailable = 10**6
    text = "".join(json.dumps({"title": f"B{n}", "topic": "t", "cost": "1.00", "stock": 1}) + "\n" for n in range(50))
    summary = run_import(tmp_path, clock, StubTreq(front.app.resource()), "b.jsonl", text, concurrency=2, retries=3)
    assert front.books == {}
    assert summary.added == 0 and list(summary.refused) == []
    assert len(summary.unconfirmed) == 2 and summary.stop.code == "unavailable"
    assert "after 4 tries" in summary.stop.message
    assert summary.last_line == 2 and len(front.requests) <= 8
    assert importer.exit_status(summary) == 1
    assert "stopped after line 2: 503 unavailable: No catalog primary. (after 4 tries)" in summary.text()


def test_no_front_end_at_all_stops_with_status_3(tmp_path, clock, front):
    http = Flaky(StubTreq(front.app.resource()), refuse=10**6)
    summary = run_import(tmp_path, clock, http, "b.jsonl", JSONL_ONE * 5, concurrency=1, retries=2)
    assert summary.stop.code == "unreachable" and importer.exit_status(summary) == 3
    assert (
        summary.rows == 1
        and summary.unconfirmed[0].message == f"no answer from {URL} (connection refused) (after 3 tries)"
    )


def test_a_wrong_secret_stops_the_import(tmp_path, clock, front):
    summary = run_import(tmp_path, clock, StubTreq(front.app.resource()), "b.jsonl", JSONL_ONE * 30, secret="nope")
    assert front.books == {} and summary.stop.status == 401
    assert len(front.requests) <= 8 and len(summary.refused) == len(front.requests)
    assert importer.exit_status(summary) == 1


def test_at_most_concurrency_rows_are_in_flight(tmp_path, clock, front):
    lines = [json.dumps({"title": f"B{n}", "topic": "t", "cost": "1.00", "stock": 1}) + "\n" for n in range(100)]
    path = write(tmp_path, "b.jsonl", "".join(lines))
    held = Held(StubTreq(front.app.resource()))
    with open(path, "rb") as stream:
        rows = Rows(stream, "jsonl", path.stat().st_size)
        settings = Settings(str(path), "jsonl", URL, SECRET, concurrency=5)
        done = Deferred.fromCoroutine(Import(clock, held, settings, rows).run())
        seen = []
        while held.waiting:
            seen.append(len(held.waiting))
            # Read as far as the rows in flight, no further.
            assert rows.position == sum(len(line) for line in lines[: 5 * len(seen)])
            held.release()
        summary = settle(clock, done)
    assert seen == [5] * 20
    assert summary.added == 100 and len(front.books) == 100


def test_many_local_refusals_let_the_reactor_turn(tmp_path, clock, front):
    text = "title,topic,cost,stock\n" + "x,t,bad,1\n" * 2000 + "Dune,t,1.00,1\n"
    summary = run_import(tmp_path, clock, StubTreq(front.app.resource()), "b.csv", text, concurrency=1)
    assert len(summary.refused) == 2000 and summary.added == 1


def test_json_summary(tmp_path, clock, front):
    text = "title,topic,cost,stock\nDune,scifi,9.99,3\nEmma,novel,cheap,1\n"
    summary = run_import(tmp_path, clock, StubTreq(front.app.resource()), "books.csv", text)
    document = json.loads(summary.dumps())
    assert document == {
        "file": str(tmp_path / "books.csv"),
        "format": "csv",
        "rows": 2,
        "added": 1,
        "refused": [
            {
                "line": 3,
                "status": None,
                "code": "invalid",
                "message": 'cost must be a decimal string with at most two decimals, like "12.50".',
            }
        ],
        "unconfirmed": [],
        "stopped": None,
        "retries": 0,
        "seconds": document["seconds"],
    }


def test_json_summary_of_a_stop():
    summary = Summary("b.jsonl", "jsonl", rows=3, added=1, last_line=3)
    summary.unconfirmed.append(Refusal(3, "No primary. (after 9 tries)", 503, "unavailable"))
    summary.unconfirmed.append(Refusal(2, "no answer (timed out) (after 9 tries)", None, "unreachable"))
    summary.stop = summary.unconfirmed[0]
    document = json.loads(summary.dumps())
    assert document["refused"] == []
    assert [r["line"] for r in document["unconfirmed"]] == [2, 3]
    assert document["stopped"] == {
        "status": 503,
        "code": "unavailable",
        "message": "No primary. (after 9 tries)",
        "after_line": 3,
    }


def test_refusals_beyond_the_memory_keep_go_to_sorted_runs_on_disk():
    refusals = Refusals(keep=3)
    lines = [9, 2, 7, 1, 8, 3, 10, 5, 4, 6, 11]
    for line in lines:
        refusals.append(Refusal(line, f"bad {line} ✗"))
    assert len(refusals) == 11 and len(refusals._buffer) == 2 and len(refusals._runs) == 3
    assert [r.line for r in refusals] == sorted(lines)
    assert [r.message for r in refusals][:2] == ["bad 1 ✗", "bad 2 ✗"]  # read twice: the same
    runs = refusals._runs
    refusals.close()
    assert all(run.closed for run in runs)


def test_many_refusals_are_reported_in_line_order_from_disk(tmp_path, clock, front):
    text = "title,topic,cost,stock\n" + "".join(f"B{n},t,{'bad' if n % 3 else '1.00'},1\n" for n in range(300))
    path = write(tmp_path, "b.csv", text)
    with open(path, "rb") as stream:
        rows = Rows(stream, "csv", path.stat().st_size)
        rows.read_header()
        job = Import(clock, StubTreq(front.app.resource()), Settings(str(path), "csv", URL, SECRET), rows)
        job.summary.refused = Refusals(keep=7)
        summary = settle(clock, Deferred.fromCoroutine(job.run()))
    assert summary.added == 100 and len(summary.refused) == 200
    listed = [int(line.split()[1].rstrip(":")) for line in summary.lines() if line.startswith("  line ")]
    assert listed == [n + 2 for n in range(300) if n % 3]
    assert [r["line"] for r in json.loads(summary.dumps())["refused"]] == listed
    summary.close()


def test_text_summary():
    summary = Summary("books.csv", "csv", rows=3, added=2)
    assert summary.text() == "books.csv: 3 rows: 2 added, 0 refused"
    summary.refused.append(Refusal(9, "Bad title or topic.", 400, "bad_request"))
    summary.refused.append(Refusal(4, "bad CSV: ',' expected after '\"'."))
    assert summary.text().splitlines()[1:] == [
        "  line 4: bad CSV: ',' expected after '\"'.",
        "  line 9: 400 bad_request: Bad title or topic.",
    ]


def test_plain_progress_prints_a_line_every_few_seconds(tmp_path, clock, front):
    err = io.StringIO()
    held = Held(StubTreq(front.app.resource()))
    path = write(tmp_path, "b.jsonl", JSONL_ONE * 4)
    with open(path, "rb") as stream:
        rows = Rows(stream, "jsonl", path.stat().st_size)
        job = Import(clock, held, Settings(str(path), "jsonl", URL, SECRET, concurrency=2), rows)
        done = Deferred.fromCoroutine(job.run(PlainProgress(err, job.summary, rows, clock)))
        clock.advance(PLAIN_EVERY - 0.1)
        assert err.getvalue() == ""
        held.release()
        clock.advance(0.1)
        assert err.getvalue().splitlines() == [
            "pygmy import: 2 rows (100% of the file read), 2 added, 0 refused, 0 rows/s"
        ]
        held.release()
        settle(clock, done)
    assert clock.getDelayedCalls() == []


# The command


def arguments(*argv):
    return cli.build_parser().parse_args(["import", *argv])


def test_the_arguments_and_their_defaults():
    args = arguments("books.csv")
    assert (args.file, args.format, args.concurrency, args.retries, args.timeout, args.json) == (
        "books.csv",
        None,
        importer.DEFAULT_CONCURRENCY,
        importer.DEFAULT_RETRIES,
        importer.DEFAULT_TIMEOUT,
        False,
    )
    args = arguments("b.txt", "--format", "jsonl", "-n", "3", "--retries", "0", "--secret", "x", "--json")
    assert (args.format, args.concurrency, args.retries, args.secret, args.json) == ("jsonl", 3, 0, "x", True)


@pytest.mark.parametrize("bad", [["--concurrency", "0"], ["--retries", "-1"], ["--timeout", "0"], ["--format", "xml"]])
def test_bad_arguments_exit_2(bad, capsys):
    with pytest.raises(SystemExit) as caught:
        arguments("books.csv", *bad)
    assert caught.value.code == 2


def test_the_secret_from_the_option_the_environment_or_the_config(tmp_path, monkeypatch):
    from tests.fakes import config_text

    config = write(tmp_path, "config.ini", config_text(secret="from-file"))
    monkeypatch.chdir(tmp_path)
    assert importer.resolve_secret("given", None, {"PYGMY_SECRET": "env"}) == "given"
    assert importer.resolve_secret(None, str(config), {"PYGMY_SECRET": "env"}) == "env"
    assert importer.resolve_secret(None, str(config), {}) == "from-file"
    assert importer.resolve_secret(None, None, {}) == "from-file"  # ./config.ini
    (tmp_path / "config.ini").unlink()
    assert importer.resolve_secret(None, None, {}) == "change-me"
    with pytest.raises(importer.UsageError):
        importer.resolve_secret(None, str(config), {})


@pytest.mark.parametrize(
    "name, text, says",
    [
        ("missing.csv", None, "missing.csv: cannot read: No such file or directory"),
        ("books.xls", "x", "cannot tell the format"),
        ("books.csv", "name,topic,cost,stock\n", "the header must name the columns"),
    ],
)
def test_usage_errors_are_one_line_and_status_2(tmp_path, monkeypatch, name, text, says):
    monkeypatch.chdir(tmp_path)
    if text is not None:
        write(tmp_path, name, text)
    err = io.StringIO()
    args = SimpleNamespace(
        file=name,
        format=None,
        url="http://127.0.0.1:1",
        config=None,
        secret="x",
        concurrency=1,
        retries=0,
        timeout=1.0,
        json=False,
    )
    assert importer.main(args, io.StringIO(), err) == 2
    assert err.getvalue().count("\n") == 1 and says in err.getvalue() and err.getvalue().startswith("pygmy import: ")


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_bar_on_a_terminal_plain_lines_elsewhere(tmp_path, clock, front):
    from pygmy.cli.import_report import BarProgress, progress_for

    path = write(tmp_path, "b.jsonl", JSONL_ONE * 4)
    with open(path, "rb") as stream:
        rows = Rows(stream, "jsonl", path.stat().st_size)
        summary = Summary(str(path), "jsonl")
        assert isinstance(progress_for(io.StringIO(), summary, rows, clock), PlainProgress)
        screen = Terminal()
        bar = progress_for(screen, summary, rows, clock)
        assert isinstance(bar, BarProgress)
        job = Import(clock, StubTreq(front.app.resource()), Settings(str(path), "jsonl", URL, SECRET), rows)
        bar.summary = job.summary
        settle(clock, Deferred.fromCoroutine(job.run(bar)))
        bar.stop()  # again: nothing
    assert "import" in screen.getvalue() and "4 rows, 4 added, 0 refused" in screen.getvalue()
    assert clock.getDelayedCalls() == []
