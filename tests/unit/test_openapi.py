"""
C{docs/openapi.yaml}, the description of the public API (DESIGN §3): it is a
valid OpenAPI document, its error responses, statuses and request schemas are
the front end's (a topic, a cost, an update's body, the C{Idempotency-Key}
header), and it names exactly the routes the front end's Klein app serves.

What the real app answers is checked against it in
C{test_openapi_answers.py}; the helpers (L{document}, L{schema_errors}) are in
C{tests/openapi_checks.py}.
"""

from __future__ import annotations

import re

import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from pygmy.errors import BadRequest
from pygmy.frontend.app import FrontendApp
from pygmy.net.validate import parse_cost, parse_topic
from tests.openapi_checks import ERROR_RESPONSES, document, resolve, schema_errors

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


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


_COST_MATCHERS = _pattern_matchers(
    document()["components"]["schemas"]["UpdateRequest"]["properties"]["cost"]["pattern"]
)


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
    parameters = [resolve(p)[0] for p in document()["paths"]["/buy/{id}"]["post"]["parameters"]]
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
