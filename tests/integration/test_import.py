"""
C{pygmy import} against a real cluster (the C{cluster} and C{fresh_cluster}
fixtures: twistd processes on free ports), each import run as its own
process, as a user would: good rows become searchable books, bad ones are
reported by line; a second run of the same file adds nothing; a row the
front end refuses is reported with its answer; and neither a C{kill -9}
of the import itself (then a rerun) nor one of the catalog primary during
the import adds any book twice or loses one.

Each test uses topics of its own, so that the tests sharing the module's
cluster do not see each other's books.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from urllib.parse import quote

import pytest

from pygmy.cli.import_file import row_key
from pygmy.cli.pids import kill
from pygmy.testing import ROOT, SECRET, get_json, run_pygmy, wait_for_full_view

pytestmark = pytest.mark.integration


def import_file(cluster, path, *options, secret=None):
    """C{pygmy import PATH} against C{cluster}, the secret from its config file (or C{secret})."""
    given = ["--config", str(cluster.path)] if secret is None else ["--secret", secret]
    return run_pygmy("import", str(path), "--url", cluster.url, *given, *options, timeout=120)


def start_import(cluster, path, *options):
    """The same, started in the background: its C{Popen}."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "pygmy.cli", "import", str(path), "--url", cluster.url, "--config"]
    return subprocess.Popen(
        [*command, str(cluster.path), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def titles_of(cluster, topic) -> list[str]:
    """The titles of every book of C{topic}, one per book (so a duplicate shows twice)."""
    status, body = get_json(f"{cluster.url}/search?topic={quote(topic)}")
    assert status == 200, body
    return sorted(item["title"] for item in body["items"])


def count_of_books(cluster) -> int:
    """How many books the catalog holds (every page of the list)."""
    count, after = 0, 0
    while True:
        status, body = get_json(f"{cluster.url}/list?after={after}")
        assert status == 200, body
        count += len(body["items"])
        if body["next"] is None:
            return count
        after = body["next"]


def jsonl(books) -> str:
    return "".join(json.dumps(book, ensure_ascii=False) + "\n" for book in books)


CSV = """\
Stock,title,cost,topic
12,Dune,9.99,import sf
3,"Gödel, Escher, Bach",25.5,import maths
many,The Mythical Man-Month,19.00,import software

5,Structure and Interpretation of Computer Programs,45,import software
7,"Thinking, Fast and Slow,14.20,import psychology
12,Dune,9.99,import sf
4,Refactoring,39.999,import software
1,{long},1.00,import software
"""


def test_good_rows_are_books_bad_rows_are_reported_and_a_rerun_adds_nothing(cluster, tmp_path):
    path = tmp_path / "books.csv"
    path.write_text(CSV.format(long="x" * 301), encoding="utf-8")
    before = count_of_books(cluster)
    first = import_file(cluster, path)
    assert first.returncode == 1, first.stdout + first.stderr
    assert first.stdout.splitlines() == [
        f"{path}: 8 rows: 4 added, 4 refused",
        "  line 4: stock must be a whole number of 0 or more, not 'many'.",
        "  line 7: bad CSV: unexpected end of data (a quote left open? a field may not span lines).",
        '  line 9: cost must be a decimal string with at most two decimals, like "12.50".',
        "  line 10: title must be at most 300 characters, not 301.",
    ]
    assert titles_of(cluster, "import sf") == ["Dune", "Dune"]  # two lines, two books
    assert titles_of(cluster, "Import Maths") == ["Gödel, Escher, Bach"]
    assert titles_of(cluster, "import software") == ["Structure and Interpretation of Computer Programs"]
    assert count_of_books(cluster) == before + 4
    (sicp,) = get_json(f"{cluster.url}/search?topic=import%20software")[1]["items"]
    assert get_json(f"{cluster.url}/lookup/{sicp['id']}")[1]["cost"] == "45.00"

    second = import_file(cluster, path)
    assert (second.returncode, second.stdout) == (1, first.stdout)
    assert count_of_books(cluster) == before + 4
    assert titles_of(cluster, "import sf") == ["Dune", "Dune"]


def test_a_row_the_front_end_refuses_is_reported_with_its_answer(cluster, tmp_path):
    books = [{"title": f"Refused {n}", "topic": "import refused", "cost": "1.00", "stock": n} for n in range(1, 6)]
    path = tmp_path / "books.jsonl"
    path.write_text(jsonl(books), encoding="utf-8")
    # Someone used line 3's key for another book: the front end answers 409 conflict, not the import.
    other = {"title": "Another book", "topic": "import refused elsewhere", "cost": "2.00", "stock": 1}
    headers = {"Authorization": f"Bearer {SECRET}", "Idempotency-Key": row_key(3, books[2])}
    status, _ = get_json(f"{cluster.url}/books", headers, "POST", other)
    assert status == 201
    done = import_file(cluster, path, "--json")
    assert done.returncode == 1, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["rows"], summary["added"], summary["unconfirmed"], summary["stopped"]) == (5, 4, [], None)
    ((line, status, code),) = [(r["line"], r["status"], r["code"]) for r in summary["refused"]]
    assert (line, status, code) == (3, 409, "conflict")
    assert titles_of(cluster, "import refused") == ["Refused 1", "Refused 2", "Refused 4", "Refused 5"]


def test_a_wrong_secret_stops_the_import_at_once(cluster, tmp_path):
    path = tmp_path / "books.jsonl"
    path.write_text(jsonl({"title": f"S{n}", "topic": "import secret", "cost": "1.00", "stock": 1} for n in range(50)))
    done = import_file(cluster, path, "--concurrency", "2", secret="not-the-secret")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert lines[0] == f"{path}: 2 rows: 0 added, 2 refused"
    assert lines[-2].startswith("stopped after line 2: 401 unauthorized: ")
    assert titles_of(cluster, "import secret") == []


def wait_for_books(cluster, topic: str, at_least: int, process) -> None:
    """Wait until C{topic} has C{at_least} books (while C{process} still runs)."""
    deadline = time.monotonic() + 60
    while len(titles_of(cluster, topic)) < at_least:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"fewer than {at_least} books of {topic!r} after 60 s"
        time.sleep(0.05)


def test_a_killed_import_run_again_adds_every_book_once(cluster, tmp_path):
    count = 600
    books = [{"title": f"K{n:04}", "topic": "import killed", "cost": "1.00", "stock": 1} for n in range(count)]
    path = tmp_path / "books.jsonl"
    path.write_text(jsonl(books))
    process = start_import(cluster, path, "--concurrency", "4")
    try:
        wait_for_books(cluster, "import killed", 50, process)
    finally:
        kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=10)
    assert process.returncode == -signal.SIGKILL
    assert len(titles_of(cluster, "import killed")) < count, "the import ended before its kill"
    done = import_file(cluster, path, "--concurrency", "4")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == f"{path}: {count} rows: {count} added, 0 refused\n"
    assert titles_of(cluster, "import killed") == [book["title"] for book in books]


