"""
Read C{config.ini} into typed, validated settings.

Every problem is reported as one L{ConfigError} whose message names the
file, the section and the key, so start-up can print a single clear line
instead of a traceback.  L{parse} reads one section kind at a time:
L{cluster_config}, L{frontend_configs} (one C{[frontend]}, or several
C{[frontend:NAME]}), L{replica_configs}, L{coordinator_config}, then
L{check_ports} across them.
"""

from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from pygmy.endpoints import absolute_paths, check_endpoint
from pygmy.ini import ConfigError, Section, section_of

SERVICES = ("catalog", "order")
BALANCERS = ("round_robin", "least_connections", "least_latency")
DEFAULT_SECRET = "change-me"
#: The name of the lone C{[frontend]} (C{[frontend:NAME]} front ends are NAME).
LONE_FRONTEND = "frontend"
_NAME = re.compile(r"[A-Za-z0-9_-]+")


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
    #: NAME of C{[frontend:NAME]}; L{LONE_FRONTEND} for the lone C{[frontend]}.
    name: str = LONE_FRONTEND
    #: The section it was read from, for messages.
    section: str = "frontend"

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
class CoordinatorConfig:
    """
    C{[coordinator]}: the etcd cluster where several front ends keep their
    views and elect the view manager.

    @ivar etcd: the members' base URLs (C{http://127.0.0.1:2379}), in order.
    @ivar prefix: every key is under it, without a trailing C{/}.
    @ivar lease_ttl: seconds of the view manager's leadership lease.
    """

    etcd: tuple[str, ...]
    prefix: str = "/pygmy"
    lease_ttl: float = 2.0

    @property
    def endpoints(self) -> str:
        """The members' URLs, comma-separated."""
        return ",".join(self.etcd)


@dataclass(frozen=True)
class Config:
    """
    The whole validated C{config.ini}.

    @ivar frontends: every front end by name, in file order: the lone
        C{[frontend]} as L{LONE_FRONTEND}, or each C{[frontend:NAME]}.
    @ivar coordinator: C{[coordinator]}, or C{None} without one (then the
        one front end keeps its views in C{data_dir}).
    @ivar selected: the front end this process is (C{--name}), from
        L{named}; C{None} for the first.
    """

    path: Path
    cluster: ClusterConfig
    frontends: dict[str, FrontendConfig]
    replicas: dict[str, tuple[ReplicaConfig, ...]] = field(default_factory=dict)
    coordinator: CoordinatorConfig | None = None
    selected: str | None = None

    @property
    def frontend(self) -> FrontendConfig:
        """
        The front end this process is (L{named}), else the first: with one
        front end, the one (what every user of C{config.frontend} expects).
        """
        return self.frontends[self.selected or next(iter(self.frontends))]

    def named(self, name: str | None) -> Config:
        """
        This config as seen by front end C{name} (C{--name}); C{None} is
        fine only with one front end.

        @raise ConfigError: with several front ends and no C{name}, or a
            C{name} with no section; the message lists the names.
        """
        names = ", ".join(self.frontends)
        if name is None:
            if len(self.frontends) > 1:
                raise ConfigError(f"{self.path}: {len(self.frontends)} front ends: choose one with --name ({names})")
            return self
        if name not in self.frontends:
            raise ConfigError(f"{self.path}: no section [frontend:{name}] (front ends: {names})")
        return replace(self, selected=name)

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


def _listen(section: Section) -> str | None:
    """
    The section's C{listen} server endpoint string, with relative paths
    made absolute, or C{None} without one; see L{check_endpoint}.
    """
    raw = section.optional("listen")
    if raw is None:
        return None
    description = absolute_paths(raw, section.path.resolve().parent)
    why = check_endpoint(description)
    if why is not None:
        raise section.error("listen", f"{raw!r} is not a Twisted server endpoint: {why}")
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
    cluster = cluster_config(section_of(parser, path, "cluster"), environ)
    frontends = frontend_configs(parser, path)
    replicas = replica_configs(parser, path)
    coordinator = coordinator_config(parser, path, cluster, frontends)
    check_ports(path, frontends, replicas)
    return Config(path=path, cluster=cluster, frontends=frontends, replicas=replicas, coordinator=coordinator)


def cluster_config(cluster: Section, environ) -> ClusterConfig:
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
        idempotency_keep=cluster.positive("idempotency_keep", 86400.0),
    )


