"""
Pygmy's use of Twisted's private names.

Three kinds of test:

- the private names L{pygmy.net.twisted_private} holds still exist and
  behave as relied on; each fails naming the name when Twisted changes it;
- the public pieces that replaced private ones still do what those did
  (quiet, pooled connections; endpoints per host);
- no module of Pygmy but L{pygmy.net.twisted_private} imports a private
  Twisted name or touches a private attribute of a Twisted object: an AST
  scan of C{pygmy/}, C{twisted/plugins/} and C{benchmarks/} (an AST rather
  than a text grep, so that docstrings and comments may name what they
  explain), failing with file and line.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import ITCPTransport
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.web.client import URI, HTTPConnectionPool
from twisted.web.error import SchemeNotSupported
from twisted.web.http_headers import Headers
from zope.interface import implementer

from pygmy.net import remote, twisted_private
from tests.fakes import SyncReactor, result, stub_remote

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("pygmy", "twisted/plugins", "benchmarks")
ALLOWED = {"pygmy/net/twisted_private.py"}
#: Private Twisted names Pygmy once used: flagged wherever they appear in code.
KNOWN = {"_endpointFactory", "_factory", "_waitingForPort", "_HTTP11ClientFactory", "_newclient"}


# -- the private names that remain ---------------------------------------------


def test_checked_version_is_named():
    assert re.fullmatch(r"\d+\.\d+\.\d+", twisted_private.CHECKED_AGAINST)


def test_request_not_sent_still_exists_and_is_an_exception():
    from twisted.web import _newclient

    cls = getattr(_newclient, "RequestNotSent", None)
    assert isinstance(cls, type) and issubclass(cls, Exception), (
        "twisted.web._newclient.RequestNotSent is gone or no longer an exception class: "
        "update pygmy/net/twisted_private.py and what pygmy.net.remote.NETWORK_ERRORS catches"
    )
    assert twisted_private.RequestNotSent is cls


def test_request_not_sent_still_needs_catching_by_name():
    public = tuple(e for e in remote.NETWORK_ERRORS if e is not twisted_private.RequestNotSent)
    assert not issubclass(twisted_private.RequestNotSent, public), (
        "twisted.web._newclient.RequestNotSent now derives from a public error in NETWORK_ERRORS: "
        "drop it from pygmy/net/twisted_private.py"
    )


def test_request_not_sent_is_what_a_closed_connection_fails_a_request_with():
    from twisted.web._newclient import HTTP11ClientProtocol, Request

    protocol = HTTP11ClientProtocol()
    protocol.makeConnection(StringTransport())
    protocol.connectionLost(Failure(ConnectionDone()))
    failure = _failure_of(protocol.request(Request(b"POST", b"/", Headers(), None)))
    assert failure.check(twisted_private.RequestNotSent), (
        "HTTP11ClientProtocol.request on a lost connection no longer fails with "
        f"twisted.web._newclient.RequestNotSent but {failure!r}: review pygmy/net/twisted_private.py"
    )


def test_remote_maps_request_not_sent_to_replica_down():
    from types import SimpleNamespace

    from twisted.internet.defer import fail

    call = stub_remote(None, "catalog", "A", SyncReactor())
    call._http.client = SimpleNamespace(request=lambda *a, **k: fail(twisted_private.RequestNotSent()))
    with pytest.raises(remote.ReplicaDown, match="unreachable: RequestNotSent"):
        result(call.get("/status"))


def _failure_of(deferred) -> Failure:
    failures = []
    deferred.addErrback(failures.append)
    assert failures, "the Deferred did not fail"
    return failures[0]


# -- the public pieces that replaced private ones -------------------------------


@implementer(ITCPTransport)
class _TCPTransport(StringTransport):
    """A fake TCP transport that remembers C{setTcpNoDelay}."""

    nodelay = False

    def setTcpNoDelay(self, enabled):
        self.nodelay = enabled


def _pooled_connection(endpoint, reactor):
    """Have a pool connect through C{endpoint}; what that logged, and the connection."""
    events = []
    observer = lambda event: events.append(formatEvent(event))  # noqa: E731
    globalLogPublisher.addObserver(observer)
    try:
        pool = HTTPConnectionPool(reactor)
        connected = []
        pool.getConnection(("http", b"10.0.0.1", 80), endpoint).addCallback(connected.append)
        factory = reactor.tcpClients[-1][2]
        factory.doStart()
        protocol = factory.buildProtocol(None)
        protocol.makeConnection(_TCPTransport())
        factory.doStop()
    finally:
        globalLogPublisher.removeObserver(observer)
    return [e for e in events if "factory" in e.lower()], connected


def test_quiet_endpoint_connections_log_nothing():
    reactor = MemoryReactorClock()
    endpoint = remote.QuietEndpoint(TCP4ClientEndpoint(reactor, "10.0.0.1", 80))
    logged, connected = _pooled_connection(endpoint, reactor)
    assert logged == []
    assert len(connected) == 1 and connected[0].transport.nodelay is True


def test_quiet_endpoint_turns_nagle_off():
    """With a plain protocol: Twisted's own HTTP client protocol (24.10+) would set it too."""
    reactor = MemoryReactorClock()
    connected = []
    endpoint = remote.QuietEndpoint(TCP4ClientEndpoint(reactor, "10.0.0.1", 80))
    endpoint.connect(Factory.forProtocol(Protocol)).addCallback(connected.append)
    reactor.tcpClients[-1][2].buildProtocol(None).makeConnection(_TCPTransport())
    assert len(connected) == 1 and connected[0].transport.nodelay is True


