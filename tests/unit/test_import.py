"""
Unit tests of whole imports (L{pygmy.cli.importer},
L{pygmy.cli.import_sender}, L{pygmy.cli.import_report}), without sockets:
against a fake front end that keeps the contract of C{POST /books}
(DESIGN.md section 3: the secret, 201 C{{"item"}}, 400 and 409
C{{"error"}}, the C{Idempotency-Key}, 503 with C{Retry-After}) behind
C{StubTreq}, on a C{Clock}; the progress they show.  The rows of a file
are tested in C{tests/unit/test_import_file.py}, the command line and the
summary in C{tests/unit/test_import_command.py}, the same command against
a real cluster in C{tests/integration/test_import.py}.
"""

from __future__ import annotations

import io
import json
import random

import pytest
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionLost, ConnectionRefusedError

from pygmy.cli import importer
from pygmy.cli.import_file import Rows, choose_format
from pygmy.cli.import_report import PLAIN_EVERY, PlainProgress, Refusals, Summary
from pygmy.cli.importer import Import, Settings
from tests.fakes import ThreadedClock
from tests.import_fakes import GOOD_CSV, SECRET, URL, FakeFrontEnd, settle, write


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
    """The reactor of an import: the file is read in its thread pool."""
    return ThreadedClock()


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
            # Read as far as the rows in flight and at most READ_AHEAD more.
            sent = 5 * len(seen)
            assert sum(map(len, lines[:sent])) <= rows.position <= sum(map(len, lines[: sent + importer.READ_AHEAD]))
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


def test_an_interrupt_leaves_the_rows_in_flight_not_confirmed(tmp_path, clock, front):
    held = Held(StubTreq(front.app.resource()))
    path = write(tmp_path, "b.jsonl", JSONL_ONE * 10)
    with open(path, "rb") as stream:
        rows = Rows(stream, "jsonl", path.stat().st_size)
        job = Import(clock, held, Settings(str(path), "jsonl", URL, SECRET, concurrency=3), rows)
        Deferred.fromCoroutine(job.run())
        held.release()  # three answered, three more in flight
        job.interrupt()
    summary = job.summary
    assert summary.added == 3 and summary.stop.code == "interrupted"
    assert [(r.line, r.message) for r in summary.unconfirmed] == [(n, "in flight when interrupted") for n in (4, 5, 6)]
    assert "stopped after line 6: interrupted" in summary.text()
    assert importer.exit_status(summary) == 1