def frontend_configs(parser: configparser.ConfigParser, path: Path) -> dict[str, FrontendConfig]:
    """The lone C{[frontend]}, or every C{[frontend:NAME]}; never both."""
    named = [name for name in parser.sections() if name.partition(":")[0] == "frontend" and ":" in name]
    if parser.has_section("frontend") and named:
        raise ConfigError(f"{path}: [frontend] and [{named[0]}]: one [frontend] or several [frontend:NAME], not both")
    if not named:
        return {LONE_FRONTEND: frontend_config(section_of(parser, path, "frontend"))}
    frontends = {}
    for section in named:
        name = section.partition(":")[2]
        if not _NAME.fullmatch(name):
            raise ConfigError(f"{path}: [{section}] front-end name must be letters, digits, - and _")
        frontends[name] = frontend_config(section_of(parser, path, section), name)
    return frontends


def frontend_config(front: Section, name: str = LONE_FRONTEND) -> FrontendConfig:
    """C{[frontend]} or C{[frontend:NAME]}: where it is reached and listens, its cache and balancer."""
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
        listen=_listen(front),
        name=name,
        section=front.name,
    )


def coordinator_config(parser, path: Path, cluster: ClusterConfig, frontends: dict) -> CoordinatorConfig | None:
    """
    C{[coordinator]}: the etcd endpoints (http or https URLs), the key
    prefix and the lease; required by two or more front ends.
    """
    if not parser.has_section("coordinator"):
        if len(frontends) > 1:
            raise ConfigError(
                f"{path}: [coordinator] etcd: missing: {len(frontends)} front ends "
                f"({', '.join(f'[{f.section}]' for f in frontends.values())}) need etcd to share their views"
            )
        return None
    section = section_of(parser, path, "coordinator")
    endpoints = section.urls("etcd")
    prefix = section.text("prefix", "/pygmy")
    if not prefix.startswith("/"):
        raise section.error("prefix", f"{prefix!r} must begin with /")
    lease_ttl = section.positive("lease_ttl", 2.0)
    if lease_ttl <= cluster.heartbeat_timeout:
        timeout = cluster.heartbeat_timeout
        raise section.error("lease_ttl", f"{lease_ttl:g} must be longer than [cluster] heartbeat_timeout ({timeout:g})")
    return CoordinatorConfig(endpoints, prefix.rstrip("/"), lease_ttl)


def replica_configs(parser: configparser.ConfigParser, path: Path) -> dict[str, tuple[ReplicaConfig, ...]]:
    """
    Every C{[catalog:NAME]} and C{[order:NAME]} section, two or more per
    service; other sections with a colon are refused.
    """
    replicas: dict[str, list[ReplicaConfig]] = {service: [] for service in SERVICES}
    for name in parser.sections():
        service, colon, replica_name = name.partition(":")
        if not colon or service == "frontend":
            continue
        if service not in SERVICES:
            raise ConfigError(f"{path}: [{name}] unknown service {service!r} (sections are catalog:NAME or order:NAME)")
        if not replica_name.isalnum():
            raise ConfigError(f"{path}: [{name}] replica name must be letters and digits")
        replicas[service].append(replica_config(section_of(parser, path, name), service, replica_name))
    for service, found in replicas.items():
        if len(found) < 2:
            have = ", ".join(f"[{r.label}]" for r in found) or "none"
            raise ConfigError(f"{path}: [{service}:NAME] sections: {service} needs two or more replicas (found {have})")
    return {service: tuple(found) for service, found in replicas.items()}


def replica_config(section: Section, service: str, name: str) -> ReplicaConfig:
    """One C{[service:NAME]} section: where the replica is reached and listens."""
    host = section.text("host", "127.0.0.1")
    return ReplicaConfig(service, name, host, section.port("port"), section.text("bind", host), _listen(section))


def check_ports(path: Path, frontends: dict[str, FrontendConfig], replicas) -> None:
    """
    Refuse two listeners on the same host and port (across every front
    end and replica).
    """
    seen = {}

    def claim(host: str, port: int, section: str, key: str) -> None:
        if (host, port) in seen:
            raise ConfigError(f"{path}: [{section}] {key}: {port} is already used by {seen[(host, port)]}")
        seen[(host, port)] = f"[{section}] {key}"

    for front in frontends.values():
        claim(front.host, front.port, front.section, "port")
        claim(front.host, front.heartbeat_port, front.section, "heartbeat_port")
    for found in replicas.values():
        for replica in found:
            claim(replica.host, replica.port, replica.label, "port")
