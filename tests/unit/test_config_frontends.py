"""
Several front ends in C{config.ini} (DESIGN.md section 2): C{[frontend:NAME]}
sections, C{[coordinator]}, the rules between them, and
C{pygmy-frontend --name}.  Every broken file is one line naming the section
and key, and every process refuses it (they all read it with L{load}).
"""

from __future__ import annotations

import pytest

from pygmy.config import LONE_FRONTEND, ConfigError, CoordinatorConfig, load
from tests.config_texts import CLUSTER, REPLICAS, REPO_CONFIG, VALID, frontends, refused, write

COORDINATOR = "[coordinator]\netcd = http://127.0.0.1:2379, http://127.0.0.1:22379/\n"
SECOND = "[frontend:2]\nport = {}\nheartbeat_port = {}\n"
SEVERAL = CLUSTER + frontends("1", "2", "3") + COORDINATOR + REPLICAS


def test_one_frontend_as_today():
    config = load(REPO_CONFIG, environ={})
    assert list(config.frontends) == [LONE_FRONTEND]
    assert config.frontend is config.frontends[LONE_FRONTEND]
    assert (config.frontend.name, config.frontend.section) == ("frontend", "frontend")
    assert config.coordinator is None
    assert config.named(None) is config
    assert config.named("frontend").frontend == config.frontend


def test_several_frontends_with_a_coordinator(tmp_path):
    config = load(write(tmp_path, SEVERAL), environ={})
    assert list(config.frontends) == ["1", "2", "3"]
    assert config.frontends["2"].port == 9002
    assert config.frontends["2"].heartbeat_port == 9003
    assert config.frontends["2"].section == "frontend:2"
    assert config.frontends["3"].balancer == "round_robin"
    assert config.coordinator == CoordinatorConfig(("http://127.0.0.1:2379", "http://127.0.0.1:22379"), "/pygmy", 2.0)
    assert config.coordinator.endpoints == "http://127.0.0.1:2379,http://127.0.0.1:22379"
    # Each process sees the file as its front end does.
    assert config.named("2").frontend.port == 9002
    assert config.named("3").frontend.name == "3"
    assert config.frontend.name == "1"


def test_coordinator_keys(tmp_path):
    text = CLUSTER + frontends("a", "b") + COORDINATOR + "prefix = /shop/\nlease_ttl = 3\n" + REPLICAS
    coordinator = load(write(tmp_path, text), environ={}).coordinator
    assert (coordinator.prefix, coordinator.lease_ttl) == ("/shop", 3.0)
    assert isinstance(coordinator.lease_ttl, float)


def test_one_frontend_may_use_a_coordinator(tmp_path):
    config = load(write(tmp_path, VALID + COORDINATOR), environ={})
    assert config.coordinator.etcd[0] == "http://127.0.0.1:2379"
    assert list(config.frontends) == ["frontend"]


def test_one_named_frontend_needs_no_coordinator(tmp_path):
    config = load(write(tmp_path, CLUSTER + frontends("only") + REPLICAS), environ={})
    assert config.frontend.name == "only"
    assert config.named(None).frontend.name == "only"


def test_frontend_and_named_frontends_never_mix(tmp_path):
    message = refused(tmp_path, VALID + frontends("2") + COORDINATOR)
    assert "[frontend] and [frontend:2]" in message


def test_several_frontends_need_etcd(tmp_path):
    message = refused(tmp_path, CLUSTER + frontends("1", "2") + REPLICAS)
    assert "[coordinator] etcd: missing" in message
    assert "[frontend:1], [frontend:2]" in message


def test_a_coordinator_without_etcd(tmp_path):
    message = refused(tmp_path, CLUSTER + frontends("1", "2") + "[coordinator]\nprefix = /p\n" + REPLICAS)
    assert "[coordinator] etcd: missing" in message


@pytest.mark.parametrize(
    "etcd, why",
    [
        ("127.0.0.1:2379", "not http"),
        ("ftp://127.0.0.1:2379", "not http"),
        ("http://", "no host"),
        ("http://127.0.0.1:99999", "bad port"),
        ("http://127.0.0.1:2379/v3", "only scheme, host and port"),
        ("http://127.0.0.1:2379,", "empty"),
        ("http://a:1, http://b:x", "bad port"),
    ],
)
def test_a_bad_etcd_url(tmp_path, etcd, why):
    text = CLUSTER + frontends("1", "2") + f"[coordinator]\netcd = {etcd}\n" + REPLICAS
    message = refused(tmp_path, text)
    assert "[coordinator] etcd:" in message
    assert why in message