def import_through_a_fault(cluster, tmp_path, letter: str, topic: str, fault) -> tuple[dict, list[dict]]:
    """
    Import 600 new books of C{topic} (4 at a time, C{--json}); once 50 are
    in, C{fault()}; the summary once the import has ended (returned 0),
    and the books.  The import is killed by its pid if it does not end.
    """
    count = 600
    books = [{"title": f"{letter}{n:04}", "topic": topic, "cost": "1.00", "stock": 1} for n in range(count)]
    path = tmp_path / "books.jsonl"
    path.write_text(jsonl(books))
    process = start_import(cluster, path, "--concurrency", "4", "--json")
    try:
        wait_for_books(cluster, topic, 50, process)
        fault()
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            kill(process.pid, signal.SIGKILL)
            process.communicate(timeout=10)
    summary = json.loads(out)
    assert process.returncode == 0, (summary, err)
    assert (summary["added"], summary["refused"], summary["unconfirmed"]) == (count, [], [])
    assert titles_of(cluster, topic) == [book["title"] for book in books]
    return summary, books


def test_a_failover_during_the_import_adds_every_book_once(fresh_cluster, tmp_path):
    cluster = fresh_cluster
    wait_for_full_view(cluster.url, 10)
    primary = get_json(cluster.url + "/status")[1]["services"]["catalog"]["primary"]

    def kill_the_catalog_primary():
        assert cluster.stop(f"catalog:{primary}", signal.SIGKILL) == -signal.SIGKILL
        assert len(titles_of(cluster, "import failover")) < 600, "the import ended before the failover"

    import_through_a_fault(cluster, tmp_path, "F", "import failover", kill_the_catalog_primary)
    new = get_json(cluster.url + "/status")[1]["services"]["catalog"]["primary"]
    assert new != primary


def test_a_front_end_killed_during_the_import_loses_and_doubles_nothing(fresh_cluster, tmp_path):
    # Requests in flight at the kill may have added their book without an answer: the retry with the
    # same key gets the first answer.  Until the front end is back, each try finds no one (retried).
    cluster = fresh_cluster
    wait_for_full_view(cluster.url, 10)

    def restart_the_front_end():
        assert cluster.stop("frontend", signal.SIGKILL) == -signal.SIGKILL
        time.sleep(1.0)
        cluster.start("frontend")

    summary, _ = import_through_a_fault(cluster, tmp_path, "R", "import restart", restart_the_front_end)
    assert summary["retries"] >= 1
