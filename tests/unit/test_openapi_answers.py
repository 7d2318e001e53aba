"""
What the real front end answers (real catalog and order apps on SQLite, in
memory through C{StubTreq}) matches C{docs/openapi.yaml}: the response
schemas, status codes and headers of every route, 405 for a method a route
does not serve, a documented 404 for an unknown path; and the check fails
an answer the document does not describe.  The helpers are in
C{tests/openapi_checks.py}.
"""

from __future__ import annotations

import json

import pytest

from pygmy.net.web import MAX_BODY
from tests.fakes import InMemoryCluster
from tests.openapi_checks import call, check_against, check_response, error_spec, front_end


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
