"""
Helpers shared by the tests of C{docs/openapi.yaml} (C{tests/unit/test_openapi.py},
C{test_openapi_answers.py}, C{test_openapi_books.py}) and by the fuzzing of the
public API (C{tests/unit/test_fuzz.py}, C{test_fuzz_examples.py}).

The document: L{document}, a fresh copy of it; L{schema_errors}, why an
instance breaks one of its schemas; L{check_response} and L{check_against},
assertions that an answer is one of its response objects (L{response_spec},
L{error_spec}).  The front end: L{front_end}, a C{StubTreq} for an
L{InMemoryCluster}'s front end, and L{call}, one request through it.

Fuzzing: L{Request}, a generated request; L{fuzz_world} and
L{logged_failures}, the bodies of the module-scoped C{world} and C{failures}
fixtures; L{check}, which sends a request and asserts the properties
C{test_fuzz.py}'s docstring lists.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from openapi_schema_validator import OAS30Validator
from referencing import Registry
from referencing.jsonschema import DRAFT4
from treq.testing import StubTreq
from twisted.logger import globalLogPublisher

from pygmy.net.web import JSONRequest
from tests.fakes import InMemoryCluster

DOCUMENT = Path(__file__).resolve().parents[1] / "docs" / "openapi.yaml"
DOCUMENT_URI = "urn:pygmy:openapi"
URL = "http://front.invalid"
ERROR_RESPONSES = {
    400: "BadRequest",
    401: "Unauthorized",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    413: "PayloadTooLarge",
    503: "Unavailable",
}


@functools.cache
def _loaded() -> dict:
    return yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))


def document() -> dict:
    """A fresh copy of the parsed OpenAPI document."""
    return copy.deepcopy(_loaded())


@functools.cache
def _registry() -> Registry:
    """
    The whole document as one resource, for C{$ref}: OpenAPI 3.0 schemas are
    JSON Schema draft 4 (with C{nullable}), where C{1.0} is not an integer.
    """
    return Registry().with_resource(DOCUMENT_URI, DRAFT4.create_resource(_loaded()))


def _pointer(*parts) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def resolve(node: dict) -> tuple[dict, tuple]:
    """Follow a local C{$ref} (of a response, parameter or header)."""
    ref = node.get("$ref")
    if ref is None:
        return node, ()
    assert ref.startswith("#/"), ref
    parts = tuple(p.replace("~1", "/").replace("~0", "~") for p in ref[2:].split("/"))
    target = _loaded()
    for part in parts:
        target = target[part]
    return target, parts


def schema_errors(pointer: str, instance) -> list[str]:
    """Why C{instance} does not match the schema at C{pointer} in the document."""
    validator = OAS30Validator({"$ref": f"{DOCUMENT_URI}#{pointer}"}, registry=_registry())
    return [f"{'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}" for e in validator.iter_errors(instance)]


def response_spec(template: str, method: str, status: int) -> tuple[dict, tuple] | None:
    """The document's response object (and its location) for an answer, if any."""
    operation = _loaded()["paths"].get(template, {}).get(method.lower())
    if operation is None:
        return None
    response = operation["responses"].get(str(status))
    if response is None:
        return None
    where = ("paths", template, method.lower(), "responses", str(status))
    resolved, parts = resolve(response)
    return resolved, parts or where


def error_spec(status: int) -> tuple[dict, tuple] | None:
    """The shared error response component for C{status}, if it is one."""
    name = ERROR_RESPONSES.get(status)
    if name is None:
        return None
    return _loaded()["components"]["responses"][name], ("components", "responses", name)


