"""
Checks of the Docker files without a Docker engine: C{compose.yaml} parses
and runs the plugin commands that exist, with the mounted
C{docker/config.ini} (which loads, and whose hosts are the compose service
names): three front ends by C{--name}, two replicas of each service, a
three-member etcd that is the config's C{[coordinator]}, and HAProxy, the
only published port (on 127.0.0.1), whose C{docker/haproxy.cfg} is
docs/haproxy.cfg for the compose front ends; each replica and etcd member
keeps its data on a named volume of its own; the C{Dockerfile} runs twistd
in the foreground as a non-root user.
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
from tests.haproxy import TEMPLATE, render

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
DOCKER_CONFIG = REPO / "docker" / "config.ini"
DOCKER_HAPROXY = REPO / "docker" / "haproxy.cfg"
SECRET = "a-secret-from-the-environment"
#: The Pygmy processes compose.yaml runs: service name -> (role, replica or front-end name).
EXPECTED = {
    "frontend-1": ("frontend", "1"),
    "frontend-2": ("frontend", "2"),
    "frontend-3": ("frontend", "3"),
    "catalog-a": ("catalog", "A"),
    "catalog-b": ("catalog", "B"),
    "order-a": ("order", "A"),
    "order-b": ("order", "B"),
}
ETCD = ("etcd-1", "etcd-2", "etcd-3")


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
    """C{(role, replica or name)} of a compose command such as C{pygmy-order ... --replica B}."""
    assert command[0].startswith("pygmy-"), command
    role = command[0].removeprefix("pygmy-")
    return role, option(command, "--name" if role == "frontend" else "--replica")


def pygmy_services(compose: dict) -> dict[str, dict]:
    """The services that run a Pygmy process (not etcd, not HAProxy)."""
    return {name: s for name, s in compose["services"].items() if str(s.get("image", "")).startswith("pygmy")}


def etcd_flags(service: dict) -> dict[str, str]:
    """An etcd service's settings: its C{--flag=value} words and C{ETCD_FLAG} variables, as flag -> value."""
    flags = {key.removeprefix("ETCD_").lower().replace("_", "-"): str(v) for key, v in service["environment"].items()}
    for word in service["command"][1:]:
        flag, _, value = word.removeprefix("--").partition("=")
        assert flag not in flags, f"{flag} is set twice"
        flags[flag] = value
    return flags


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


def test_compose_runs_three_front_ends_two_replicas_of_each_etcd_and_haproxy(compose):
    assert set(compose["services"]) == set(EXPECTED) | set(ETCD) | {"haproxy"}
    assert set(pygmy_services(compose)) == set(EXPECTED)
    for name, service in pygmy_services(compose).items():
        assert role_of(service["command"]) == EXPECTED[name], name


def test_compose_commands_name_existing_plugins(compose, config):
    """Each command is one twistd knows, with --config the mounted file and a real --replica."""
    tapnames = {maker.tapname for maker in getPlugins(IServiceMaker)}
    for name, service in pygmy_services(compose).items():
        command = service["command"]
        assert isinstance(command, list), f"{name}: use the exec form"
        assert command[0] in tapnames, (name, command[0], sorted(tapnames))
        assert option(command, "--config") == mounted_config(service), name
        role, replica = role_of(command)
        if role == "frontend":
            assert config.named(replica).frontend.name == replica, name
            assert option(command, "--replica") is None, name
        else:
            assert config.replica(role, replica).label == f"{role}:{replica}"


def test_compose_commands_parse_with_the_plugins_options(compose, monkeypatch):
    """Each plugin's own Options accept the command (pointed at the file in the repository)."""
    monkeypatch.setenv("PYGMY_SECRET", SECRET)
    makers = {maker.tapname: maker for maker in getPlugins(IServiceMaker)}
    for _name, service in pygmy_services(compose).items():
        command = service["command"]
        argv = [str(DOCKER_CONFIG) if arg == option(command, "--config") else arg for arg in command[1:]]
        options = makers[command[0]].options()
        options.parseOptions(argv)
        assert options.config.cluster.secret == SECRET


def test_every_process_of_the_config_runs_in_compose(compose, config):
    """No section without its container, and no container without its section."""
    sections = {("frontend", name) for name in config.frontends} | {
        (service, replica.name) for service, found in config.replicas.items() for replica in found
    }
    assert {role_of(s["command"]) for s in pygmy_services(compose).values()} == sections


def test_docker_config_hosts_are_compose_service_names(compose, config):
    """Each process is reached at its compose service's name and listens on every interface."""
    by_role = {role_of(s["command"]): name for name, s in pygmy_services(compose).items()}
    assert len(config.frontends) == 3
    for name, front in config.frontends.items():
        assert front.host == by_role["frontend", name], name
        assert front.bind == "0.0.0.0", name
    for service, found in config.replicas.items():
        for replica in found:
            assert replica.host == by_role[service, replica.name], replica
            assert replica.bind == "0.0.0.0", replica


