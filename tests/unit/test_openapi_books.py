"""
C{POST /books} in C{docs/openapi.yaml}: its C{NewBook} schema accepts
exactly the bodies the front end does, and the real app's answers (201
with C{Location}, 400, 401, 405, 409, 413) are the ones the document
describes.  The helpers are in C{tests/openapi_checks.py}.
"""

from __future__ import annotations

import json

import pytest

from pygmy.errors import BadRequest
from pygmy.net.validate import parse_new_book
from pygmy.net.web import MAX_BODY
from tests.fakes import InMemoryCluster
from tests.openapi_checks import call, check_response, document, front_end, schema_errors

POINTER = "/components/schemas/NewBook"
BOOK = {"title": "Distributed Algorithms", "topic": "distributed systems", "cost": "42.00", "stock": 10}


def accepted(body) -> bool:
    try:
        parse_new_book(dict(body))
    except BadRequest:
        return False
    return True


@pytest.mark.parametrize(
    "body",
    [
        BOOK,
        {**BOOK, "cost": "0"},
        {**BOOK, "cost": "0999999999.99"},
        {**BOOK, "stock": 0},
        {**BOOK, "stock": 10**9},
        {**BOOK, "title": "t" * 300, "topic": "\U0001f4da" * 200},
        {**BOOK, "title": " x ", "topic": "\ufeff"},
    ],
)
def test_the_document_accepts_what_the_front_end_accepts(body):
    assert accepted(body)
    assert schema_errors(POINTER, body) == [], body


@pytest.mark.parametrize(
    "body",
    [
        {},
        {key: value for key, value in BOOK.items() if key != "stock"},
        {**BOOK, "isbn": "0"},
        {**BOOK, "title": ""},
        {**BOOK, "title": " \u3000\x1d"},
        {**BOOK, "title": "t" * 301},
        {**BOOK, "title": 5},
        {**BOOK, "topic": "x" * 201},
        {**BOOK, "topic": "\t"},
        {**BOOK, "cost": 42.0},
        {**BOOK, "cost": "1.234"},
        {**BOOK, "cost": "1000000000"},
        {**BOOK, "cost": "-1"},
        {**BOOK, "stock": -1},
        {**BOOK, "stock": 10**9 + 1},
        {**BOOK, "stock": 1.0},
        {**BOOK, "stock": True},
        {**BOOK, "stock": "1"},
    ],
)
def test_the_document_refuses_what_the_front_end_refuses(body):
    assert not accepted(body)
    assert schema_errors(POINTER, body), body


def test_the_title_has_the_topic_rule_and_the_cost_the_update_rule():
    schemas = document()["components"]["schemas"]
    book = schemas["NewBook"]["properties"]
    assert book["title"]["pattern"] == schemas["Topic"]["pattern"]
    assert book["topic"] == {"$ref": "#/components/schemas/Topic"}
    assert book["cost"]["pattern"] == schemas["UpdateRequest"]["properties"]["cost"]["pattern"]
    operation = document()["paths"]["/books"]["post"]
    assert operation["security"] == [{"bearerAuth": []}]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/NewBook"}


@pytest.fixture
def cluster(tmp_path):
    running = InMemoryCluster(tmp_path)
    yield running
    running.close()


def test_the_answers_are_the_documented_ones(cluster):
    front = front_end(cluster)
    auth = {"Authorization": f"Bearer {cluster.secret}"}

    def exchange(status, data, headers=auth):
        code, got, body = call(front, "POST", "/books", data=data, headers=headers)
        assert code == status, (code, body)
        check_response("/books", "POST", code, got, body)
        return got, json.loads(body)

    headers, body = exchange(201, json.dumps(BOOK).encode())
    assert headers.getRawHeaders(b"location") == [f"/lookup/{body['item']['id']}".encode()]
    keyed = {**auth, "Idempotency-Key": "k"}
    exchange(201, json.dumps(BOOK).encode(), keyed)
    exchange(409, json.dumps({**BOOK, "stock": 1}).encode(), keyed)
    for raw in [b"{}", b"[1]", b"{", json.dumps({**BOOK, "stock": 1.5}).encode()]:
        exchange(400, raw)
    exchange(401, json.dumps(BOOK).encode(), {})
    exchange(413, b" " * (MAX_BODY + 1))
    code, got, raw = call(front, "GET", "/books")
    assert code == 405 and got.getRawHeaders(b"allow") == [b"POST"]
    check_response("/books", "POST", code, got, raw)
