"""
Unit tests of the C{listen} key of L{pygmy.config.load}: without it each
process listens on TCP at its port and bind address; a valid Twisted server
endpoint string is kept as written, with relative paths taken from the
file's directory; a string Twisted cannot build an endpoint from is refused
with one line naming the section and key; and checking the strings installs
no reactor.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from pygmy.config import load
from tests.config_texts import REPO_CONFIG, VALID, refused, write


def with_listen(section: str, listen: str) -> str:
    """L{VALID} with C{listen} in C{[section]} (C{frontend} or a replica)."""
    header = f"[{section}]\n"
    assert header in VALID
    return VALID.replace(header, f"{header}listen = {listen}\n")


def test_listen_defaults_to_tcp_on_port_at_bind(tmp_path):
    """Without listen, each process listens as before: TCP on its port at bind."""
    text = VALID.replace("[catalog:B]\n", "[catalog:B]\nbind = ::1\n")
    config = load(write(tmp_path, text), environ={})
    assert config.frontend.listen is None
    assert config.frontend.endpoint == "tcp:8080:interface=127.0.0.1"
    assert config.frontend.where == "127.0.0.1:8080"
    assert config.frontend.heartbeat_endpoint == "tcp:8090:interface=127.0.0.1"
    assert config.replica("catalog", "A").endpoint == "tcp:8081:interface=127.0.0.1"
    assert config.replica("catalog", "B").endpoint == r"tcp:8082:interface=\:\:1"
    assert config.replica("catalog", "B").where == "::1:8082"


@pytest.mark.parametrize(
    "section, listen",
    [
        ("frontend", "tcp:8080:interface=0.0.0.0"),
        ("frontend", "unix:/run/pygmy/fe.sock:mode=660:lockfile=1"),
        ("catalog:A", "tcp6:8081:interface=\\:\\:"),
        # The key files need only be there for the process that listens.
        ("order:B", "ssl:8443:privateKey=/nonexistent/key.pem:certKey=/nonexistent/cert.pem"),
    ],
)
def test_listen_is_kept(tmp_path, section, listen):
    """A valid listen string is used as written; host and port still say where others reach it."""
    config = load(write(tmp_path, with_listen(section, listen)), environ={})
    found = config.frontend if section == "frontend" else config.replica(*section.split(":"))
    assert found.listen == found.endpoint == found.where == listen
    assert found.url.startswith("http://127.0.0.1:80")
    assert config.frontend.heartbeat_endpoint == "tcp:8090:interface=127.0.0.1"


@pytest.mark.parametrize(
    "listen, expected",
    [
        ("unix:fe.sock", "unix:{dir}/fe.sock"),
        ("unix:run/fe.sock:mode=600", "unix:{dir}/run/fe.sock:mode=600"),
        ("unix:address=fe.sock", "unix:address={dir}/fe.sock"),
        (
            "ssl:8443:privateKey=key.pem:certKey=/etc/cert.pem",
            "ssl:8443:privateKey={dir}/key.pem:certKey=/etc/cert.pem",
        ),
    ],
)
def test_listen_relative_paths_from_config_directory(tmp_path, monkeypatch, listen, expected):
    """A relative socket or key path is taken from the file's directory, like data_dir."""
    monkeypatch.chdir(tmp_path)
    sub = tmp_path / "etc"
    sub.mkdir()
    config = load(write(sub, with_listen("frontend", listen)), environ={})
    assert config.frontend.listen == expected.format(dir=sub.resolve())


def test_listen_path_with_colon_stays_escaped(tmp_path):
    r"""A directory with a colon in its name is escaped (C{\:}) in the listen string."""
    odd = tmp_path / "a:b"
    odd.mkdir()
    config = load(write(odd, with_listen("catalog:B", "unix:fe.sock")), environ={})
    escaped = str(odd.resolve()).replace(":", "\\:")
    assert config.replica("catalog", "B").listen == f"unix:{escaped}/fe.sock"


@pytest.mark.parametrize(
    "section, listen, why",
    [
        ("frontend", "http:8080", "Unknown endpoint type"),
        ("frontend", "tcp:eighty", "invalid literal"),
        ("catalog:B", "tcp:8082:bogus=1", "bogus"),
        ("order:A", "unix:/run/o.sock:mode=rw", "invalid literal"),
        ("frontend", "tcp", "port"),
        ("order:B", "systemd:domain=INET", "index or name"),
    ],
)
def test_bad_listen(tmp_path, section, listen, why):
    """A listen string Twisted cannot build an endpoint from is one line naming section and key."""
    message = refused(tmp_path, with_listen(section, listen))
    assert f"[{section}] listen: {listen!r} is not a Twisted server endpoint: " in message
    assert why in message


def test_empty_listen(tmp_path):
    message = refused(tmp_path, with_listen("frontend", ""))
    assert "[frontend] listen: empty" in message


def test_loading_a_config_installs_no_reactor():
    """Checking listen strings must not import (and so install) the global reactor before twistd picks one."""
    code = (
        "import sys; from pygmy.config import load; "
        f"load({str(REPO_CONFIG)!r}); "
        "assert 'twisted.internet.reactor' not in sys.modules, 'reactor imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_CONFIG.parent)
    assert done.returncode == 0, done.stderr
