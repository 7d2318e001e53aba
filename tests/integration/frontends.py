"""
A config of two front ends and a local etcd on free ports, for the
integration tests that start it with C{pygmy up}
(C{tests/integration/test_up_frontends.py}).
"""

from __future__ import annotations

import socket

from pygmy.testing import SECRET, free_ports


def free_pair() -> int:
    """A port p on 127.0.0.1 with p + 1 free as well (etcd's client and peer ports)."""
    for _ in range(100):
        [port] = free_ports(1)
        if port >= 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two free ports in a row")


def write_two_frontends(directory) -> str:
    """A config.ini with [frontend:1], [frontend:2] and a local etcd on free ports."""
    ports = iter(free_ports(8))
    lines = [
        "[cluster]",
        f"secret = {SECRET}",
        "data_dir = var",
        "heartbeat_interval = 0.2",
        "heartbeat_timeout = 0.6",
        "",
        "[coordinator]",
        f"etcd = http://127.0.0.1:{free_pair()}",
        "lease_ttl = 2",
    ]
    for name in ("1", "2"):
        lines += [
            "",
            f"[frontend:{name}]",
            "host = 127.0.0.1",
            f"port = {next(ports)}",
            f"heartbeat_port = {next(ports)}",
        ]
    for service in ("catalog", "order"):
        for name in ("A", "B"):
            lines += ["", f"[{service}:{name}]", "host = 127.0.0.1", f"port = {next(ports)}"]
    path = directory / "config.ini"
    path.write_text("\n".join(lines) + "\n")
    return path
