"""
Unit tests of the everyday client commands' start (L{pygmy.cli.client}),
without sockets: where the front end is (C{--url}, C{--config}, the
C{config.ini} in the current directory, or the default), how the commands'
arguments are parsed, and that bad arguments and a bad config file exit 2.
What each command asks and prints is in C{tests/unit/test_client.py}.
"""

from __future__ import annotations

import pytest

from pygmy import cli
from pygmy.cli import client


def test_url_given_wins_and_is_normalised(tmp_path):
    assert client.resolve_url("http://h:1/", str(tmp_path / "missing.ini")) == "http://h:1"
    assert client.resolve_url("127.0.0.1:9000", None) == "http://127.0.0.1:9000"
    with pytest.raises(client.UsageError):
        client.resolve_url("  ", None)


def test_url_from_config_or_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert client.resolve_url(None, None) == client.DEFAULT_URL == "http://127.0.0.1:8080"
    (tmp_path / "config.ini").write_text(
        "[cluster]\n[frontend]\nhost = 127.0.0.2\nport = 9080\nheartbeat_port = 9090\n"
        "[catalog:A]\nport = 9081\n[catalog:B]\nport = 9082\n[order:A]\nport = 9083\n[order:B]\nport = 9084\n"
    )
    assert client.resolve_url(None, None) == "http://127.0.0.2:9080"
    assert client.resolve_url(None, str(tmp_path / "config.ini")) == "http://127.0.0.2:9080"
    with pytest.raises(client.UsageError, match="other.ini: cannot read"):
        client.resolve_url(None, "other.ini")
    (tmp_path / "config.ini").write_text("[frontend]\nport = x\n")
    with pytest.raises(client.UsageError, match=r"config.ini: .*missing"):
        client.resolve_url(None, None)


def test_client_arguments():
    parse = cli.build_parser().parse_args
    args = parse(["search", "distributed", "systems", "--json", "--url", "http://h:1"])
    assert (args.command, args.topic, args.json, args.url, args.config) == (
        "search",
        ["distributed", "systems"],
        True,
        ["http://h:1"],
        None,
    )
    args = parse(["buy", "3", "--key", "k1", "-c", "c.ini", "--timeout", "2"])
    assert (args.command, args.id, args.key, args.config, args.timeout, args.json) == (
        "buy",
        "3",
        "k1",
        "c.ini",
        2.0,
        False,
    )
    assert parse(["status"]).timeout == client.DEFAULT_TIMEOUT
    for command in ("lookup", "order", "list", "status"):
        assert parse([command] + (["1"] if command in ("lookup", "order") else [])).command == command


@pytest.mark.parametrize("argv", [["search"], ["lookup"], ["buy"], ["status", "--timeout", "0"], ["list", "extra"]])
def test_bad_client_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(argv)
    assert exit.value.code == 2


def test_bad_config_is_one_line_and_exit_2(tmp_path, capsys):
    assert cli.main(["list", "--config", str(tmp_path / "missing.ini")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("pygmy list: ") and "missing.ini: cannot read" in err[0]
