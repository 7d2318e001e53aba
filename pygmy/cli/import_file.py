"""
The rows of a file for C{pygmy import}: CSV or JSON lines read one line at
a time, each turned into the body of a C{POST /books} and checked before
any request by the rules the route itself applies (L{check_book}), and
the C{Idempotency-Key} of each row.

A row is one line: a CSV field may be quoted (C{""} for a quote inside)
but may not span lines, so an unclosed quote spoils only its own line and
a line number always names one row.  A bad line -- not UTF-8, bad quoting,
a missing column, bad JSON, a value the contract refuses -- becomes a
L{Row} with an C{error}, and the lines after it are read as usual.  Only
a CSV header that does not name the four columns stops the import
(L{FileError}): without it no row can be read.

The file is read in lines of at most L{MAX_LINE} bytes (a longer one is
skipped, not held in memory), so a file of any size is read in constant
memory; L{Rows.position} says how far.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator

from pygmy.errors import BadRequest
from pygmy.net.validate import BOOK_FIELDS, MAX_STOCK, parse_new_book

#: The keys of a book in C{POST /books}, and the columns of a CSV file.
FIELDS = BOOK_FIELDS
#: The longest line read, in bytes: the front end's body limit (a row is one body).
MAX_LINE = 64 * 1024
#: The formats, and the file name endings that choose them.
FORMATS = {"csv": (".csv",), "jsonl": (".jsonl", ".ndjson")}
#: What every key starts with (at most 128 visible ASCII characters in all).
KEY_PREFIX = "import-"

_WHOLE = re.compile(r"[0-9]+")
_BOM = b"\xef\xbb\xbf"


class FileError(Exception):
    """The file cannot be imported at all (missing, unknown format, bad CSV header); C{str()} is the line."""


@dataclass(frozen=True)
class Row:
    """
    One row of the file.

    @ivar line: its line number, from 1.
    @ivar book: the body to send (canonical: cost with two decimals), or C{None}.
    @ivar error: why it is not sent, or C{None}.
    """

    line: int
    book: dict | None = None
    error: str | None = None

    @property
    def key(self) -> str:
        """This row's C{Idempotency-Key} (see L{row_key})."""
        return row_key(self.line, self.book)