def check_against(spec, status: int, headers, body: bytes, what: str) -> None:
    """
    Assert that an answer matches a response object of the document: its
    content type, body schema and required headers.

    @param spec: C{(response object, its location)} from L{response_spec} or
        L{error_spec}; C{None} means the document has no such response.
    @param headers: the response's C{twisted.web.http_headers.Headers}.
    """
    assert spec is not None, f"{what}: the document has no {status} response; body {body[:300]!r}"
    response, where = spec
    for name, header in response.get("headers", {}).items():
        header, _ = resolve(header)
        values = headers.getRawHeaders(name.encode("ascii"))
        if header.get("required"):
            assert values, f"{what}: {status} without its {name} header"
        if values and header["schema"].get("type") == "integer":
            assert re.fullmatch(rb"[0-9]+", values[0]), f"{what}: {name}: {values[0]!r}"
    content = response.get("content")
    if not content:
        return
    types = {media.split(";")[0].strip(): media for media in content}
    got = (headers.getRawHeaders(b"content-type") or [b""])[0].decode("latin-1")
    media_type = got.split(";")[0].strip()
    assert media_type in types, f"{what}: {status} as {got!r}, not one of {sorted(types)}; body {body[:300]!r}"
    if media_type != "application/json":
        return
    try:
        instance = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise AssertionError(f"{what}: {status} body is not JSON: {body[:300]!r}") from None
    pointer = _pointer(*where, "content", types[media_type], "schema")
    errors = schema_errors(pointer, instance)
    assert not errors, f"{what}: {status} body {instance!r} breaks the document: {errors}"


def check_response(template: str, method: str, status: int, headers, body: bytes) -> None:
    """Assert that an answer to C{method template} is one the document describes."""
    what = f"{method} {template}"
    check_against(response_spec(template, method, status), status, headers, body, what)


def front_end(cluster: InMemoryCluster) -> StubTreq:
    """
    A C{StubTreq} for the front end whose in-memory site makes the same
    requests as the real one (L{JSONRequest}: 413 before buffering a body)
    and shows no tracebacks, as L{pygmy.net.web.make_site} does.
    """
    front = StubTreq(cluster.frontend.resource())
    # treq gives no public way to choose the site of a StubTreq.
    site = front._agent._serverFactory
    site.requestFactory = JSONRequest
    site.displayTracebacks = False
    return front


def call(front: StubTreq, method: str, path, data=None, headers=None, flush=None):
    """
    One request through C{front}, run to completion.

    @param path: the path and query, as text or as the exact bytes to send.
    @param flush: called (with no argument) until the answer is in, for
        routes that wait on the cluster's clock.
    @return: C{(status, headers, body bytes)}.
    """
    url = URL.encode("ascii") + path if isinstance(path, bytes) else URL + path
    outcome = []
    front.request(method, url, data=data, headers=headers or {}, allow_redirects=False).addBoth(outcome.append)
    for _ in range(100):
        if outcome or flush is None:
            break
        flush()
        front.flush()
    assert outcome, f"{method} {path!r}: no answer"
    response = outcome[0]
    if not hasattr(response, "code"):
        response.raiseException()
    body = []
    response.content().addBoth(body.append)
    if not isinstance(body[0], bytes):
        body[0].raiseException()
    return response.code, response.headers, body[0]


# Fuzzing: a generated request, the cluster it goes to, and what must hold

SECRET = InMemoryCluster.secret


class Body(bytes):
    """A request body whose repr stays short, however large it is."""

    def __repr__(self):
        more = f"...({len(self)} bytes)" if len(self) > 120 else ""
        return bytes.__repr__(bytes(self[:120])) + more


class Request:
    """One generated request and, when it is well formed, the route it aims at."""

    def __init__(self, method: str, path: str, headers: dict, body: bytes | None, template: str | None = None):
        self.method, self.path, self.headers, self.body, self.template = method, path, headers, body, template

    def __repr__(self):
        body = None if self.body is None else Body(self.body)
        return f"Request({self.method} {self.path[:300]!r} headers={self.headers!r} body={body!r})"


@dataclass
class World:
    """
    The cluster under test, a client of its front end, and what the test
    knows of the idempotency keys: C{(route, key)} -> C{(item id, body, reply)}
    of the request that first succeeded with it.
    """

    cluster: InMemoryCluster
    front: object
    keys: dict

    def __repr__(self):
        return f"<World: {len(self.keys)} idempotency keys used>"


class Logged(list):
    """The failures logged so far (a list, with a short repr for Hypothesis' reports)."""

    def __repr__(self):
        return f"<{len(self)} logged failures>"


def fuzz_world(tmp_path_factory):
    """
    The body of a module-scoped C{world} fixture: one in-memory cluster for
    every example of the module (its stock only drifts by 200s), closed at
    the end.
    """
    cluster = InMemoryCluster(tmp_path_factory.mktemp("fuzz"))
    yield World(cluster, front_end(cluster), {})
    cluster.close()


