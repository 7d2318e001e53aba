"""
Unit tests of the rows of C{pygmy import} (L{pygmy.cli.import_file}): CSV
and JSON lines files read a line at a time, each row checked by the rules
of C{POST /books}, a bad row refused alone, a bad header refusing the
file, and the row's C{Idempotency-Key}.  Whole imports are in
C{tests/unit/test_import.py}.
"""

from __future__ import annotations

import json

import pytest

from pygmy.cli.import_file import MAX_LINE, FileError, Row, Rows, check_book, choose_format, row_key
from pygmy.errors import BadRequest
from tests.import_fakes import GOOD_CSV, write


def read_rows(tmp_path, name: str, text, form: str | None = None) -> list[Row]:
    path = write(tmp_path, name, text)
    with open(path, "rb") as stream:
        return list(Rows(stream, form or choose_format(str(path), None), path.stat().st_size, str(path)))


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
    assert errors[0] == "not valid JSON: Expecting ',' delimiter (column 62)."
    assert errors[1] == "A book must be a JSON object."
    assert errors[2:5] == ["stock must be a JSON integer."] * 3
    assert errors[5].startswith("cost must be a decimal string")
    assert errors[6] == "not valid JSON: NaN is not JSON."
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
