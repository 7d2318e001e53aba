"""
Checks of the Docker files without a Docker engine: C{compose.yaml} parses
and runs the plugin commands that exist, with the mounted
C{docker/config.ini} (which loads, and whose hosts are the compose service
names); each replica keeps its data on a named volume of its own; the
C{Dockerfile} runs twistd in the foreground as a non-root user.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml
from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins

from pygmy.config import load

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
DOCKER_CONFIG = REPO / "docker" / "config.ini"
SECRET = "a-secret-from-the-environment"
#: The processes compose.yaml runs: service name -> (role, replica).
EXPECTED = {
    "frontend": ("frontend", None),
    "catalog-a": ("catalog", "A"),
    "catalog-b": ("catalog", "B"),
    "order-a": ("order", "A"),
    "order-b": ("order", "B"),
}


@pytest.fixture(scope="module")
def compose() -> dict:
    """compose.yaml, parsed (YAML merge keys resolved)."""
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def config():
    """docker/config.ini as the processes load it, with $PYGMY_SECRET set."""
    return load(DOCKER_CONFIG, environ={"PYGMY_SECRET": SECRET})


def option(command: list[str], name: str) -> str | None:
    """The value after C{name} in C{command}, or None."""
    if name not in command:
        return None
    index = command.index(name)
    assert index + 1 < len(command), command
    return command[index + 1]


def role_of(command: list[str]) -> tuple[str, str | None]:
    """C{(role, replica)} of a compose command such as C{pygmy-order ... --replica B}."""
    assert command[0].startswith("pygmy-"), command
    return command[0].removeprefix("pygmy-"), option(command, "--replica")


def mounted_config(service: dict) -> str:
    """Where C{service} finds docker/config.ini inside its container."""
    for entry in service.get("configs", []):
        if isinstance(entry, dict) and entry.get("source") == "pygmy-config":
            return entry["target"]
    for entry in service.get("volumes", []):
        source, _, target = str(entry).partition(":")
        if Path(source).name == "config.ini":
            return target.split(":")[0]
    raise AssertionError(f"config.ini is not mounted: {service}")


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as C{(INSTRUCTION, arguments)}, continuations joined."""
    instructions, current = [], ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("#") or (not line.strip() and not current):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        keyword, _, arguments = current.strip().partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        current = ""
    return instructions


def instruction(name: str) -> list[str]:
    """The arguments of every C{name} instruction, in order."""
    return [arguments for keyword, arguments in dockerfile() if keyword == name]


def exec_form(arguments: str) -> list[str]:
    """An instruction's arguments in exec (JSON array) form, or shell words."""
    if arguments.startswith("["):
        return json.loads(arguments)
    return shlex.split(arguments)


def test_compose_runs_the_front_end_and_two_replicas_of_each(compose):
    assert set(compose["services"]) == set(EXPECTED)
    for name, service in compose["services"].items():
        assert role_of(service["command"]) == EXPECTED[name], name


def test_compose_commands_name_existing_plugins(compose, config):
    """Each command is one twistd knows, with --config the mounted file and a real --replica."""
    tapnames = {maker.tapname for maker in getPlugins(IServiceMaker)}
    for name, service in compose["services"].items():
        command = service["command"]
        assert isinstance(command, list), f"{name}: use the exec form"
        assert command[0] in tapnames, (name, command[0], sorted(tapnames))
        assert option(command, "--config") == mounted_config(service), name
        role, replica = role_of(command)
        if role == "frontend":
            assert replica is None, name
        else:
            assert config.replica(role, replica).label == f"{role}:{replica}"


def test_compose_commands_parse_with_the_plugins_options(compose, monkeypatch):
    """Each plugin's own Options accept the command (pointed at the file in the repository)."""
    monkeypatch.setenv("PYGMY_SECRET", SECRET)
    makers = {maker.tapname: maker for maker in getPlugins(IServiceMaker)}
    for _name, service in compose["services"].items():
        command = service["command"]
        argv = [str(DOCKER_CONFIG) if arg == option(command, "--config") else arg for arg in command[1:]]
        options = makers[command[0]].options()
        options.parseOptions(argv)
        assert options.config.cluster.secret == SECRET


