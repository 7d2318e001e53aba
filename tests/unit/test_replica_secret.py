"""
Every internal route of a replica is behind the shared secret.

The routes are read from the apps' own route maps (Klein's
C{url_map.iter_rules()}), so a route added to any of them later is walked
too: each path with each of its methods and with every other method, and
paths no app serves, each without the secret, with a wrong one and with a
scheme other than Bearer, must answer 401; with the secret, anything but
401.  Only C{GET /status}
(and its C{HEAD}) is public.
Socket-free: the replicas of L{tests.fakes.InMemoryCluster}, through
C{StubTreq}.
"""

from __future__ import annotations

import json
import re

import pytest

from pygmy.catalog.app import CatalogApp
from pygmy.order.app import OrderApp
from pygmy.replication.replica import InternalRoutes, ReplicaApp
from tests.fakes import InMemoryCluster, result

SECRET = InMemoryCluster.secret

#: The only routes anyone may call: C{(path, method)}.
PUBLIC = {("/status", "GET"), ("/status", "HEAD")}

#: Methods tried on every path, besides those its rule declares.
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

#: The Klein apps of a replica, and which replicas serve them.
APPS = [
    (ReplicaApp.public, ("catalog", "order")),
    (InternalRoutes.app, ("catalog", "order")),
    (CatalogApp.app, ("catalog",)),
    (OrderApp.app, ("order",)),
]

#: Paths no app serves, walked too: the door guards every path, served or not.
UNSERVED = ("/1", "/", "/replication/nope", "/admin", "/metrics/1", "/status/1")

UNAUTHORIZED = {
    "error": {"code": "unauthorized", "message": "This route needs 'Authorization: Bearer <secret>'."},
}

WITHOUT_SECRET = {
    "no header": {},
    "wrong secret": {"authorization": "Bearer not-the-secret"},
    "secret with a suffix": {"authorization": f"Bearer {SECRET}x"},
    "not bearer": {"authorization": f"Basic {SECRET}"},
}


def concrete(rule: str) -> str:
    """A path that C{rule} matches: every converter (C{<item_id>}, C{<path:__rest__>}) becomes C{1}."""
    return re.sub(r"<[^>]+>", "1", rule)


def routes() -> list[tuple[str, str, str]]:
    """Every C{(replica, path, method)} of the apps' route maps, but the public ones."""
    found = []
    for app, replicas in APPS:
        for rule in app.url_map.iter_rules():
            path = concrete(rule.rule)
            for method in sorted(set(METHODS) | (rule.methods or set())):
                if (path, method) not in PUBLIC:
                    found.extend((replica, path, method) for replica in replicas)
    found += [(replica, path, method) for replica in ("catalog", "order") for path in UNSERVED for method in METHODS]
    return sorted(set(found))


ROUTES = routes()


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    """The in-memory catalog and order replicas, by service, as C{StubTreq}s."""
    cluster = InMemoryCluster(tmp_path_factory.mktemp("replicas"))
    yield {"catalog": cluster.catalog, "order": cluster.order}
    cluster.close()


def call(stub, method: str, path: str, headers: dict):
    """The response and body of one request, run to completion."""
    response = result(stub.request(method, f"http://replica{path}", headers=headers, data=b""))
    return response, result(response.content())


def test_the_walk_covers_every_kind_of_internal_route():
    """The maps yield what we know is there (the walk is not empty)."""
    walked = {(path, method) for _, path, method in ROUTES}
    expected = {
        ("/metrics", "GET"),
        ("/admin/dump", "GET"),
        ("/replication/log", "GET"),
        ("/replication/snapshot", "GET"),
        ("/replication/apply", "POST"),
        ("/replication/join", "POST"),
        ("/books/1", "GET"),
        ("/books/1/update", "POST"),
        ("/books/decrement", "POST"),
        ("/orders/buy", "POST"),
        ("/orders/1", "GET"),
        ("/1", "DELETE"),
        ("/status", "POST"),
    }
    assert expected <= walked


@pytest.mark.parametrize("how", sorted(WITHOUT_SECRET))
@pytest.mark.parametrize("replica, path, method", ROUTES)
def test_without_the_secret_every_internal_route_answers_401(replicas, replica, path, method, how):
    response, body = call(replicas[replica], method, path, WITHOUT_SECRET[how])
    assert response.code == 401, body
    assert response.headers.getRawHeaders("www-authenticate") == ['Bearer realm="pygmy"']
    if method != "HEAD":
        assert json.loads(body) == UNAUTHORIZED


@pytest.mark.parametrize("replica, path, method", ROUTES)
def test_with_the_secret_every_internal_route_is_let_through(replicas, replica, path, method):
    response, body = call(replicas[replica], method, path, {"authorization": f"Bearer {SECRET}"})
    assert response.code != 401, body
    assert response.headers.getRawHeaders("www-authenticate") is None


@pytest.mark.parametrize(
    "replica, method, path, code",
    [
        ("catalog", "GET", "/replication/apply", 405),  # the internal app's route, its method refused
        ("order", "POST", "/replication/log", 405),
        ("catalog", "GET", "/replication/nope", 404),
        ("catalog", "GET", "/books/decrement", 400),  # the service's app: /books/<item_id>, not an id
        ("order", "DELETE", "/orders/1", 405),
        ("order", "GET", "/nope", 404),
        ("catalog", "POST", "/status", 404),  # only GET and HEAD of /status are the public app's
    ],
)
def test_behind_the_door_each_path_reaches_the_app_that_serves_it(replicas, replica, method, path, code):
    response, body = call(replicas[replica], method, path, {"authorization": f"Bearer {SECRET}"})
    assert response.code == code, body
    assert set(json.loads(body)) == {"error"}


@pytest.mark.parametrize("replica", ["catalog", "order"])
def test_status_is_public(replicas, replica):
    response, body = call(replicas[replica], "GET", "/status", {})
    assert response.code == 200
    assert json.loads(body)["service"] == replica
