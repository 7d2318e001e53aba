"""
Read C{config.ini} into typed, validated settings.

Every problem is reported as one L{ConfigError} whose message names the
file, the section and the key, so start-up can print a single clear line
instead of a traceback.  L{parse} reads one section kind at a time:
L{cluster_config}, L{frontend_config}, L{replica_configs}, then
L{check_ports} across them.
"""

from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from pygmy.endpoints import absolute_paths, check_endpoint

_INTEGER = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]*)?|-?\.[0-9]+")

SERVICES = ("catalog", "order")
BALANCERS = ("round_robin", "least_connections", "least_latency")
DEFAULT_SECRET = "change-me"


class ConfigError(Exception):
    """
    The configuration file is missing, unreadable or invalid.
    """


def tcp_endpoint(port: int, bind: str) -> str:
    """
    The server endpoint string for TCP C{port} on address C{bind}: how a
    process listens when its section has no C{listen}.
    """
    return f"tcp:{port}:interface=" + bind.replace(":", r"\:")


class _Listening:
    """The HTTP listener of a section with C{port}, C{bind} and C{listen}."""

    @property
    def endpoint(self) -> str:
        """The server endpoint string its HTTP listener listens on."""
        return self.listen or tcp_endpoint(self.port, self.bind)

    @property
    def where(self) -> str:
        """Where its HTTP listener listens, for log lines."""
        return self.listen or f"{self.bind}:{self.port}"


@dataclass(frozen=True)
class ReplicaConfig(_Listening):
    """
    Where one replica of a service listens and is reached.

    @ivar listen: the section's server endpoint string, or C{None} for TCP
        on C{port} at C{bind}.
    """

    service: str
    name: str
    host: str
    port: int
    bind: str
    listen: str | None = None

    @property
    def url(self) -> str:
        """The base URL other processes use to reach this replica."""
        return f"http://{self.host}:{self.port}"

    @property
    def label(self) -> str:
        """A short name such as C{catalog:A}, used in logs and file names."""
        return f"{self.service}:{self.name}"


@dataclass(frozen=True)
class FrontendConfig(_Listening):
    """
    Settings of the front-end server.

    @ivar listen: the public HTTP listener's server endpoint string, or
        C{None} for TCP on C{port} at C{bind}.  The heartbeat listener is
        always TCP on C{heartbeat_port} at C{bind}, where the replicas
        connect.
    """

    host: str
    port: int
    heartbeat_port: int
    cache_size: int
    balancer: str
    bind: str
    listen: str | None = None

    @property
    def url(self) -> str:
        """The base URL of the public HTTP API."""
        return f"http://{self.host}:{self.port}"

    @property
    def heartbeat_endpoint(self) -> str:
        """The server endpoint string of the heartbeat listener."""
        return tcp_endpoint(self.heartbeat_port, self.bind)


@dataclass(frozen=True)
class ClusterConfig:
    """
    Settings shared by every process of the cluster.
    """

    secret: str
    data_dir: Path
    heartbeat_interval: float
    heartbeat_timeout: float
    request_timeout: float
    log_keep: int
    access_log: bool
    compact_interval: float = 10.0
    idempotency_keep: float = 86400.0


@dataclass(frozen=True)
class Config:
    """
    The whole validated C{config.ini}.
    """

    path: Path
    cluster: ClusterConfig
    frontend: FrontendConfig
    replicas: dict[str, tuple[ReplicaConfig, ...]] = field(default_factory=dict)

    def replica(self, service: str, name: str) -> ReplicaConfig:
        """
        Return the replica C{name} of C{service}.

        @raise ConfigError: if there is no such section.
        """
        for replica in self.replicas.get(service, ()):
            if replica.name == name:
                return replica
        known = ", ".join(r.name for r in self.replicas.get(service, ())) or "none"
        raise ConfigError(f"{self.path}: no section [{service}:{name}] (replicas: {known})")