def test_plain_endpoint_connections_do_log():
    """The control: without L{remote.QuietEndpoint}, each connection logs (why it exists)."""
    reactor = MemoryReactorClock()
    logged, connected = _pooled_connection(TCP4ClientEndpoint(reactor, "10.0.0.1", 80), reactor)
    assert any("Starting factory" in line for line in logged), logged
    assert len(connected) == 1


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        (b"http://10.0.0.1:8001/books", TCP4ClientEndpoint),
        (b"http://[::1]:8001/books", TCP6ClientEndpoint),
        (b"http://catalog-a:8001/books", HostnameEndpoint),
    ],
)
def test_endpoints_one_quiet_endpoint_per_host_and_port(url, kind):
    endpoints = remote.Endpoints(MemoryReactorClock())
    first = endpoints.endpointForURI(URI.fromBytes(url))
    assert isinstance(first, remote.QuietEndpoint) and isinstance(first.endpoint, kind)
    assert endpoints.endpointForURI(URI.fromBytes(url.replace(b"books", b"status"))) is first
    assert endpoints.endpointForURI(URI.fromBytes(url.replace(b"8001", b"8002"))) is not first


def test_endpoints_refuse_other_schemes():
    with pytest.raises(SchemeNotSupported):
        remote.Endpoints(MemoryReactorClock()).endpointForURI(URI.fromBytes(b"https://10.0.0.1/"))


# -- no private Twisted name elsewhere -------------------------------------------


class _Scan(ast.NodeVisitor):
    """
    The private Twisted names one module uses, as C{(line, what)} pairs.

    Flags imports of a private Twisted module or name, the L{KNOWN} names
    anywhere in code, and C{x._name} where C{x} is Twisted's: a name
    imported from Twisted, a call of one, a name or C{self.attr} assigned
    such a call, or C{self} in a subclass of a Twisted class when C{_name}
    is that class's.
    """

    def __init__(self):
        self.found: list[tuple[int, str]] = []
        self.twisted_names: dict[str, str] = {}
        self.twisted_values: set[str] = set()
        self.base_privates: list[set[str]] = [set()]

    def flag(self, node, what):
        self.found.append((node.lineno, what))

    def visit_Import(self, node):
        for alias in node.names:
            if _is_twisted(alias.name):
                if _private_part(alias.name):
                    self.flag(node, f"import {alias.name}")
                self.twisted_names[(alias.asname or alias.name).split(".")[0]] = alias.name
        self.generic_visit(node)

    def visit_ImportFrom(self, node):
        module = node.module or ""
        if node.level or not _is_twisted(module):
            return
        if _private_part(module):
            self.flag(node, f"from {module} import ...")
        for alias in node.names:
            if _is_private(alias.name):
                self.flag(node, f"from {module} import {alias.name}")
            self.twisted_names[alias.asname or alias.name] = f"{module}.{alias.name}"

    def visit_ClassDef(self, node):
        privates = set()
        for base in node.bases:
            privates |= _private_attributes(self._twisted_object(base))
        self.base_privates.append(privates)
        self.generic_visit(node)
        self.base_privates.pop()

    def visit_Assign(self, node):
        if isinstance(node.value, ast.Call) and self._is_twisted_expr(node.value.func):
            for target in node.targets:
                self.twisted_values.add(ast.unparse(target))
        self.generic_visit(node)

    def visit_Name(self, node):
        if node.id in KNOWN:
            self.flag(node, node.id)

    def visit_Attribute(self, node):
        name, receiver = node.attr, node.value
        if name in KNOWN:
            self.flag(node, f".{name}")
        elif _is_private(name):
            if self._is_twisted_expr(receiver) or ast.unparse(receiver) in self.twisted_values:
                self.flag(node, f"{ast.unparse(receiver)}.{name} (a Twisted object)")
            elif isinstance(receiver, ast.Name) and receiver.id in ("self", "cls"):
                if name in self.base_privates[-1]:
                    self.flag(node, f"{receiver.id}.{name} (private to a Twisted base class)")
        self.generic_visit(node)

    def visit_Call(self, node):
        if isinstance(node.func, ast.Name) and node.func.id in ("getattr", "setattr", "hasattr", "delattr"):
            for arg in node.args[1:2]:
                if isinstance(arg, ast.Constant) and arg.value in KNOWN:
                    self.flag(node, f'{node.func.id}(..., "{arg.value}")')
        self.generic_visit(node)

    def _is_twisted_expr(self, node) -> bool:
        while isinstance(node, (ast.Attribute, ast.Call)):
            node = node.value if isinstance(node, ast.Attribute) else node.func
        return isinstance(node, ast.Name) and node.id in self.twisted_names

    def _twisted_object(self, node):
        dotted = ast.unparse(node)
        head, _, rest = dotted.partition(".")
        if head not in self.twisted_names:
            return None
        path = self.twisted_names[head] + ("." + rest if rest else "")
        module, _, attribute = path.rpartition(".")
        try:
            return getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError):
            return None


