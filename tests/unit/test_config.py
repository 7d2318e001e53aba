"""
Unit tests of L{pygmy.config.load}: the repository's C{config.ini}
loads with the documented typed values, and every broken file is refused
with one L{ConfigError<pygmy.config.ConfigError>} line naming the section and key.
The C{listen} key is tested in C{tests/unit/test_config_listen.py}.
"""

from __future__ import annotations

import pytest

from pygmy.config import ConfigError, load
from tests.config_texts import CLUSTER, FRONTEND, REPLICAS, REPO_CONFIG, VALID, refused, write


def test_repository_config_loads():
    """The shipped config.ini gives the documented typed values."""
    config = load(REPO_CONFIG, environ={})
    assert config.frontend.host == "127.0.0.1"
    assert config.frontend.port == 8080
    assert config.frontend.heartbeat_port == 8090
    assert config.frontend.cache_size == 1000
    assert config.frontend.balancer == "round_robin"
    assert config.frontend.url == "http://127.0.0.1:8080"
    assert config.cluster.secret == "change-me"
    assert config.cluster.heartbeat_interval == 0.5
    assert config.cluster.heartbeat_timeout == 1.5
    assert isinstance(config.cluster.heartbeat_interval, float)
    assert config.cluster.data_dir == REPO_CONFIG.parent / "var"
    ports = {service: {r.name: r.port for r in found} for service, found in config.replicas.items()}
    assert ports == {"catalog": {"A": 8081, "B": 8082}, "order": {"A": 8083, "B": 8084}}
    assert config.replica("order", "B").url == "http://127.0.0.1:8084"
    assert config.replica("catalog", "A").label == "catalog:A"


def test_data_dir_relative_to_config_directory(tmp_path, monkeypatch):
    """A relative data_dir is taken from the file's directory (not the cwd); absolute is kept."""
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    sub = tmp_path / "etc"
    sub.mkdir()
    config = load(write(sub, VALID), environ={})
    assert config.cluster.data_dir == sub.resolve() / "var"
    assert config.cluster.data_dir.is_absolute()
    target = tmp_path / "data"
    text = VALID.replace("data_dir = var", f"data_dir = {target}")
    assert load(write(tmp_path, text), environ={}).cluster.data_dir == target


def test_secret_from_environment(tmp_path):
    """$PYGMY_SECRET overrides [cluster] secret."""
    path = write(tmp_path, VALID)
    assert load(path, environ={"PYGMY_SECRET": "s3cret"}).cluster.secret == "s3cret"
    assert load(path, environ={}).cluster.secret == "change-me"


def test_three_replicas_per_service(tmp_path):
    """Any number of replicas (here three, with arbitrary names) is accepted."""
    extra = "[catalog:C]\nport = 8085\n[order:Zed1]\nport = 8086\n"
    config = load(write(tmp_path, VALID + extra), environ={})
    assert [r.name for r in config.replicas["catalog"]] == ["A", "B", "C"]
    assert [r.name for r in config.replicas["order"]] == ["A", "B", "Zed1"]
    assert config.replica("order", "Zed1").port == 8086


def test_unknown_replica_name(tmp_path):
    """Config.replica refuses a name with no section, naming the section."""
    config = load(write(tmp_path, VALID), environ={})
    with pytest.raises(ConfigError) as info:
        config.replica("catalog", "Q")
    assert "[catalog:Q]" in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_balancer(tmp_path):
    message = refused(tmp_path, VALID.replace("round_robin", "random"))
    assert "[frontend]" in message
    assert "balancer" in message
    assert "'random'" in message


@pytest.mark.parametrize(
    "old, new, where",
    [
        ("[order:B]\nport = 8084\n", "[order:B]\nhost = 127.0.0.1\n", "[order:B] port"),
        ("port = 8080\n", "", "[frontend] port"),
        ("heartbeat_port = 8090\n", "", "[frontend] heartbeat_port"),
    ],
)
def test_missing_port(tmp_path, old, new, where):
    message = refused(tmp_path, VALID.replace(old, new))
    assert where in message
    assert "missing" in message


@pytest.mark.parametrize("value", ["http", "80.5", "1e3", ""])
def test_non_numeric_port(tmp_path, value):
    message = refused(tmp_path, VALID.replace("port = 8082", f"port = {value}"))
    assert "[catalog:B] port" in message


@pytest.mark.parametrize("value", ["0", "-1", "65536", "100000"])
def test_port_out_of_range(tmp_path, value):
    message = refused(tmp_path, VALID.replace("port = 8083", f"port = {value}"))
    assert "[order:A] port" in message
    assert "1-65535" in message


@pytest.mark.parametrize(
    "old, new, first, second",
    [
        ("port = 8084", "port = 8081", "[order:B] port", "[catalog:A] port"),
        ("heartbeat_port = 8090", "heartbeat_port = 8080", "[frontend] heartbeat_port", "[frontend] port"),
        ("port = 8082", "port = 8090", "[catalog:B] port", "[frontend] heartbeat_port"),
    ],
)
def test_duplicate_port(tmp_path, old, new, first, second):
    """Two listeners on one host and port: the later names the earlier."""
    message = refused(tmp_path, VALID.replace(old, new))
    assert message.index(first) < message.index(second)
    assert "already used" in message


def replicas_without(prefix: str) -> str:
    """L{REPLICAS} without the sections whose header starts with C{prefix}."""
    lines = REPLICAS.splitlines(keepends=True)
    sections = ["".join(lines[i : i + 2]) for i in range(0, len(lines), 2)]
    return "".join(section for section in sections if not section.startswith(prefix))


