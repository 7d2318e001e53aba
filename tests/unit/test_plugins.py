"""
Unit tests of the twistd plugins: they are discoverable, their C{Options}
load C{config.ini} (refusing a bad one with a single line, not a traceback)
and their C{makeService} builds a C{MultiService} without opening sockets.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.application.service import IServiceMaker, MultiService
from twisted.internet.testing import MemoryReactorClock
from twisted.plugin import getPlugins
from twisted.python.usage import UsageError

from pygmy.catalog import tap as catalog_tap
from pygmy.frontend import tap as frontend_tap
from pygmy.net.listener import Listener
from pygmy.order import tap as order_tap
from tests.fakes import config_text

REPO = Path(__file__).resolve().parents[2]

CONFIG = config_text(secret="change-me")

TAPS = {
    "pygmy-frontend": (frontend_tap, []),
    "pygmy-catalog": (catalog_tap, ["--replica", "A"]),
    "pygmy-order": (order_tap, ["--replica", "B"]),
}


@pytest.fixture
def config_path(tmp_path) -> Path:
    """A valid config.ini in a temporary directory."""
    path = tmp_path / "config.ini"
    path.write_text(CONFIG, encoding="utf-8")
    return path


@pytest.fixture
def reactor() -> MemoryReactorClock:
    """
    A memory reactor passed to C{makeService}, so building a service leaves
    no triggers on the real reactor and any attempt to listen would show up
    in C{tcpServers}.
    """
    return MemoryReactorClock()


def exit_message(options, argv) -> str:
    """Parse C{argv} expecting SystemExit; return its one-line message."""
    with pytest.raises(SystemExit) as info:
        options.parseOptions(argv)
    message = info.value.code
    assert isinstance(message, str), message
    assert "\n" not in message, message
    assert "Traceback" not in message
    return message


def test_plugins_discoverable():
    """twistd sees the three Pygmy plugins, each pointing at its tap module."""
    makers = {p.tapname: p for p in getPlugins(IServiceMaker)}
    assert {"pygmy-frontend", "pygmy-catalog", "pygmy-order"} <= set(makers)
    for tapname, (module, _) in TAPS.items():
        assert makers[tapname].module == module.__name__
        assert makers[tapname].options is module.Options
        assert makers[tapname].description


def test_no_init_in_twisted_plugin_directories():
    """twisted/ and twisted/plugins/ must stay namespace-less drop-in dirs."""
    assert (REPO / "twisted" / "plugins" / "pygmy_plugins.py").is_file()
    assert not (REPO / "twisted" / "__init__.py").exists()
    assert not (REPO / "twisted" / "plugins" / "__init__.py").exists()


def test_catalog_options_set_config(config_path):
    options = catalog_tap.Options()
    options.parseOptions(["--config", str(config_path), "--replica", "A"])
    assert options["replica"] == "A"
    assert options.config.path == config_path
    assert options.config.replica("catalog", "A").port == 8081
    assert options.config.cluster.data_dir == config_path.parent.resolve() / "var"


def test_short_options(config_path):
    options = order_tap.Options()
    options.parseOptions(["-c", str(config_path), "-r", "B"])
    assert options["replica"] == "B"
    assert options.config.replica("order", "B").port == 8084


def test_frontend_options_set_config(config_path):
    options = frontend_tap.Options()
    options.parseOptions(["--config", str(config_path)])
    assert options.config.frontend.port == 8080
    assert options.config.frontend.heartbeat_port == 8090


def test_config_defaults_to_config_ini_in_cwd(monkeypatch):
    monkeypatch.chdir(REPO)
    options = frontend_tap.Options()
    options.parseOptions([])
    assert options.config.path == Path("config.ini")
    assert options.config.frontend.port == 8080


@pytest.mark.parametrize("options", [catalog_tap.Options, order_tap.Options])
def test_missing_replica_is_usage_error(config_path, options):
    with pytest.raises(UsageError) as info:
        options().parseOptions(["--config", str(config_path)])
    assert "--replica" in str(info.value)


@pytest.mark.parametrize("options, service", [(catalog_tap.Options, "catalog"), (order_tap.Options, "order")])
def test_unknown_replica_exits_with_one_line(config_path, options, service):
    message = exit_message(options(), ["--config", str(config_path), "--replica", "Q"])
    assert message.startswith(f"pygmy-{service}: ")
    assert f"[{service}:Q]" in message
    assert "A, B" in message


@pytest.mark.parametrize("tapname", sorted(TAPS))
def test_broken_config_exits_with_one_line(tmp_path, tapname):
    path = tmp_path / "config.ini"
    path.write_text(CONFIG.replace("port = 8082", "port = eighty"), encoding="utf-8")
    module, extra = TAPS[tapname]
    message = exit_message(module.Options(), ["--config", str(path)] + extra)
    assert message.startswith(f"{tapname}: {path}")
    assert "[catalog:B] port" in message


def test_missing_config_file_exits_with_one_line(tmp_path):
    path = tmp_path / "absent.ini"
    message = exit_message(catalog_tap.Options(), ["--config", str(path), "--replica", "A"])
    assert str(path) in message
    assert "cannot read" in message


@pytest.mark.parametrize("tapname", sorted(TAPS))
def test_make_service_builds_multiservice(config_path, reactor, tapname):
    """makeService builds, without starting, a MultiService; nothing listens."""
    module, extra = TAPS[tapname]
    options = module.Options()
    options.parseOptions(["--config", str(config_path)] + extra)
    service = module.makeService(options, reactor)
    assert isinstance(service, MultiService)
    assert not service.running
    assert len(list(service)) >= 2
    assert reactor.tcpServers == []
    assert reactor.tcpClients == []
    assert not (config_path.parent / "var").exists()


def test_make_service_names(config_path, reactor):
    """Each replica service is named after its section, for twistd logs."""
    options = order_tap.Options()
    options.parseOptions(["--config", str(config_path), "--replica", "B"])
    assert order_tap.makeService(options, reactor).name == "order:B"
    options = frontend_tap.Options()
    options.parseOptions(["--config", str(config_path)])
    assert frontend_tap.makeService(options, reactor=reactor).name == "frontend"


def listeners(service) -> list[Listener]:
    """Every L{Listener} in the service tree under C{service}."""
    if isinstance(service, Listener):
        return [service]
    return [found for child in getattr(service, "services", ()) for found in listeners(child)]


@pytest.mark.parametrize("tapname", sorted(TAPS))
def test_make_service_listens_on_the_reactor_given(config_path, reactor, tapname):
    """
    Without C{listen}, each HTTP listener is TCP on C{port} at C{bind}, on
    the reactor passed to makeService (and the front end's heartbeats too).
    """
    module, extra = TAPS[tapname]
    options = module.Options()
    options.parseOptions(["--config", str(config_path)] + extra)
    for listener in listeners(module.makeService(options, reactor)):
        listener.privilegedStartService()
    ports = sorted((port, interface) for port, _, _, interface in reactor.tcpServers)
    expected = {
        "pygmy-frontend": [(8080, "127.0.0.1"), (8090, "127.0.0.1")],
        "pygmy-catalog": [(8081, "127.0.0.1")],
        "pygmy-order": [(8084, "127.0.0.1")],
    }
    assert ports == expected[tapname]


@pytest.mark.parametrize("tapname", sorted(TAPS))
def test_make_service_listens_where_listen_says(tmp_path, reactor, tapname):
    """C{listen} replaces the HTTP listener's TCP port; the heartbeats stay on TCP."""
    text = CONFIG.replace("port = 8080\n", "port = 8080\nlisten = unix:fe.sock\n")
    text = text.replace("port = 8081\n", "port = 8081\nlisten = unix:catalog-A.sock:mode=600\n")
    text = text.replace("port = 8084\n", "port = 8084\nlisten = tcp:9084:interface=0.0.0.0\n")
    path = tmp_path / "config.ini"
    path.write_text(text, encoding="utf-8")
    module, extra = TAPS[tapname]
    options = module.Options()
    options.parseOptions(["--config", str(path)] + extra)
    for listener in listeners(module.makeService(options, reactor)):
        listener.privilegedStartService()
    unix = [(address, mode) for address, _, _, mode, _ in reactor.unixServers]
    tcp = [(port, interface) for port, _, _, interface in reactor.tcpServers]
    expected = {
        "pygmy-frontend": ([(str(tmp_path.resolve() / "fe.sock"), 0o666)], [(8090, "127.0.0.1")]),
        "pygmy-catalog": ([(str(tmp_path.resolve() / "catalog-A.sock"), 0o600)], []),
        "pygmy-order": ([], [(9084, "0.0.0.0")]),
    }
    assert (unix, tcp) == expected[tapname]
