"""
C{docs/openapi.yaml}, the description of the public API (DESIGN §3): it is a
valid OpenAPI document, it names exactly the routes the front end's Klein app
serves, and what the real app answers (real catalog and order apps on SQLite,
in memory through C{StubTreq}) matches its response schemas, status codes and
headers.

The helpers here (L{document}, L{check_response}, L{call},
L{front_end}) are shared with C{test_fuzz.py}.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path

import jsonschema_rs
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from referencing import Registry
from referencing.jsonschema import DRAFT4
from treq.testing import StubTreq

from pygmy.errors import BadRequest
from pygmy.frontend.app import FrontendApp
from pygmy.net.validate import parse_cost, parse_topic
from pygmy.net.web import MAX_BODY, JSONRequest
from tests.fakes import InMemoryCluster

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
DOCUMENT_URI = "urn:pygmy:openapi"
URL = "http://front.invalid"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
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


def _resolve(node: dict) -> tuple[dict, tuple]:
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
    resolved, parts = _resolve(response)
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
        header, _ = _resolve(header)
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


# The document itself


def test_document_is_valid_openapi():
    doc = document()
    # 3.0, not 3.1: only its schemas tell `5` (an integer) from `5.0` (not one), as the front end does.
    assert doc["openapi"].startswith("3.0.")
    validate(doc)


def test_validator_catches_a_broken_document():
    """The check above has teeth: a response without a description fails."""
    doc = document()
    del doc["paths"]["/list"]["get"]["responses"]["200"]["description"]
    with pytest.raises(OpenAPIValidationError):
        validate(doc)


def _operations(doc):
    for template, item in doc["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield template, method, item[method]


def test_every_error_response_uses_the_error_schema():
    doc = document()
    responses = doc["components"]["responses"]
    error_ref = {"$ref": "#/components/schemas/Error"}
    for name, response in responses.items():
        schema = response["content"]["application/json"]["schema"]
        assert schema == error_ref or error_ref in schema.get("allOf", []), name
    for template, method, operation in _operations(doc):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert set(response) == {"$ref"}, (template, method, status)
                assert response["$ref"] == f"#/components/responses/{ERROR_RESPONSES[int(status)]}"
    assert set(responses["Unavailable"]["headers"]) == {"Retry-After"}
    assert set(responses["MethodNotAllowed"]["headers"]) == {"Allow"}


def test_statuses_of_each_route():
    """The errors DESIGN §3 gives each route, and 405 everywhere."""
    expected = {
        ("/search/{topic}", "get"): {200, 400, 405, 503},
        ("/search", "get"): {200, 400, 405, 503},
        ("/lookup/{id}", "get"): {200, 400, 404, 405, 503},
        ("/list", "get"): {200, 400, 405, 503},
        ("/buy/{id}", "post"): {200, 400, 404, 405, 409, 413, 503},
        ("/orders/{order_id}", "get"): {200, 400, 404, 405, 503},
        ("/update/{id}", "post"): {200, 400, 401, 404, 405, 409, 413, 503},
        ("/books", "post"): {201, 400, 401, 405, 409, 413, 503},
        ("/status", "get"): {200, 405},
        ("/health", "get"): {200, 405},
        ("/metrics", "get"): {200, 404, 405},
        ("/", "get"): {200, 405},
        ("/dashboard", "get"): {200, 405},
        ("/static/{name}", "get"): {200, 404, 405},
        ("/events", "get"): {200, 400, 405},
    }
    found = {
        (template, method): {int(s) for s in operation["responses"]}
        for template, method, operation in _operations(document())
    }
    assert found == expected


def test_update_body_schema():
    pointer = "/components/schemas/UpdateRequest"
    for good in [
        {"cost": "12.50"},
        {"cost": "3"},
        {"stock_delta": -5},
        {"cost": "0.5", "stock_delta": 0},
        {"cost": "999999999.99"},
        {"cost": "0999999999.99"},
        {"stock_delta": -(10**9)},
    ]:
        assert schema_errors(pointer, good) == [], good
    for bad in [
        {},
        {"cost": 12.5},
        {"cost": "1.234"},
        {"cost": "1000000000"},
        {"cost": "6040941937"},
        {"stock_delta": -294.0},
        {"stock_delta": 1.0},
        {"stock_delta": 10**9 + 1},
        {"cost": "-1"},
        {"cost": "NaN"},
        {"stock_delta": "5"},
        {"stock_delta": 1.5},
        {"stock_delta": True},
        {"colour": "red"},
        {"cost": "1", "extra": 1},
        [1, 2],
    ]:
        assert schema_errors(pointer, bad), bad
    doc = document()
    assert doc["paths"]["/update/{id}"]["post"]["security"] == [{"bearerAuth": []}]
    scheme = doc["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert doc["paths"]["/update/{id}"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/UpdateRequest"
    }


def _accepted(parse, value) -> bool:
    try:
        parse(value)
    except BadRequest:
        return False
    return True


def _pattern_matchers(pattern: str):
    """
    C{pattern} as Python's C{re} reads it (and C{jsonschema}) and as ECMA-262
    does (JSON Schema's dialect, read by the Rust C{jsonschema_rs} that
    schemathesis uses): a pattern must mean the same in both.
    """
    python = re.compile(pattern)
    ecma = jsonschema_rs.Draft4Validator({"type": "string", "pattern": pattern})
    return lambda text: bool(python.search(text)), ecma.is_valid


def test_topic_schema_is_the_front_ends_rule():
    """
    Not only white space, white space as C{str.isspace} has it: U+001D is
    white space there (not in ECMA-262's C{\\s}), U+FEFF is not.
    """
    python, ecma = _pattern_matchers(document()["components"]["schemas"]["Topic"]["pattern"])
    for code in range(0x110000):
        if not 0xD800 <= code <= 0xDFFF:
            text = chr(code) * 2
            accepted = _accepted(parse_topic, text)
            assert python(text) == accepted and ecma(text) == accepted, hex(code)
    pointer = "/components/schemas/Topic"
    for good in ["travel", "\ufeff", " x ", "\x1dx", "a" * 200]:
        assert schema_errors(pointer, good) == [], repr(good)
    for bad in ["", " ", "\x1d", "\x1c\x1f\x85\u3000", "a" * 201]:
        assert not _accepted(parse_topic, bad) and schema_errors(pointer, bad), repr(bad)


_COST_MATCHERS = _pattern_matchers(_loaded()["components"]["schemas"]["UpdateRequest"]["properties"]["cost"]["pattern"])


@given(st.from_regex(r"\A[0-9]{0,12}(\.[0-9]{0,3})?\Z") | st.text(alphabet="0123456789.-e", max_size=14))
@settings(max_examples=500, derandomize=True, database=None)
def test_cost_schema_is_the_front_ends_rule(text):
    """The document's cost pattern accepts exactly the costs the front end does."""
    python, ecma = _COST_MATCHERS
    accepted = _accepted(parse_cost, text)
    assert ecma(text) == accepted, text
    # Python's `$` also matches before a final newline; ECMA's does not.
    assert python(text) == accepted or text.endswith("\n"), text


def test_idempotency_key_header_on_buy():
    parameters = [_resolve(p)[0] for p in document()["paths"]["/buy/{id}"]["post"]["parameters"]]
    key = [p for p in parameters if p["name"] == "Idempotency-Key"]
    assert len(key) == 1 and key[0]["in"] == "header" and key[0]["required"] is False


# The document against the app's routes


def _shape(template: str) -> str:
    """A path template with its parameters blanked: C{/lookup/{}}."""
    template = re.sub(r"<(?:[a-z]+:)?[A-Za-z_]+>", "{}", template)
    template = re.sub(r"\{[A-Za-z_]+\}", "{}", template)
    # `/search/` is the same route as `/search` (an empty topic in the path).
    return template.rstrip("/") or "/"


def test_document_names_exactly_the_routes_of_the_app():
    served = {}
    for rule in FrontendApp.app.url_map.iter_rules():
        methods = set(rule.methods or ()) - {"HEAD", "OPTIONS"}
        served.setdefault(_shape(rule.rule), set()).update(methods)
    described = {}
    for template, method, _ in _operations(document()):
        described.setdefault(_shape(template), set()).add(method.upper())
    if "/metrics" not in served:  # Described before it is routed.
        described.pop("/metrics")
    assert described == served


# The document against the app's answers


@pytest.fixture
def cluster(tmp_path):
    running = InMemoryCluster(tmp_path)
    yield running
    running.close()


@pytest.fixture
def front(cluster):
    return front_end(cluster)


def exchange(front, template, method, path, status, **kwargs):
    """Make a request, assert its status, and check the answer against the document."""
    code, headers, body = call(front, method, path, **kwargs)
    assert code == status, (method, path, code, body)
    check_response(template, method, code, headers, body)
    return json.loads(body) if body else None


def wrong_method(front, template, method, path, documented):
    """A method C{path} does not serve: 405, as the documented operation says."""
    code, headers, body = call(front, method, path, data=b"{}")
    assert code == 405, (method, path, code, body)
    check_response(template, documented, code, headers, body)
    return headers


def test_search_answers(front):
    t = "/search/{topic}"
    found = exchange(front, t, "GET", "/search/Distributed%20Systems", 200)
    assert [i["id"] for i in found["items"]] == [1, 2]
    assert exchange(front, t, "GET", "/search/cooking", 200)["items"] == []
    exchange(front, t, "GET", "/search/%20%20", 400)
    exchange(front, t, "GET", "/search/" + "x" * 201, 400)
    wrong_method(front, t, "POST", "/search/travel", "GET")
    t = "/search"
    assert exchange(front, t, "GET", "/search?topic=travel", 200)["topic"] == "travel"
    exchange(front, t, "GET", "/search?topic=", 400)
    exchange(front, t, "GET", "/search", 400)
    exchange(front, t, "GET", "/search/", 400)
    wrong_method(front, t, "DELETE", "/search?topic=travel", "GET")


def test_lookup_and_list_answers(front):
    t = "/lookup/{id}"
    assert exchange(front, t, "GET", "/lookup/1", 200)["id"] == 1
    for bad in ["0", "abc", "01", "1.5", "99999999999999999999"]:
        exchange(front, t, "GET", f"/lookup/{bad}", 400)
    exchange(front, t, "GET", "/lookup/8", 404)
    assert b"GET" in wrong_method(front, t, "DELETE", "/lookup/1", "GET").getRawHeaders(b"allow")[0]
    listed = exchange(front, "/list", "GET", "/list", 200)
    assert [i["id"] for i in listed["items"]] == [1, 2, 3, 4, 5, 6, 7]
    wrong_method(front, "/list", "PUT", "/list", "GET")


def test_buy_and_order_answers(cluster, front):
    t = "/buy/{id}"
    order = exchange(front, t, "POST", "/buy/2", 200)["order"]
    key = {"Idempotency-Key": "fuzz-1"}
    first = exchange(front, t, "POST", "/buy/3", 200, headers=key)
    assert exchange(front, t, "POST", "/buy/3", 200, headers=key) == first
    assert exchange(front, t, "POST", "/buy/4", 409, headers=key)["error"]["code"] == "conflict"
    exchange(front, t, "POST", "/buy/3", 400, headers={"Idempotency-Key": "x" * 129})
    exchange(front, t, "POST", "/buy/x", 400)
    exchange(front, t, "POST", "/buy/42", 404)
    exchange(front, t, "POST", "/buy/1", 413, data=b"x" * (MAX_BODY + 1))
    auth = {"Authorization": f"Bearer {cluster.secret}"}
    stock = exchange(front, "/lookup/{id}", "GET", "/lookup/6", 200)["stock"]
    exchange(
        front, "/update/{id}", "POST", "/update/6", 200, data=json.dumps({"stock_delta": -stock}).encode(), headers=auth
    )
    assert exchange(front, t, "POST", "/buy/6", 409)["error"]["code"] == "out_of_stock"
    assert wrong_method(front, t, "GET", "/buy/1", "POST").getRawHeaders(b"allow") == [b"POST"]

    t = "/orders/{order_id}"
    assert exchange(front, t, "GET", f"/orders/{order['id']}", 200) == {"order": order}
    exchange(front, t, "GET", "/orders/0", 400)
    exchange(front, t, "GET", "/orders/999", 404)
    wrong_method(front, t, "POST", f"/orders/{order['id']}", "GET")


def test_buy_and_update_without_primary_answer_503(cluster, front):
    """No primary for the write within the deadline: 503 with Retry-After."""
    advance = lambda: cluster.reactor.advance(0.05)  # noqa: E731
    cluster.frontend.orders.update(2, None, [])
    exchange(front, "/buy/{id}", "POST", "/buy/1", 503, flush=advance)
    cluster.frontend.catalog.update(2, None, [])
    auth = {"Authorization": f"Bearer {cluster.secret}"}
    exchange(front, "/update/{id}", "POST", "/update/1", 503, data=b'{"stock_delta": 1}', headers=auth, flush=advance)
    # Reads go on.
    exchange(front, "/lookup/{id}", "GET", "/lookup/1", 200)


def test_update_answers(cluster, front):
    t = "/update/{id}"
    auth = {"Authorization": f"Bearer {cluster.secret}"}
    item = exchange(front, t, "POST", "/update/7", 200, data=b'{"cost": "12.5", "stock_delta": 5}', headers=auth)
    assert item["item"]["cost"] == "12.50"
    code, headers, body = call(front, "POST", "/update/7", data=b'{"stock_delta": 1}')
    assert code == 401
    check_response(t, "POST", code, headers, body)
    for raw in [b"{}", b'{"colour": "red"}', b'{"stock_delta": 1.5}', b"[1]", b"{", b"\xff"]:
        exchange(front, t, "POST", "/update/7", 400, data=raw, headers=auth)
    exchange(front, t, "POST", "/update/7", 400, data=b'{"stock_delta": -100000000}', headers=auth)
    exchange(front, t, "POST", "/update/99", 404, data=b'{"stock_delta": 1}', headers=auth)
    exchange(front, t, "POST", "/update/7", 413, data=b" " * (MAX_BODY + 1), headers=auth)
    wrong_method(front, t, "GET", "/update/7", "POST")


def test_status_health_metrics_answers(front):
    status = exchange(front, "/status", "GET", "/status", 200)
    assert set(status["services"]) == {"catalog", "order"}
    assert exchange(front, "/health", "GET", "/health", 200) == {"status": "ok"}
    code, headers, body = call(front, "GET", "/metrics")
    assert code in (200, 404), (code, body)
    check_response("/metrics", "GET", code, headers, body)
    wrong_method(front, "/health", "POST", "/health", "GET")
    wrong_method(front, "/status", "PATCH", "/status", "GET")
    wrong_method(front, "/metrics", "POST", "/metrics", "GET")


def test_unknown_path_is_a_documented_404(front):
    for path in ["/nope", "/lookup", "/list/", "/lookup/1/extra"]:
        code, headers, body = call(front, "GET", path)
        assert code == 404, (path, code, body)
        check_against(error_spec(code), code, headers, body, f"GET {path}")


def test_checks_have_teeth(front):
    """An answer the document does not describe fails the check."""
    code, headers, body = call(front, "GET", "/lookup/1")
    with pytest.raises(AssertionError):
        check_response("/lookup/{id}", "GET", 409, headers, body)
    with pytest.raises(AssertionError):
        check_response("/list", "GET", code, headers, body)
