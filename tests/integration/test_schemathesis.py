"""
C{docs/openapi.yaml} against a live front end, by a third-party contract
fuzzer: schemathesis generates requests for every operation of the document
(valid ones and, in its negative mode, invalid ones) and runs every one of its
checks on each answer (no 5xx; status codes, content types, headers and
bodies as documented; valid data accepted and invalid data refused; the
Bearer secret really required; C{Allow} on 405; ...).

The cluster is real C{twistd} processes (the module's C{cluster} fixture of
C{conftest.py}), so the synchronous C{requests} calls of schemathesis block
only this test, never the front end; these tests are plain functions, not
pytest-twisted ones, and leave the reactor alone.

One rule of the API depends on state rather than on the request, which no
schema can describe: an update that would take a book's stock below zero
answers 400 (DESIGN §3). Where the book's stock, read just before, says that
is what must happen, L{test_api} expects that 400 instead of running
schemathesis' check that valid data is accepted on it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.core.failures import FailureGroup
from schemathesis.generation import GenerationMode
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import positive_data_acceptance

from pygmy.testing import SECRET, get_json

pytestmark = pytest.mark.integration

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
AUTH = {"Authorization": f"Bearer {SECRET}"}

load_all_checks()
ALL_CHECKS = list(CHECKS.get_all())

schema = schemathesis.openapi.from_path(DOCUMENT)
SECURED = {
    (method.upper(), template)
    for template, item in schema.raw_schema["paths"].items()
    for method, operation in item.items()
    if isinstance(operation, dict) and operation.get("security")
}


def test_every_check_and_every_operation():
    """The fuzzing below runs all of schemathesis' checks over the whole document."""
    names = {check.__name__ for check in ALL_CHECKS}
    assert {"not_a_server_error", "response_schema_conformance", "positive_data_acceptance"} <= names
    assert names == set(CHECKS.get_all_names())
    operations = {(op.method.upper(), op.path) for op in (r.ok() for r in schema.get_all_operations())}
    documented = {(m.upper(), t) for t, item in schema.raw_schema["paths"].items() for m in item}
    assert operations == documented and len(operations) == 15
    assert SECURED == {("POST", "/update/{id}"), ("POST", "/books")}


def below_zero(cluster, case) -> bool:
    """
    Whether C{case} is a valid update whose C{stock_delta} would take the
    book's stock, as a replica has it now, below zero.
    """
    if case.meta is None or not case.meta.generation.mode.is_positive or case.path != "/update/{id}":
        return False
    body = case.body
    if not isinstance(body, dict) or type(body.get("stock_delta")) is not int or body["stock_delta"] >= 0:
        return False
    status, item = get_json(f"{cluster.url}/lookup/{case.path_parameters['id']}", {"Cache-Control": "no-cache"})
    return status == 200 and item["stock"] + body["stock_delta"] < 0


@schema.parametrize()
@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api(case, cluster):
    """Every operation, valid and invalid requests, every check."""
    headers = AUTH if (case.method.upper(), case.path) in SECURED else None
    if below_zero(cluster, case):
        response = case.call_and_validate(
            base_url=cluster.url, headers=headers, checks=ALL_CHECKS, excluded_checks=[positive_data_acceptance]
        )
        # Unless an Idempotency-Key replays an earlier answer, the stock rule refuses it.
        if response.status_code == 400:
            assert "below zero" in json.loads(response.content)["error"]["message"], response.content
        return
    case.call_and_validate(base_url=cluster.url, headers=headers, checks=ALL_CHECKS)


def test_the_fuzzer_has_teeth(cluster):
    """
    A document that breaks the server's rules fails the checks: where it
    says a cost has ten digits before the point (as this document once let
    it), the server's 400 to such a valid-looking cost is caught.
    """
    raw = json.loads(json.dumps(schema.raw_schema))
    cost = raw["components"]["schemas"]["UpdateRequest"]["properties"]["cost"]
    cost["pattern"] = "^[1-9][0-9]{9}$"
    operation = schemathesis.openapi.from_dict(raw)["/update/{id}"]["POST"]

    @given(operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
    @settings(max_examples=20, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    def fuzz(case):
        case.call_and_validate(base_url=cluster.url, headers=AUTH, checks=ALL_CHECKS)

    with pytest.raises(FailureGroup) as info:
        fuzz()
    rejected = [e for e in info.value.exceptions if isinstance(e, RejectedPositiveData)]
    assert rejected and rejected[0].status_code == 400, info.value.exceptions