def _is_twisted(module: str) -> bool:
    return module == "twisted" or module.startswith("twisted.")


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _private_part(module: str) -> bool:
    return any(_is_private(part) for part in module.split("."))


def _private_attributes(cls) -> set[str]:
    """The private names the Twisted classes in C{cls}'s MRO define or assign on C{self}."""
    names = set()
    for klass in inspect.getmro(cls) if inspect.isclass(cls) else ():
        if _is_twisted(klass.__module__):
            names |= {name for name in vars(klass) if _is_private(name)}
            try:
                names |= set(re.findall(r"\bself\.(_[A-Za-z]\w*)", inspect.getsource(klass)))
            except (OSError, TypeError):
                pass
    return names


def scan(source: str) -> list[tuple[int, str]]:
    """The private Twisted names C{source} uses, as C{(line, what)} pairs."""
    visitor = _Scan()
    visitor.visit(ast.parse(source))
    return sorted(visitor.found)


def test_scan_finds_each_form():
    from twisted.application.internet import StreamServerEndpointService

    inherited = sorted(_private_attributes(StreamServerEndpointService) - KNOWN)[0]
    source = (
        "from twisted.web._newclient import HTTP11ClientProtocol\n"
        "import twisted.web._newclient\n"
        "from twisted.web.client import Agent, _HTTP11ClientFactory\n"
        "from twisted.application.internet import StreamServerEndpointService\n"
        "fallback = Agent(reactor)._endpointFactory\n"
        "self.pool._factory = None\n"
        "agent = Agent(reactor)\n"
        "agent._pool = None\n"
        "class L(StreamServerEndpointService):\n"
        "    def start(self):\n"
        "        self._waitingForPort = None\n"
        f"        self.{inherited} = True\n"
        "        self._mine = 1\n"
        "getattr(pool, '_factory')\n"
    )
    lines = {line for line, _ in scan(source)}
    assert lines == {1, 2, 3, 5, 6, 8, 11, 12, 14}, scan(source)


def test_scan_leaves_public_and_own_names_alone():
    source = (
        "from twisted.web.client import Agent, ResponseNeverReceived\n"
        "from pygmy.net import _helpers\n"
        "class R:\n"
        "    def __init__(self):\n"
        "        self._factory_count = 0\n"
        "        self._http = Agent(reactor)\n"
        "channel._pygmy_nodelay = True\n"
        '"""Once used Agent._endpointFactory."""\n'
    )
    assert scan(source) == []


def _project_sources():
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative not in ALLOWED:
                yield relative, path


def test_no_private_twisted_name_outside_twisted_private():
    found = [
        f"{relative}:{line}: {what}"
        for relative, path in _project_sources()
        for line, what in scan(path.read_text(encoding="utf-8"))
    ]
    assert found == [], (
        "private Twisted names used outside pygmy/net/twisted_private.py "
        "(move them there, with why and a test, or use the public API):\n" + "\n".join(found)
    )


def test_the_scan_covers_the_project():
    scanned = {relative for relative, _ in _project_sources()}
    assert {"pygmy/net/remote.py", "pygmy/cli/client.py", "twisted/plugins/pygmy_plugins.py"} <= scanned