class _Section:
    """
    Typed access to one section, with errors that name the section and key.
    """

    def __init__(self, path: Path, name: str, items: configparser.SectionProxy):
        self.path = path
        self._name = name
        self._items = items

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.path}: [{self._name}] {key}: {message}")

    def text(self, key: str, default: str | None = None) -> str:
        value = self._items.get(key, default)
        if value is None:
            raise self.error(key, "missing")
        value = value.strip()
        if not value:
            raise self.error(key, "empty")
        return value

    def optional(self, key: str) -> str | None:
        """The text of C{key}, or C{None} if the section does not have it."""
        return self.text(key) if key in self._items else None

    def boolean(self, key: str, default: bool) -> bool:
        raw = self.text(key, "true" if default else "false").lower()
        if raw in ("true", "yes", "on", "1"):
            return True
        if raw in ("false", "no", "off", "0"):
            return False
        raise self.error(key, f"{raw!r} is not true or false")

    def port(self, key: str) -> int:
        value = self.number(key, int, None)
        if not 1 <= value <= 65535:
            raise self.error(key, f"{value} is not a TCP port (1-65535)")
        return value

    def number(self, key, kind, default, minimum=None):
        raw = self.text(key, None if default is None else str(default))
        pattern = _INTEGER if kind is int else _DECIMAL
        if not pattern.fullmatch(raw):
            noun = "a whole number" if kind is int else "a number"
            raise self.error(key, f"{raw!r} is not {noun}")
        value = kind(raw)
        if minimum is not None and value < minimum:
            raise self.error(key, f"{raw} is below {minimum}")
        return value

    def listen(self) -> str | None:
        """
        The section's C{listen} server endpoint string, with relative paths
        made absolute, or C{None} without one; see L{check_endpoint}.
        """
        raw = self.optional("listen")
        if raw is None:
            return None
        description = absolute_paths(raw, self.path.resolve().parent)
        why = check_endpoint(description)
        if why is not None:
            raise self.error("listen", f"{raw!r} is not a Twisted server endpoint: {why}")
        return description


def load(path: str | os.PathLike, environ: dict | None = None) -> Config:
    """
    Read and validate the configuration file at C{path}.

    Relative C{data_dir} paths are taken relative to the file's directory.
    C{$PYGMY_SECRET} overrides C{[cluster] secret}.

    @raise ConfigError: on any problem, with a one-line message.
    """
    path = Path(path)
    environ = os.environ if environ is None else environ
    parser = configparser.ConfigParser(inline_comment_prefixes=(";", "#"), interpolation=None)
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except (configparser.Error, UnicodeDecodeError) as e:
        first = str(e).splitlines()[0]
        raise ConfigError(f"{path}: not a valid ini file: {first}") from None
    return parse(parser, path, environ)


def parse(parser: configparser.ConfigParser, path: Path, environ) -> Config:
    """
    Validate an already-read C{parser}; see L{load}.
    """
    cluster = cluster_config(_section(parser, path, "cluster"), environ)
    frontend = frontend_config(_section(parser, path, "frontend"))
    replicas = replica_configs(parser, path)
    check_ports(path, frontend, replicas)
    return Config(path=path, cluster=cluster, frontend=frontend, replicas=replicas)


def _section(parser: configparser.ConfigParser, path: Path, name: str) -> _Section:
    """The section C{name}, which must be there."""
    if not parser.has_section(name):
        raise ConfigError(f"{path}: section [{name}] is missing")
    return _Section(path, name, parser[name])


