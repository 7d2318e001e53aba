"""
C{config.ini} texts for the tests of L{pygmy.config.load} and of what is
built from it: the sections of a valid file (L{CLUSTER}, L{FRONTEND},
L{REPLICAS}, all of them L{VALID}), C{[frontend:NAME]} sections
(L{frontends}), and L{write} and L{refused} to load a text from a file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pygmy.config import ConfigError, load
from tests.fakes import REPLICA_SECTIONS

REPO_CONFIG = Path(__file__).resolve().parents[1] / "config.ini"

CLUSTER = """\
[cluster]
secret = change-me
data_dir = var
heartbeat_interval = 0.5
heartbeat_timeout = 1.5
"""

FRONTEND = """\
[frontend]
host = 127.0.0.1
port = 8080
heartbeat_port = 8090
cache_size = 1000
balancer = round_robin
"""

REPLICAS = REPLICA_SECTIONS

VALID = CLUSTER + FRONTEND + REPLICAS


def write(tmp_path: Path, text: str) -> Path:
    """Write C{text} as C{config.ini} in C{tmp_path} and return its path."""
    path = tmp_path / "config.ini"
    path.write_text(text, encoding="utf-8")
    return path


def refused(tmp_path: Path, text: str) -> str:
    """Load C{text} and return the message of the ConfigError it must raise."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load(path, environ={})
    message = str(info.value)
    assert "\n" not in message, message
    assert str(path) in message, message
    return message


def frontends(*names, base=9000):
    """C{[frontend:NAME]} sections on distinct ports."""
    text = ""
    for i, name in enumerate(names):
        text += f"[frontend:{name}]\nport = {base + 2 * i}\nheartbeat_port = {base + 2 * i + 1}\n"
    return text
