"""
The store end to end on real twistd processes started with the contract's
commands: every public route, concurrent buys of the last copies, restarts
that keep data, malformed requests and bad configuration files.
"""

import json
import signal
import socket
import subprocess

import pytest
import pytest_twisted
from twisted.internet.defer import DeferredList, ensureDeferred

from pygmy.testing import SECRET, TWISTD, converged, get_json

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {SECRET}"}


async def call(http, method, url, body=None, headers=None):
    """One request; return (status, decoded JSON body)."""
    data = None if body is None else json.dumps(body).encode()
    response = await http.request(method, url, data=data, headers=headers or {})
    return response.code, json.loads(await response.content())


async def set_stock(http, url, item_id, stock):
    _, item = await call(http, "GET", f"{url}/lookup/{item_id}")
    status, body = await call(http, "POST", f"{url}/update/{item_id}", {"stock_delta": stock - item["stock"]}, AUTH)
    assert status == 200, body
    return body["item"]


def orders_of(cluster, name, item_id):
    status, dump = get_json(cluster.replica_url("order", name) + "/admin/dump", AUTH)
    assert status == 200
    return [row for row in dump["rows"] if row["item_id"] == item_id]


@pytest_twisted.ensureDeferred
async def test_every_public_route(cluster, http):
    url = cluster.url
    status, found = await call(http, "GET", f"{url}/search/Distributed%20Systems")
    assert status == 200 and [i["id"] for i in found["items"]] == [1, 2]
    status, found = await call(http, "GET", f"{url}/search?topic=travel")
    assert status == 200 and found["items"] == [{"id": 7, "title": "Spring in the Pioneer Valley"}]
    status, listed = await call(http, "GET", f"{url}/list")
    assert [i["id"] for i in listed["items"]] == [1, 2, 3, 4, 5, 6, 7]
    status, book = await call(http, "GET", f"{url}/lookup/4")
    assert status == 200 and book == listed["items"][3]

    status, bought = await call(http, "POST", f"{url}/buy/4")
    assert status == 200, bought
    order = bought["order"]
    assert (await call(http, "GET", f"{url}/orders/{order['id']}")) == (200, {"order": order})
    assert (await call(http, "GET", f"{url}/lookup/4"))[1]["stock"] == book["stock"] - 1

    status, updated = await call(http, "POST", f"{url}/update/4", {"cost": "7.1"}, AUTH)
    assert status == 200 and updated["item"]["cost"] == "7.10"
    assert (await call(http, "POST", f"{url}/update/4", {"cost": "7.1"}))[0] == 401
    assert (await call(http, "GET", f"{url}/lookup/nope"))[0] == 400
    assert (await call(http, "GET", f"{url}/health")) == (200, {"status": "ok"})
    status, view = await call(http, "GET", f"{url}/status")
    assert status == 200 and set(view["services"]) == {"catalog", "order"}


@pytest_twisted.ensureDeferred
async def test_sixty_concurrent_buys_of_ten_copies(cluster, http):
    url = cluster.url
    await set_stock(http, url, 5, 10)
    before = len(orders_of(cluster, "A", 5))
    results = await DeferredList(
        [ensureDeferred(call(http, "POST", f"{url}/buy/5")) for _ in range(60)],
        consumeErrors=True,
    )
    assert all(ok for ok, _ in results), [r for ok, r in results if not ok]
    statuses = sorted(status for _, (status, _) in results)
    assert statuses.count(200) == 10 and statuses.count(409) == 50, statuses
    order_ids = {body["order"]["id"] for _, (status, body) in results if status == 200}
    assert len(order_ids) == 10
    assert (await call(http, "GET", f"{url}/lookup/5"))[1]["stock"] == 0
    assert len(orders_of(cluster, "A", 5)) == before + 10
    for order_id in order_ids:
        assert (await call(http, "GET", f"{url}/orders/{order_id}"))[0] == 200


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
@pytest_twisted.ensureDeferred
async def test_catalog_restart_keeps_data(cluster, http, sig):
    url = cluster.url
    status, updated = await call(http, "POST", f"{url}/update/3", {"cost": "3.33", "stock_delta": 7}, AUTH)
    assert status == 200
    status, bought = await call(http, "POST", f"{url}/buy/3")
    assert status == 200
    # twistd stops cleanly on SIGTERM, then exits by that same signal.
    assert cluster.stop("catalog:A", sig) == -sig
    shut_down = "Server Shut Down." in cluster.log_tail("catalog:A", 5)
    assert shut_down == (sig == signal.SIGTERM)
    # The other replica serves reads at once, and takes writes.
    status, book = await call(http, "GET", f"{url}/lookup/3")
    assert status == 200 and book["cost"] == "3.33"
    status, second = await call(http, "POST", f"{url}/buy/3")
    assert status == 200, second
    cluster.start("catalog", "A")
    await converged(cluster, "catalog")
    status, dump = get_json(cluster.replica_url("catalog", "A") + "/admin/dump", AUTH)
    row = dump["rows"][2]
    assert row["cost"] == "3.33" and row["stock"] == updated["item"]["stock"] - 2
    assert (await call(http, "GET", f"{url}/orders/{second['order']['id']}"))[0] == 200