def test_docker_config_takes_the_secret_from_the_environment(compose, config):
    assert config.cluster.secret == SECRET
    for name, service in pygmy_services(compose).items():
        value = str(service["environment"]["PYGMY_SECRET"])
        assert re.fullmatch(r"\$\{PYGMY_SECRET(:?[?-].*)?\}", value), (name, value)


def test_each_replica_has_a_named_volume_of_its_own(compose, config):
    data_dir = str(config.cluster.data_dir)
    assert config.cluster.data_dir.is_absolute()
    named = set(compose.get("volumes") or {})
    seen = {}
    for name, service in compose["services"].items():
        if name.startswith("frontend") or name == "haproxy":
            assert not service.get("volumes"), f"{name} keeps nothing of its own"
            continue
        where = etcd_flags(service)["data-dir"] if name in ETCD else data_dir
        data = [str(v).split(":")[0] for v in service.get("volumes", []) if str(v).split(":")[1:2] == [where]]
        assert len(data) == 1, (name, service.get("volumes"))
        assert data[0] in named, f"{name}: {data[0]} is not a named volume"
        assert data[0] not in seen, f"{name} shares {data[0]} with {seen.get(data[0])}"
        seen[data[0]] = name
    assert len(seen) == 4 + len(ETCD)


def test_only_haproxy_is_published_and_on_the_loopback(compose, config):
    for name, service in compose["services"].items():
        ports = [str(p) for p in service.get("ports", [])]
        if name == "haproxy":
            assert ports == ["127.0.0.1:8080:8080"], ports
        else:
            assert ports == [], name


def test_the_etcd_members_are_the_coordinator_and_one_cluster(compose, config):
    members = {name: etcd_flags(compose["services"][name]) for name in ETCD}
    advertised = [members[name]["advertise-client-urls"] for name in ETCD]
    assert tuple(advertised) == config.coordinator.etcd
    peers = {f"{name}={flags['initial-advertise-peer-urls']}" for name, flags in members.items()}
    for name, flags in members.items():
        assert flags["name"] == name and compose["services"][name]["command"][0] == "etcd"
        assert set(flags["initial-cluster"].split(",")) == peers, name
        assert flags["initial-cluster-state"] == "new"
        assert flags["listen-client-urls"] == "http://0.0.0.0:2379"
        assert flags["advertise-client-urls"] == f"http://{name}:2379"
    # An election well inside the leadership lease.
    assert float(members["etcd-1"]["election-timeout"]) / 1000 < config.coordinator.lease_ttl
    for name, service in pygmy_services(compose).items():
        if name.startswith("frontend"):
            assert set(service["depends_on"]) == set(ETCD), name


def test_haproxy_runs_docs_haproxy_cfg_for_the_compose_front_ends(compose, config):
    """docker/haproxy.cfg is docs/haproxy.cfg with the compose addresses and Docker's DNS, nothing else."""
    haproxy = compose["services"]["haproxy"]
    [mounted] = haproxy["configs"]
    assert mounted["target"] == "/usr/local/etc/haproxy/haproxy.cfg"
    assert compose["configs"][mounted["source"]]["file"] == "./docker/haproxy.cfg"
    assert set(haproxy["depends_on"]) == {f"frontend-{name}" for name in config.frontends}
    text = DOCKER_HAPROXY.read_text(encoding="utf-8")
    body, _, resolvers = text.partition("\n# Docker's embedded DNS")
    assert "resolvers docker\n    nameserver dns 127.0.0.11:53" in resolvers
    template = TEMPLATE.read_text(encoding="utf-8")
    template = template[template.index("\nglobal") + 1 :]
    servers = {f"frontend-{name}": f"{front.host}:{front.port}" for name, front in config.frontends.items()}
    expected = render(template, ":8080", servers, ["resolvers", "docker", "init-addr", "last,libc,none"])
    assert body[body.index("\nglobal") + 1 :] == expected


def test_dockerfile_runs_twistd_in_the_foreground():
    [entrypoint] = instruction("ENTRYPOINT")
    assert exec_form(entrypoint)[:1] == ["twistd"]
    assert "-n" in exec_form(entrypoint)
    assert "--pidfile=" in exec_form(entrypoint)
    [cmd] = instruction("CMD")
    assert exec_form(cmd)[0] == "pygmy-frontend"


def test_dockerfile_default_command_uses_the_mounted_config(compose, config):
    [cmd] = instruction("CMD")
    assert option(exec_form(cmd), "--config") == mounted_config(compose["services"]["frontend-1"])
    assert option(exec_form(cmd), "--name") in config.frontends


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


def test_haproxy_accepts_docker_haproxy_cfg():
    """Valid for HAProxy (off the compose network its servers do not resolve: a warning, not an error)."""
    import subprocess

    from tests.haproxy import haproxy_binary

    binary = haproxy_binary()
    if binary is None:
        pytest.skip("no haproxy: apt-get install haproxy (.ci/run installs it)")
    checked = subprocess.run([binary, "-c", "-f", str(DOCKER_HAPROXY)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
