"""
The views store and the leadership of several front ends against a real
etcd (L{pygmy.testing.Etcd}): started on free local ports, killed with
C{kill -9}, restarted, and as a three-member cluster that loses a member.
"""

import json
import time
import urllib.request
from base64 import b64decode, b64encode

import pytest

pytestmark = pytest.mark.integration


def put(url, key, value, within=15.0):
    """
    A blocking put through the JSON gateway (set-up and checks only), tried
    again until C{within}: a put that reached a member while its leader had
    just died waits out etcd's request timeout, so it is given up sooner.
    """
    body = json.dumps({"key": b64encode(key.encode()).decode(), "value": b64encode(value.encode()).decode()})
    deadline = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(url + "/v3/kv/put", body.encode()), timeout=2) as r:
                return json.loads(r.read())
        except OSError:
            if time.monotonic() > deadline:
                raise


def get(url, key):
    """A blocking range of one key: its value, or C{None}."""
    body = json.dumps({"key": b64encode(key.encode()).decode()})
    with urllib.request.urlopen(urllib.request.Request(url + "/v3/kv/range", body.encode()), timeout=5) as r:
        kvs = json.loads(r.read()).get("kvs", [])
    return None if not kvs else b64decode(kvs[0]["value"]).decode()


def test_etcd_keeps_its_data_across_kill_9(etcd):
    put(etcd.url, "/t/a", "1")
    etcd.kill()
    assert not etcd.healthy()
    etcd.start()
    assert get(etcd.url, "/t/a") == "1"


def test_a_three_member_cluster_serves_with_one_member_down(etcd_cluster):
    first, second, third = etcd_cluster.members
    put(first.url, "/t/b", "2")
    first.kill()
    put(second.url, "/t/b", "3")
    assert get(third.url, "/t/b") == "3"
    first.start()
    assert get(first.url, "/t/b") == "3"
