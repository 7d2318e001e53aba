"""
What the unit tests of C{pygmy import} share: a fake front end that keeps
the contract of C{POST /books} (L{FakeFrontEnd}, served through
C{StubTreq}), the secret and address it answers at, a good CSV file
(L{GOOD_CSV}), a file written for a test (L{write}) and an import's
Deferred driven on its clock to the end (L{settle}).  Used by
C{tests/unit/test_import.py}, C{tests/unit/test_import_reading.py} and
C{tests/unit/test_import_file.py}.
"""

from __future__ import annotations

import json

from klein import Klein
from twisted.internet.defer import Deferred

SECRET = "s3cret"
URL = "http://front.example"

GOOD_CSV = (
    "stock,Title,topic,cost\r\n"
    "3,Dune,science fiction,9.99\r\n"
    "\r\n"
    '1,"Gödel, Escher, Bach",mathematics,25.5\r\n'
    '0,"The ""Mythical"" Man-Month",software,19.00\r\n'
)


# A front end that keeps the contract of POST /books


class FakeFrontEnd:
    """
    C{POST /books} as DESIGN.md section 3 has it, in memory; its own checks
    are written apart from L{pygmy.cli.import_file.check_book}, and it refuses (400) any title
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


def write(tmp_path, name: str, text: str | bytes):
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


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