@pytest.mark.parametrize("service", ["catalog", "order"])
def test_no_replicas_for_a_service(tmp_path, service):
    message = refused(tmp_path, CLUSTER + FRONTEND + replicas_without(f"[{service}:"))
    assert f"[{service}:NAME]" in message
    assert "two or more replicas (found none)" in message


@pytest.mark.parametrize("service", ["catalog", "order"])
def test_one_replica_is_not_enough(tmp_path, service):
    message = refused(tmp_path, CLUSTER + FRONTEND + replicas_without(f"[{service}:B]"))
    assert f"{service} needs two or more replicas (found [{service}:A])" in message


@pytest.mark.parametrize("value", ["inf", "8_0", "\uff18", "1e3", "nan"])
def test_numbers_are_plain_decimal(tmp_path, value):
    message = refused(tmp_path, VALID.replace("heartbeat_timeout = 1.5", f"heartbeat_timeout = {value}"))
    assert "[cluster] heartbeat_timeout" in message


def test_unknown_service_section(tmp_path):
    message = refused(tmp_path, VALID + "[payment:A]\nport = 8085\n")
    assert "[payment:A]" in message
    assert "'payment'" in message


def test_missing_frontend_section(tmp_path):
    message = refused(tmp_path, CLUSTER + REPLICAS)
    assert "[frontend]" in message
    assert "missing" in message


@pytest.mark.parametrize("name", ["nope.ini", "."])
def test_missing_or_unreadable_file(tmp_path, name):
    """A missing file, or a directory, cannot be read."""
    path = tmp_path / name
    with pytest.raises(ConfigError) as info:
        load(path, environ={})
    assert str(path) in str(info.value)
    assert "cannot read" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        "port = 8080\n[cluster]\n",  # no section header first
        "[cluster\nsecret = x\n",  # broken header
        "[cluster]\nthis line has no equals sign\n",
        VALID + "[catalog:A]\nport = 9999\n",  # duplicate section
    ],
)
def test_not_an_ini_file(tmp_path, text):
    message = refused(tmp_path, text)
    assert "not a valid ini file" in message


def test_binary_file(tmp_path):
    path = tmp_path / "config.ini"
    path.write_bytes(b"\xff\xfe\x00garbage\x80")
    with pytest.raises(ConfigError) as info:
        load(path, environ={})
    assert "not a valid ini file" in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("timeout", ["0.5", "0.4"])
def test_heartbeat_timeout_not_longer_than_interval(tmp_path, timeout):
    text = VALID.replace("heartbeat_timeout = 1.5", f"heartbeat_timeout = {timeout}")
    message = refused(tmp_path, text)
    assert "[cluster] heartbeat_timeout" in message
    assert "heartbeat_interval" in message


@pytest.mark.parametrize("value", ["nan", "abc", "0", "-1"])
def test_bad_heartbeat_interval(tmp_path, value):
    text = VALID.replace("heartbeat_interval = 0.5", f"heartbeat_interval = {value}")
    message = refused(tmp_path, text)
    assert "[cluster] heartbeat_interval" in message


def test_negative_cache_size(tmp_path):
    message = refused(tmp_path, VALID.replace("cache_size = 1000", "cache_size = -1"))
    assert "[frontend] cache_size" in message
    assert "-1" in message


def test_zero_cache_size_allowed(tmp_path):
    """0 turns the cache off and is valid."""
    text = VALID.replace("cache_size = 1000", "cache_size = 0")
    assert load(write(tmp_path, text), environ={}).frontend.cache_size == 0


def test_optional_keys_default(tmp_path):
    """Only ports are required in [frontend]; the rest have documented defaults."""
    text = CLUSTER + "[frontend]\nport = 8080\nheartbeat_port = 8090\n" + REPLICAS
    config = load(write(tmp_path, text), environ={})
    assert config.frontend.cache_size == 1000
    assert config.frontend.balancer == "round_robin"
    assert config.frontend.host == "127.0.0.1"
    assert config.replica("catalog", "A").host == "127.0.0.1"


def test_compact_interval(tmp_path):
    """[cluster] compact_interval: seconds between log compactions, 10 by default."""
    assert load(write(tmp_path, VALID), environ={}).cluster.compact_interval == 10.0
    text = VALID.replace("[cluster]\n", "[cluster]\ncompact_interval = 0.25\n")
    assert load(write(tmp_path, text), environ={}).cluster.compact_interval == 0.25


@pytest.mark.parametrize("value", ["0", "-1", "0.001", "soon", ""])
def test_bad_compact_interval(tmp_path, value):
    message = refused(tmp_path, VALID.replace("[cluster]\n", f"[cluster]\ncompact_interval = {value}\n"))
    assert "[cluster] compact_interval" in message


@pytest.mark.parametrize("value, seconds", [(None, 86400.0), ("3600", 3600.0), ("0.5", 0.5)])
def test_idempotency_keep(tmp_path, value, seconds):
    """[cluster] idempotency_keep: seconds a request id is remembered, a day by default."""
    text = VALID if value is None else VALID.replace("[cluster]\n", f"[cluster]\nidempotency_keep = {value}\n")
    assert load(write(tmp_path, text), environ={}).cluster.idempotency_keep == seconds


@pytest.mark.parametrize("value", ["0", "0.0", "-1", "a day", "1e5", ""])
def test_bad_idempotency_keep(tmp_path, value):
    message = refused(tmp_path, VALID.replace("[cluster]\n", f"[cluster]\nidempotency_keep = {value}\n"))
    assert "[cluster] idempotency_keep" in message
