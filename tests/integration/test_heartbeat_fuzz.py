"""
Fuzzing the front end's heartbeat port (issue 6, DESIGN §5) on a real
cluster: raw TCP connections that send garbage, giant lines, forged HELLOs,
BEATs before HELLO, and garbage after a genuine HELLO.

Each such connection must be closed by the front end within a few seconds,
logged without a traceback, and change nothing: afterwards C{GET /status}
shows the same views, primaries and live replicas, and buys and lookups
still work.

The cluster has a third replica per service, C{C}, that is in config.ini
but never started: a genuine HELLO (with the real secret) can name it
without displacing a live replica's connection, which a HELLO naming a
running replica would do by design (a replica that reconnects replaces its
old connection).
"""

from __future__ import annotations

import random
import socket
import time

import pytest

from pygmy.replication.heartbeat import MAX_LINE, proof
from pygmy.testing import SECRET, Cluster, get_json

pytestmark = pytest.mark.integration

SERVICES = ("catalog", "order")
RUNNING = ("A", "B")
CLOSE_WITHIN = 4.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Replicas A and B of each service and the front end; C only in config."""
    running = Cluster(tmp_path_factory.mktemp("heartbeat-fuzz"), replicas=("A", "B", "C"))
    try:
        for service in SERVICES:
            for name in RUNNING:
                running.start(service, name)
        running.start("frontend")
        yield running
    finally:
        running.stop_all()


def view_of(cluster) -> dict:
    """Per service: view number, primary, backups and live replicas, from C{GET /status}."""
    status, body = get_json(cluster.url + "/status")
    assert status == 200, body
    return {
        service: (
            view["view"],
            view["primary"],
            sorted(view["backups"]),
            sorted(name for name, replica in view["replicas"].items() if replica["alive"]),
        )
        for service, view in body["services"].items()
    }


def settled_view(cluster, timeout: float = 15.0) -> dict:
    """The view once every service has a primary and both running replicas in it, unchanged for a second."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = view_of(cluster)
        complete = all(
            primary is not None and sorted([primary, *backups]) == list(RUNNING) and alive == list(RUNNING)
            for _, primary, backups, alive in now.values()
        )
        if now != last:
            last, since = now, time.monotonic()
        elif complete and time.monotonic() - since >= 1.0:
            return now
        time.sleep(0.1)
    raise AssertionError(f"the cluster did not settle: {last}")