def test_oversized_body_is_413(cluster):
    status, body = get_json(cluster.url + "/update/1", AUTH, "POST", {"cost": "1" * 70000})
    assert status == 413 and body["error"]["code"] == "payload_too_large"


def test_replicas_take_replication_sized_bodies(cluster):
    """
    A replica takes bodies up to its own limit (a replication batch is far
    over the public 64 KiB), and refuses larger ones before reading them.
    """
    from pygmy.replication.replica import MAX_REPLICA_BODY

    url = cluster.replica_url("catalog", "B") + "/replication/apply"
    status, body = get_json(url, None, "POST", {"pad": "x" * 300_000})
    assert status == 401, body  # read, then refused for want of the secret
    status, body = get_json(url, None, "POST", {"pad": "x" * MAX_REPLICA_BODY})
    assert status == 413 and body["error"]["code"] == "payload_too_large"


def test_garbage_request_line_gets_no_500(cluster):
    host, port = "127.0.0.1", cluster.config.frontend.port
    for garbage in [
        b"\x00\xff garbage\r\n\r\n",
        b"GET /lookup/1 HTTP/9.9\r\n\r\n",
        b"GET " + b"x" * 20000 + b"\r\n\r\n",
    ]:
        with socket.create_connection((host, port), timeout=5) as s:
            s.sendall(garbage)
            reply = s.recv(200)
        assert not reply.startswith(b"HTTP/1.1 5"), reply
    assert get_json(cluster.url + "/health") == (200, {"status": "ok"})


def test_replica_status_and_dump(cluster):
    status, body = get_json(cluster.replica_url("catalog", "B") + "/status")
    assert status == 200
    assert set(body) == {"service", "replica", "role", "view", "applied_seq", "checksum"}
    assert (body["service"], body["replica"]) == ("catalog", "B")
    assert get_json(cluster.replica_url("catalog", "B") + "/admin/dump")[0] == 401
    status, dump = get_json(cluster.replica_url("catalog", "B") + "/admin/dump", AUTH)
    assert status == 200 and [row["id"] for row in dump["rows"]] == [1, 2, 3, 4, 5, 6, 7]
    assert set(dump["rows"][0]) == {"id", "title", "topic", "cost", "stock"}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[frontend]\nport = 1\n", "section [cluster] is missing"),
        (
            "[cluster]\nsecret = x\n[frontend]\nport = 8080\nheartbeat_port = 8090\nbalancer = random\n",
            "[frontend] balancer",
        ),
        (
            "[cluster]\nsecret = x\n[frontend]\nport = 8080\nheartbeat_port = 8090\n[catalog:A]\nhost = 127.0.0.1\n",
            "[catalog:A] port",
        ),
    ],
)
def test_bad_config_stops_with_one_line(tmp_path, text, expected):
    path = tmp_path / "config.ini"
    path.write_text(text)
    done = subprocess.run(
        [TWISTD, "-n", "--pidfile=", "pygmy-frontend", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], done.stderr