def cluster_config(cluster: _Section, environ) -> ClusterConfig:
    """
    C{[cluster]}: the secret (C{$PYGMY_SECRET} first), C{data_dir} from the
    file's directory, heartbeat timing, and the write log's upkeep.
    """
    data_dir = Path(cluster.text("data_dir", "var"))
    if not data_dir.is_absolute():
        data_dir = cluster.path.resolve().parent / data_dir
    interval = cluster.number("heartbeat_interval", float, 0.5, minimum=0.01)
    timeout = cluster.number("heartbeat_timeout", float, 1.5, minimum=0.01)
    if timeout <= interval:
        raise cluster.error(
            "heartbeat_timeout",
            f"{timeout} must be longer than heartbeat_interval ({interval})",
        )
    return ClusterConfig(
        secret=environ.get("PYGMY_SECRET") or cluster.text("secret", DEFAULT_SECRET),
        data_dir=data_dir,
        heartbeat_interval=interval,
        heartbeat_timeout=timeout,
        request_timeout=cluster.number("request_timeout", float, 5.0, minimum=0.01),
        log_keep=cluster.number("log_keep", int, 100_000, minimum=1),
        access_log=cluster.boolean("access_log", False),
        compact_interval=cluster.number("compact_interval", float, 10.0, minimum=0.01),
        idempotency_keep=_positive(cluster, "idempotency_keep", 86400.0),
    )


def _positive(section: _Section, key: str, default: float) -> float:
    """A number of seconds above zero (a C{minimum} would let C{0} through)."""
    value = section.number(key, float, default)
    if value <= 0:
        raise section.error(key, f"{value:g} must be more than 0 seconds")
    return value


def frontend_config(front: _Section) -> FrontendConfig:
    """C{[frontend]}: where it is reached and listens, its cache and balancer."""
    host = front.text("host", "127.0.0.1")
    balancer = front.text("balancer", "round_robin")
    if balancer not in BALANCERS:
        raise front.error("balancer", f"unknown balancer {balancer!r} (one of {', '.join(BALANCERS)})")
    return FrontendConfig(
        host=host,
        port=front.port("port"),
        heartbeat_port=front.port("heartbeat_port"),
        cache_size=front.number("cache_size", int, 1000, minimum=0),
        balancer=balancer,
        bind=front.text("bind", host),
        listen=front.listen(),
    )


def replica_configs(parser: configparser.ConfigParser, path: Path) -> dict[str, tuple[ReplicaConfig, ...]]:
    """
    Every C{[catalog:NAME]} and C{[order:NAME]} section, two or more per
    service; other sections with a colon are refused.
    """
    replicas: dict[str, list[ReplicaConfig]] = {service: [] for service in SERVICES}
    for name in parser.sections():
        service, colon, replica_name = name.partition(":")
        if not colon:
            continue
        if service not in SERVICES:
            raise ConfigError(f"{path}: [{name}] unknown service {service!r} (sections are catalog:NAME or order:NAME)")
        if not replica_name.isalnum():
            raise ConfigError(f"{path}: [{name}] replica name must be letters and digits")
        replicas[service].append(replica_config(_section(parser, path, name), service, replica_name))
    for service, found in replicas.items():
        if len(found) < 2:
            have = ", ".join(f"[{r.label}]" for r in found) or "none"
            raise ConfigError(f"{path}: [{service}:NAME] sections: {service} needs two or more replicas (found {have})")
    return {service: tuple(found) for service, found in replicas.items()}


def replica_config(section: _Section, service: str, name: str) -> ReplicaConfig:
    """One C{[service:NAME]} section: where the replica is reached and listens."""
    host = section.text("host", "127.0.0.1")
    return ReplicaConfig(service, name, host, section.port("port"), section.text("bind", host), section.listen())


def check_ports(path: Path, frontend: FrontendConfig, replicas) -> None:
    """
    Refuse two listeners on the same host and port.
    """
    seen = {
        (frontend.host, frontend.port): "[frontend] port",
    }
    if (frontend.host, frontend.heartbeat_port) in seen:
        raise ConfigError(
            f"{path}: [frontend] heartbeat_port: {frontend.heartbeat_port} is already used by [frontend] port"
        )
    seen[(frontend.host, frontend.heartbeat_port)] = "[frontend] heartbeat_port"
    for found in replicas.values():
        for replica in found:
            where = (replica.host, replica.port)
            if where in seen:
                raise ConfigError(f"{path}: [{replica.label}] port: {replica.port} is already used by {seen[where]}")
            seen[where] = f"[{replica.label}] port"