class Probe:
    """One raw connection to the heartbeat port."""

    def __init__(self, cluster):
        port = cluster.config.frontend.heartbeat_port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=CLOSE_WITHIN)
        self.buffer = b""

    def line(self) -> bytes:
        """The next line from the front end (the first is its CHALLENGE)."""
        while b"\n" not in self.buffer:
            data = self.sock.recv(4096)
            assert data, f"closed before a full line; got {self.buffer!r}"
            self.buffer += data
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line

    def nonce(self) -> str:
        words = self.line().decode("ascii").split(" ")
        assert words[0] == "CHALLENGE" and len(words) == 2, words
        return words[1]

    def send(self, data: bytes) -> None:
        """Send C{data}; a reset because the front end already closed is fine."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def closed_by_server(self) -> bool:
        """Whether the front end closes the connection within L{CLOSE_WITHIN} seconds."""
        deadline = time.monotonic() + CLOSE_WITHIN
        try:
            while time.monotonic() < deadline:
                self.sock.settimeout(max(0.01, deadline - time.monotonic()))
                if not self.sock.recv(65536):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        finally:
            self.sock.close()
        return False


def _garbage(rng: random.Random, size: int) -> bytes:
    return bytes(rng.randrange(256) for _ in range(size))


def probes(rng: random.Random):
    """
    C{(name, talk)} pairs: C{talk(probe)} speaks to the front end over a
    fresh connection, which the front end must then close.
    """
    hexdigits = "0123456789abcdef"

    def send(data):
        return lambda p: p.send(data)

    def after_challenge(make_line):
        def talk(p):
            p.send(make_line(p.nonce()) + b"\n")

        return talk

    def genuine_then(*lines):
        def talk(p):
            nonce = p.nonce()
            p.send(f"HELLO catalog C {proof(SECRET, 'catalog', 'C', nonce)}\n".encode())
            for line in lines:
                p.send(line)

        return talk

    found = []
    for n in range(6):
        found.append((f"garbage line {n}", send(_garbage(rng, rng.randrange(1, MAX_LINE)) + b"\n")))
    found += [
        ("garbage, no newline (HELLO timeout)", send(_garbage(rng, 200).replace(b"\n", b" "))),
        ("silence (HELLO timeout)", lambda p: None),
        ("100 KB line", send(b"H" * 100_000 + b"\n")),
        ("100 KB without newline", send(b"HELLO " + b"x" * 100_000)),
        ("line one byte too long", send(b"B" * (MAX_LINE + 1) + b"\n")),
        ("NUL bytes", send(b"\x00" * 64 + b"\n")),
        (
            "HELLO with a random proof",
            after_challenge(
                lambda nonce: f"HELLO catalog A {''.join(rng.choice(hexdigits) for _ in range(64))}".encode()
            ),
        ),
        (
            "HELLO with a proof of the wrong secret",
            after_challenge(lambda nonce: f"HELLO catalog A {proof('not-the-secret', 'catalog', 'A', nonce)}".encode()),
        ),
        (
            "HELLO with a proof for another nonce",
            after_challenge(lambda nonce: f"HELLO order B {proof(SECRET, 'order', 'B', '0' * 32)}".encode()),
        ),
        (
            "HELLO proving catalog:A but naming order:A",
            after_challenge(lambda nonce: f"HELLO order A {proof(SECRET, 'catalog', 'A', nonce)}".encode()),
        ),
        (
            "HELLO for a replica not in config",
            after_challenge(lambda nonce: f"HELLO catalog Z {proof(SECRET, 'catalog', 'Z', nonce)}".encode()),
        ),
        (
            "HELLO for a service not in config",
            after_challenge(lambda nonce: f"HELLO shipping A {proof(SECRET, 'shipping', 'A', nonce)}".encode()),
        ),
        (
            "HELLO with a bad name",
            after_challenge(lambda nonce: f"HELLO catalog A;B {proof(SECRET, 'catalog', 'A;B', nonce)}".encode()),
        ),
        ("HELLO with too few words", after_challenge(lambda nonce: b"HELLO catalog A")),
        ("BEAT before HELLO", send(b"BEAT catalog A 1 5 1 primary\n")),
        ("BEAT before HELLO, after the challenge", after_challenge(lambda nonce: b"BEAT order B 1 5 1 backup")),
        ("SYNCED before HELLO", send(b"SYNCED catalog B 3\n")),
        ("INVALIDATE before HELLO", send(b"INVALIDATE 1 99\n")),
        ("VIEW to the front end", send(b"VIEW catalog 99 B A\n")),
        ("CHALLENGE to the front end", send(b"CHALLENGE " + b"ab" * 16 + b"\n")),
        ("genuine HELLO, then garbage", genuine_then(_garbage(rng, 300).replace(b"\n", b" ") + b"\n")),
        ("genuine HELLO, then a 100 KB line", genuine_then(b"x" * 100_000 + b"\n")),
        ("genuine HELLO, then non-ASCII", genuine_then("BEAT catalog C 1 1 1 prïmary\n".encode())),
        ("genuine HELLO, then a second HELLO", genuine_then(b"HELLO catalog C " + b"0" * 64 + b"\n")),
        ("genuine HELLO, then another's BEAT", genuine_then(b"BEAT catalog A 1 5 1 primary\n")),
        ("genuine HELLO, then a BEAT with a bad state", genuine_then(b"BEAT catalog C 1 0 0 leader\n")),
        ("genuine HELLO, then SYNCED for another service", genuine_then(b"SYNCED order C 1\n")),
        ("genuine HELLO, then VIEW", genuine_then(b"VIEW catalog 99 C -\n")),
    ]
    return found


def test_every_bad_connection_is_closed_and_changes_nothing(cluster):
    before = settled_view(cluster)
    log = cluster.directory / "frontend.log"
    logged_before = log.read_text(errors="replace").count("Heartbeat: closing")

    cases = probes(random.Random(6))
    still_open = []
    for name, talk in cases:
        probe = Probe(cluster)
        talk(probe)
        if not probe.closed_by_server():
            still_open.append(name)
    assert still_open == [], f"the front end left these connections open: {still_open}"

    # Past a heartbeat timeout, so a wrongly killed replica would show.
    time.sleep(2 * cluster.config.cluster.heartbeat_timeout)
    assert view_of(cluster) == before

    status, looked = get_json(cluster.url + "/lookup/1", headers={"Cache-Control": "no-cache"})
    assert status == 200, looked
    status, bought = get_json(cluster.url + "/buy/1", method="POST")
    assert status == 200, bought
    status, after = get_json(cluster.url + "/lookup/1")
    assert status == 200 and after["stock"] == looked["stock"] - 1, (looked, after)
    status, order = get_json(cluster.url + f"/orders/{bought['order']['id']}")
    assert (status, order) == (200, bought)
    assert view_of(cluster) == before

    text = log.read_text(errors="replace")
    assert "Traceback" not in text, cluster.log_tail("frontend", 60)
    refused = text.count("Heartbeat: closing") - logged_before
    assert refused >= len(cases), f"{len(cases)} connections refused, {refused} logged"


def test_a_displaced_replica_comes_back(cluster):
    """
    A genuine HELLO naming a running replica displaces that replica's
    connection (as a reconnect does) and takes it out of the view; once that
    connection dies of a garbage line, the real replica, which never stopped
    beating, must be back in the view within a few seconds.
    """
    before = settled_view(cluster)
    probe = Probe(cluster)
    nonce = probe.nonce()
    probe.send(f"HELLO catalog B {proof(SECRET, 'catalog', 'B', nonce)}\n".encode())
    probe.send(b"\xff garbage\n")
    assert probe.closed_by_server()

    deadline = time.monotonic() + 6.0
    while time.monotonic() < deadline:
        _, primary, backups, alive = view_of(cluster)["catalog"]
        if (primary, backups, alive) == before["catalog"][1:]:
            break
        time.sleep(0.1)
    assert view_of(cluster)["catalog"][1:] == before["catalog"][1:], (
        f"catalog:B did not come back into the view: {view_of(cluster)['catalog']}, before {before['catalog']}"
    )
    status, bought = get_json(cluster.url + "/buy/2", method="POST")
    assert status == 200, bought
    assert "Traceback" not in (cluster.directory / "frontend.log").read_text(errors="replace")
