"""
What fuzzing the public API (C{test_fuzz.py}) found, pinned as plain
examples against the real front end, catalog and order apps on SQLite, in
memory: a path that is not UTF-8 once percent-decoded is a JSON 400, a
doubled slash is never a redirect without a C{Location}, and an
C{Idempotency-Key} reused for another update of the same book is a 409
conflict.  Each request is checked as the fuzzed ones are (L{check}: no 5xx,
no traceback, a documented answer, nothing changed by a 4xx).
"""

from __future__ import annotations

import pytest

from tests.openapi_checks import SECRET, Request, check, fuzz_world, logged_failures


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One in-memory cluster for every example (its stock only drifts by 200s)."""
    yield from fuzz_world(tmp_path_factory)


@pytest.fixture(scope="module")
def failures():
    """Every failure logged while the module runs (a traceback in the log)."""
    yield from logged_failures()


@pytest.mark.parametrize("path", ["/lookup/%ff", "/search/%ff%fe", "/buy/%C0%AF", "/%80"])
def test_non_utf8_path_is_a_json_400(world, failures, path):
    """A path that is not UTF-8 once percent-decoded is a bad request, in JSON."""
    check(world, failures, Request("POST" if path.startswith("/buy") else "GET", path, {}, None))


@pytest.mark.parametrize("path", ["/lookup//1", "/buy//1", "/search//x", "/search/%2F"])
def test_doubled_slash_is_not_a_broken_redirect(world, failures, path):
    """Werkzeug's slash merging must not leave a redirect without a Location."""
    check(world, failures, Request("POST" if path.startswith("/buy") else "GET", path, {}, None))


def test_idempotency_key_reused_for_another_update(world, failures):
    """
    The same key with another change of the same book must not answer 200
    with the first change's reply while applying nothing: like a key reused
    for another book, it is a 409 conflict.
    """
    auth = {b"Authorization": [f"Bearer {SECRET}".encode()]}
    headers = {**auth, b"Idempotency-Key": [b"pinned-update-key"]}
    for body in [b'{"stock_delta": 5}', b'{"stock_delta": 5}', b'{"cost": "1.00"}']:  # first, replay, another
        check(world, failures, Request("POST", "/update/3", headers, body, "/update/{id}"))