def row_key(line: int, book: dict) -> str:
    """
    The C{Idempotency-Key} of the book C{book} on line C{line}: a digest of
    both.  The same file run again sends the same keys, so the front end
    answers each row it has seen with its first answer and adds no book
    twice; two identical rows on two lines are two keys, so two books.  The
    key follows from the body sent, so a key never comes back with another
    body (which the front end would refuse, 409 C{conflict}).
    """
    canonical = json.dumps(book, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(f"{line}\n{canonical}".encode()).hexdigest()
    return KEY_PREFIX + digest[:40]


def choose_format(path: str, given: str | None) -> str:
    """
    The format of C{path}: C{given} (C{--format}) if set, else by its ending.

    @raise FileError: if the ending says nothing.
    """
    if given is not None:
        return given
    ending = Path(path).suffix.lower()
    for name, endings in FORMATS.items():
        if ending in endings:
            return name
    known = ", ".join(e for endings in FORMATS.values() for e in endings)
    raise FileError(f"{path}: cannot tell the format from its name ({known}): give --format csv or --format jsonl")


def check_book(body) -> dict:
    """
    The body of C{POST /books} by the front end's own rules: those of
    L{parse_new_book<pygmy.net.validate.parse_new_book>}, which the route
    applies, so a row refused here would be refused there, with the same
    sentence.

    @return: the canonical body (cost with two decimals).
    @raise BadRequest: with the sentence saying what is wrong.
    """
    if not isinstance(body, dict):
        raise BadRequest("A book must be a JSON object.")
    return parse_new_book(body)


class Rows:
    """
    The rows of a file, one L{Row} per line that is not blank (iterate).

    @ivar position: bytes read so far; @ivar size: the file's size.
    """

    def __init__(self, stream: BinaryIO, form: str, size: int = 0, name: str = "the file"):
        self.stream, self.form, self.size, self.name = stream, form, size, name
        self.position = 0
        self.columns: tuple[str, ...] | None = None
        self._texts = self._decoded()

    def read_header(self) -> None:
        """
        Read a CSV file's header (the first line that is not blank); nothing
        for JSON lines.  Call it before iterating.

        @raise FileError: if the header does not name the four columns.
        """
        if self.form != "csv" or self.columns is not None:
            return
        for number, text in self._texts:
            if isinstance(text, Row):
                raise FileError(f"{self.name} line {number}: cannot read the header: {text.error}")
            self.columns = header(text, self.name, number)
            return

    def __iter__(self) -> Iterator[Row]:
        self.read_header()
        for number, text in self._texts:
            yield text if isinstance(text, Row) else self._row(number, text)

    def _decoded(self) -> Iterator[tuple[int, str | Row]]:
        """(number, text) of each line that is not blank, or (number, a refused L{Row})."""
        for number, raw in self._lines():
            if raw is None:
                yield number, Row(number, error=f"the line is longer than {MAX_LINE} bytes.")
                continue
            if number == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield number, Row(number, error=f"not UTF-8 (byte {e.start + 1} of the line).")
                continue
            if text.strip():
                yield number, text

    def _row(self, number: int, text: str) -> Row:
        try:
            body = self._csv(text) if self.form == "csv" else self._json(text)
            return Row(number, book=check_book(body))
        except BadRequest as e:
            return Row(number, error=e.message)

    def _json(self, text: str):
        try:
            return json.loads(text, parse_constant=_refuse_constant)
        except RecursionError:
            raise BadRequest("not valid JSON: it nests too deeply.") from None
        except json.JSONDecodeError as e:
            raise BadRequest(f"not valid JSON: {e.msg} (column {e.colno}).") from None
        except ValueError as e:  # NaN, Infinity
            raise BadRequest(f"not valid JSON: {e}.") from None

    def _csv(self, text: str) -> dict:
        try:
            (fields,) = csv.reader([text], strict=True)
        except csv.Error as e:
            hint = " (a quote left open? a field may not span lines)" if "end of data" in str(e) else ""
            raise BadRequest(f"bad CSV: {e}{hint}.") from None
        columns = self.columns
        if len(fields) < len(columns):
            missing = ", ".join(columns[len(fields) :])
            raise BadRequest(f"{len(fields)} fields, {len(columns)} columns: no {missing}.")
        if len(fields) > len(columns):
            raise BadRequest(f"{len(fields)} fields, but the header has {len(columns)} columns.")
        body: dict = dict(zip(columns, fields, strict=True))
        stock = body["stock"].strip()
        if not _WHOLE.fullmatch(stock):
            raise BadRequest(f"stock must be a whole number of 0 or more, not {_shown(body['stock'])}.")
        # More digits than any stock allowed: a number that parse_stock refuses in its own words.
        body["stock"] = int(stock) if len(stock) <= 20 else MAX_STOCK + 1
        body["cost"] = body["cost"].strip()
        return body

    def _lines(self) -> Iterator[tuple[int, bytes | None]]:
        """(number, bytes without the line end) of each line; C{None} for one over L{MAX_LINE}."""
        number = 0
        while True:
            raw = self.stream.readline(MAX_LINE + 2)
            if not raw:
                return
            number += 1
            self.position += len(raw)
            if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
                self._skip_rest()
                yield number, None
                continue
            yield number, raw.rstrip(b"\n").removesuffix(b"\r")

    def _skip_rest(self) -> None:
        """Read past the end of an over-long line, a piece at a time."""
        while True:
            more = self.stream.readline(MAX_LINE)
            self.position += len(more)
            if not more or more.endswith(b"\n"):
                return


def header(text: str, name: str, number: int) -> tuple[str, ...]:
    """
    The columns of a CSV header line: title, topic, cost and stock, each
    once, in any order and case.

    @raise FileError: for any other header.
    """
    try:
        (fields,) = csv.reader([text], strict=True)
    except csv.Error as e:
        raise FileError(f"{name} line {number}: the header is not valid CSV: {e}") from None
    columns = tuple(field.strip().lower() for field in fields)
    missing = [f for f in FIELDS if f not in columns]
    unknown = [c for c in columns if c not in FIELDS]
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if missing or unknown or twice:
        wrong = "; ".join(
            part
            for part in (
                f"missing {', '.join(missing)}" if missing else "",
                f"unknown {', '.join(repr(u) for u in unknown)}" if unknown else "",
                f"twice {', '.join(twice)}" if twice else "",
            )
            if part
        )
        raise FileError(
            f"{name} line {number}: the header must name the columns title, topic, cost and stock, "
            f"once each, in any order ({wrong})"
        )
    return columns


def _shown(value: str, most: int = 40) -> str:
    """C{value} quoted for a message, cut to about C{most} characters."""
    return repr(value) if len(value) <= most else repr(value[:most]) + "..."


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")
