"""
A config of two front ends and a local etcd on free ports, for the
integration tests that start it with C{pygmy up}
(C{tests/integration/test_up_frontends.py}).
"""

from __future__ import annotations

from pygmy.testing import free_pair, write_config


def write_two_frontends(directory) -> str:
    """A config.ini with [frontend:1], [frontend:2] and a local etcd on free ports."""
    return write_config(
        directory, frontends=("1", "2"), coordinator={"etcd": f"http://127.0.0.1:{free_pair()}", "lease_ttl": "2"}
    )