def test_every_process_of_the_config_runs_in_compose(compose, config):
    """No section without its container, and no container without its section."""
    sections = {("frontend", None)} | {
        (service, replica.name) for service, found in config.replicas.items() for replica in found
    }
    assert {role_of(s["command"]) for s in compose["services"].values()} == sections


def test_docker_config_hosts_are_compose_service_names(compose, config):
    """Each process is reached at its compose service's name and listens on every interface."""
    by_role = {role_of(s["command"]): name for name, s in compose["services"].items()}
    assert config.frontend.host == by_role["frontend", None]
    assert config.frontend.bind == "0.0.0.0"
    for service, found in config.replicas.items():
        for replica in found:
            assert replica.host == by_role[service, replica.name], replica
            assert replica.bind == "0.0.0.0", replica


def test_docker_config_takes_the_secret_from_the_environment(compose, config):
    assert config.cluster.secret == SECRET
    for name, service in compose["services"].items():
        value = str(service["environment"]["PYGMY_SECRET"])
        assert re.fullmatch(r"\$\{PYGMY_SECRET(:?[?-].*)?\}", value), (name, value)


def test_each_replica_has_a_named_volume_of_its_own(compose, config):
    data_dir = str(config.cluster.data_dir)
    assert config.cluster.data_dir.is_absolute()
    named = set(compose.get("volumes") or {})
    seen = {}
    for name, service in compose["services"].items():
        if name == "frontend":
            continue
        data = [str(v).split(":")[0] for v in service.get("volumes", []) if str(v).split(":")[1:2] == [data_dir]]
        assert len(data) == 1, (name, service.get("volumes"))
        assert data[0] in named, f"{name}: {data[0]} is not a named volume"
        assert data[0] not in seen, f"{name} shares {data[0]} with {seen.get(data[0])}"
        seen[data[0]] = name
    assert len(seen) == 4


def test_only_the_front_end_is_published(compose, config):
    for name, service in compose["services"].items():
        ports = [str(p) for p in service.get("ports", [])]
        if name == "frontend":
            assert ports and all(p.endswith(f":{config.frontend.port}") for p in ports), ports
        else:
            assert ports == [], name


def test_dockerfile_runs_twistd_in_the_foreground():
    [entrypoint] = instruction("ENTRYPOINT")
    assert exec_form(entrypoint)[:1] == ["twistd"]
    assert "-n" in exec_form(entrypoint)
    assert "--pidfile=" in exec_form(entrypoint)
    [cmd] = instruction("CMD")
    assert exec_form(cmd)[0] == "pygmy-frontend"


def test_dockerfile_default_command_uses_the_mounted_config(compose):
    [cmd] = instruction("CMD")
    assert option(exec_form(cmd), "--config") == mounted_config(compose["services"]["frontend"])


def test_dockerfile_base_user_volume_and_ports(config):
    [base] = instruction("FROM")
    assert base.startswith("python:3.11-slim")
    users = instruction("USER")
    assert users and users[-1] not in ("root", "0"), users
    assert any(str(config.cluster.data_dir) in exec_form(v) for v in instruction("VOLUME"))
    exposed = {int(port.split("/")[0]) for line in instruction("EXPOSE") for port in line.split()}
    wanted = {config.frontend.port, config.frontend.heartbeat_port}
    wanted |= {r.port for found in config.replicas.values() for r in found}
    assert wanted <= exposed, wanted - exposed
    assert any("pip install ." in run for run in instruction("RUN"))


def test_dockerfile_copies_what_exists_and_dockerignore_keeps_the_rest_out():
    for arguments in instruction("COPY"):
        words = [w for w in exec_form(arguments) if not w.startswith("--")]
        for source in words[:-1]:
            assert (REPO / source).exists(), source
    ignored = set((REPO / ".dockerignore").read_text(encoding="utf-8").split())
    assert {".git", ".venv", "var"} <= ignored