def test_https_is_an_etcd_url(tmp_path):
    text = CLUSTER + frontends("1", "2") + "[coordinator]\netcd = https://etcd.example:2379\n" + REPLICAS
    assert load(write(tmp_path, text), environ={}).coordinator.etcd == ("https://etcd.example:2379",)


@pytest.mark.parametrize("ttl", ["1.5", "1.0", "0"])
def test_lease_ttl_must_be_longer_than_heartbeat_timeout(tmp_path, ttl):
    message = refused(tmp_path, SEVERAL.replace(COORDINATOR, COORDINATOR + f"lease_ttl = {ttl}\n"))
    assert "[coordinator] lease_ttl:" in message


def test_a_bad_prefix(tmp_path):
    message = refused(tmp_path, SEVERAL.replace(COORDINATOR, COORDINATOR + "prefix = pygmy\n"))
    assert "[coordinator] prefix:" in message


@pytest.mark.parametrize(
    "text, where, used_by",
    [
        (
            frontends("1") + SECOND.format(9000, 9100),
            "[frontend:2] port",
            "[frontend:1] port",
        ),
        (
            frontends("1") + SECOND.format(9100, 9001),
            "[frontend:2] heartbeat_port",
            "[frontend:1] heartbeat_port",
        ),
        (
            frontends("1") + SECOND.format(8081, 9100),
            "[catalog:A] port",
            "[frontend:2] port",
        ),
    ],
)
def test_duplicate_ports_across_frontends(tmp_path, text, where, used_by):
    message = refused(tmp_path, CLUSTER + text + COORDINATOR + REPLICAS)
    assert f"{where}: " in message
    assert f"already used by {used_by}" in message


def test_a_bad_key_of_a_named_frontend_names_its_section(tmp_path):
    message = refused(tmp_path, SEVERAL.replace("[frontend:2]\nport = 9002\n", "[frontend:2]\nport = x\n"))
    assert "[frontend:2] port:" in message
    message = refused(tmp_path, SEVERAL.replace("[frontend:3]\n", "[frontend:3]\nbalancer = fastest\n"))
    assert "[frontend:3] balancer:" in message


def test_a_bad_frontend_name(tmp_path):
    message = refused(tmp_path, CLUSTER + frontends("a b", "c") + COORDINATOR + REPLICAS)
    assert "[frontend:a b]" in message


def test_no_frontend_at_all(tmp_path):
    assert "section [frontend] is missing" in refused(tmp_path, CLUSTER + COORDINATOR + REPLICAS)


def test_named_refuses_a_missing_or_unknown_name(tmp_path):
    config = load(write(tmp_path, SEVERAL), environ={})
    with pytest.raises(ConfigError) as info:
        config.named(None)
    assert "choose one with --name (1, 2, 3)" in str(info.value)
    with pytest.raises(ConfigError) as info:
        config.named("9")
    assert "no section [frontend:9] (front ends: 1, 2, 3)" in str(info.value)


# The plugins' options


def parse(options, *args):
    options.parseOptions(list(args))
    return options


def test_pygmy_frontend_name(tmp_path):
    from pygmy.frontend.tap import Options

    path = str(write(tmp_path, SEVERAL))
    assert parse(Options(), "--config", path, "--name", "2").config.frontend.port == 9002
    with pytest.raises(SystemExit) as info:
        parse(Options(), "--config", path)
    assert str(info.value).startswith("pygmy-frontend: ")
    assert "--name (1, 2, 3)" in str(info.value)
    with pytest.raises(SystemExit) as info:
        parse(Options(), "--config", path, "--name", "7")
    assert "front ends: 1, 2, 3" in str(info.value)


def test_pygmy_frontend_without_name_for_one_frontend(tmp_path):
    from pygmy.frontend.tap import Options

    path = str(write(tmp_path, VALID))
    assert parse(Options(), "--config", path).config.frontend.name == "frontend"


@pytest.mark.parametrize("module", ["pygmy.catalog.tap", "pygmy.order.tap", "pygmy.frontend.tap"])
def test_every_process_refuses_several_frontends_without_etcd(tmp_path, module):
    import importlib

    path = str(write(tmp_path, CLUSTER + frontends("1", "2") + REPLICAS))
    args = ["--config", path] + (["--name", "1"] if module == "pygmy.frontend.tap" else ["--replica", "A"])
    with pytest.raises(SystemExit) as info:
        parse(importlib.import_module(module).Options(), *args)
    assert "[coordinator] etcd: missing" in str(info.value)
    assert "\n" not in str(info.value)