def logged_failures():
    """
    The body of a module-scoped C{failures} fixture: every failure logged
    while the module runs (a traceback in the log).
    """
    found = Logged()

    def observe(event):
        if event.get("log_failure") is not None or event.get("isError"):
            found.append(event)

    globalLogPublisher.addObserver(observe)
    yield found
    globalLogPublisher.removeObserver(observe)


def _now(deferred):
    outcome = []
    deferred.addBoth(outcome.append)
    assert outcome, "the in-memory store did not answer at once"
    if not isinstance(outcome[0], dict):
        outcome[0].raiseException()
    return outcome[0]


def holdings(cluster) -> tuple[dict, tuple]:
    """
    Every book's row by id, and the number of orders and of unfinished buys
    (a refused buy leaves its intent and refusal in the log, never an order
    or a pending intent).
    """
    books = {row["id"]: row for row in _now(cluster.catalog_store.dump())["rows"]}
    orders = _now(cluster.order_store.dump())
    return books, (len(orders["rows"]), sum(buy["state"] == "pending" for buy in orders["buys"]))


def _summary(event) -> str:
    failure = event.get("log_failure") or event.get("failure")
    why = event.get("why") or event.get("log_format") or ""
    return f"{why} {failure.type.__name__ if failure is not None else ''}: {failure.value if failure else ''}"


def send(front, request: Request):
    """Send a generated request; return C{(status, headers, body)}."""
    return call(front, request.method, request.path.encode("ascii"), data=request.body, headers=request.headers)


def check(world: World, failures, request: Request) -> None:
    """Send C{request} and assert the properties C{tests/unit/test_fuzz.py}'s docstring lists."""
    books_before, orders_before = holdings(world.cluster)
    logged = len(failures)
    status, headers, body = send(world.front, request)
    books, orders = holdings(world.cluster)
    changed = {i for i in books_before if books[i] != books_before[i]}

    assert status < 500, f"{request}: {status} {body[:300]!r}"
    if 300 <= status < 400:
        assert headers.getRawHeaders(b"location"), f"{request}: {status} without Location: {body[:300]!r}"
    elif status >= 400 and request.method == "HEAD":
        assert error_spec(status) is not None, f"{request}: {status} is not a documented error"
    elif status >= 400:
        check_against(error_spec(status), status, headers, body, repr(request))
    elif request.template is not None and request.method != "HEAD":
        check_response(request.template, request.method, status, headers, body)
    tracebacks = [_summary(event) for event in failures[logged:]]
    assert not tracebacks, f"{request} answered {status} but logged {tracebacks}"

    if status != 200 or request.method != "POST":
        assert not changed and orders == orders_before, (
            f"{request} answered {status} {body[:200]!r} but changed books {sorted(changed)} "
            f"or orders {orders_before} -> {orders}"
        )
        return
    reply = json.loads(body)
    route = "buy" if "order" in reply else "update"
    item = reply["order"]["item_id"] if route == "buy" else reply["item"]["id"]
    sent = None
    if route == "update":
        sent = json.loads(request.body)
    assert changed <= {item}, f"{request}: a {route} of book {item} changed books {sorted(changed)}"
    key = (request.headers.get(b"Idempotency-Key") or [None])[0]
    first = world.keys.get((route, key)) if key is not None else None
    if first is not None:
        assert (item, sent) == first[:2], (
            f"{request} answered 200 {reply} although its Idempotency-Key was first used for "
            f"book {first[0]} with body {first[1]!r} (answered {first[2]}): expected 409 conflict"
        )
        assert reply == first[2], f"{request}: a replay answered {reply}, first {first[2]}"
        assert not changed and orders == orders_before, f"{request}: a replay changed the store"
        return
    if key is not None:
        world.keys[(route, key)] = (item, sent, reply)
    if route == "buy":
        assert books[item]["stock"] == books_before[item]["stock"] - 1, (
            f"{request}: bought one copy, but {books_before[item]} -> {books[item]}"
        )
        assert orders == (orders_before[0] + 1, 0), f"{request}: orders {orders_before} -> {orders}"
    else:
        assert books[item] == reply["item"], f"{request}: answered {reply} but the book is {books[item]}"
        assert orders == orders_before, f"{request}: an update changed the orders"
