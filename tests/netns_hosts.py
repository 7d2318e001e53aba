"""
The cluster on five virtual hosts, for C{tests/integration/test_netns.py}:
each process in a Linux network namespace of its own.

L{Network} makes one namespace per process with its own address, as on
separate machines: a veth pair joins each namespace to a bridge, which
lives in one more namespace (the "switch", where the test's client runs
too), and L{Network.cut} drops every packet into or out of one namespace
with iptables, as when a cable is pulled.  L{Client} is the test's HTTP
client inside the switch's namespace.  L{Hosts} writes a config.ini naming
those addresses as the hosts, starts each process in its namespace, stops
it by pid, and reads the front end's view, the replicas' statuses and the
orders.  L{hosts_on_namespaces} is the body of the test's C{hosts} fixture.

Nothing touches the machine's own network: the bridge, the veths and the
addresses (in 10.201.0.0/24) exist only inside namespaces made here (named
after the test's pid) and deleted again, even on failure.  There is no
default route and no forwarding, so no packet can leave the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pygmy.testing import SECRET, START_TIMEOUT, TWISTD

AUTH = {"Authorization": f"Bearer {SECRET}"}
PREFIX = f"pg{os.getpid()}"
#: The "switch": the bridge, and the address the test's client uses.
SWITCH = f"{PREFIX}sw"
SUBNET = "10.201.0"
CLIENT_ADDRESS = f"{SUBNET}.1"
#: Each process: (namespace, address, role, replica, port).
HOSTS = {
    "frontend": (f"{PREFIX}fe", f"{SUBNET}.10", "frontend", None, 8080),
    "catalog:A": (f"{PREFIX}ca", f"{SUBNET}.11", "catalog", "A", 8081),
    "catalog:B": (f"{PREFIX}cb", f"{SUBNET}.12", "catalog", "B", 8081),
    "order:A": (f"{PREFIX}oa", f"{SUBNET}.13", "order", "A", 8083),
    "order:B": (f"{PREFIX}ob", f"{SUBNET}.14", "order", "B", 8083),
}
HEARTBEAT_PORT = 8090
#: The seconds the front end waits for a silent replica (config.ini below).
HEARTBEAT_TIMEOUT = 0.6
#: The test's own client, run inside the switch's namespace: one JSON
#: request per line on stdin, one JSON answer per line on stdout.
CLIENT = textwrap.dedent(
    """
    import json, sys, urllib.error, urllib.request

    for line in sys.stdin:
        ask = json.loads(line)
        data = None if ask["body"] is None else json.dumps(ask["body"]).encode()
        request = urllib.request.Request(
            ask["url"], data=data, headers=ask["headers"], method=ask["method"])
        try:
            with urllib.request.urlopen(request, timeout=ask["timeout"]) as response:
                answer = {"status": response.status, "body": json.loads(response.read())}
        except urllib.error.HTTPError as e:
            answer = {"status": e.code, "body": json.loads(e.read() or b"null")}
        except Exception as e:
            answer = {"status": None, "body": repr(e)}
        print(json.dumps(answer), flush=True)
    """
)


def run(*command: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a short administrative command (C{ip}, C{iptables})."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {done.stderr.strip() or done.returncode}")
    return done


def in_netns(namespace: str, *command: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run C{command} inside C{namespace}."""
    return run("ip", "netns", "exec", namespace, *command, check=check)


def why_not_supported() -> str | None:
    """Why this machine cannot run the test, or None if it can."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root, to create network namespaces and iptables rules"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"needs the {tool!r} command (not installed)"
    probe = f"{PREFIX}probe"
    try:
        run("ip", "netns", "add", probe)
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        return f"`ip netns add` does not work here: {e}"
    try:
        in_netns(probe, "ip", "link", "add", "probebr", "type", "bridge")
        in_netns(probe, "ip", "link", "add", "probe0", "type", "veth", "peer", "name", "probe1")
        in_netns(probe, "iptables", "-w", "-A", "INPUT", "!", "-i", "lo", "-j", "DROP")
        in_netns(probe, "iptables", "-w", "-D", "INPUT", "!", "-i", "lo", "-j", "DROP")
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        return f"bridges, veths or iptables do not work in a network namespace here: {e}"
    finally:
        run("ip", "netns", "del", probe, check=False)
    return None


def namespaces() -> set[str]:
    """The names of the network namespaces C{ip netns} knows."""
    return {line.split()[0] for line in run("ip", "netns", "list").stdout.splitlines() if line.strip()}


def root_links() -> set[str]:
    """The names of the network interfaces of the machine's own namespace."""
    out = run("ip", "-o", "link", "show").stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


class Network:
    """
    One namespace per process, joined by a bridge in a namespace of its
    own; L{destroy} removes every namespace (and with them every veth,
    the bridge, every address and every iptables rule).
    """

    def __init__(self):
        self.created: list[str] = []

    def build(self) -> None:
        """Create the switch and one namespace per process, with addresses."""
        for namespace in [SWITCH] + [host[0] for host in HOSTS.values()]:
            # A namespace left over by an earlier run with the same pid.
            run("ip", "netns", "del", namespace, check=False)
        self.add(SWITCH)
        in_netns(SWITCH, "ip", "link", "set", "lo", "up")
        in_netns(SWITCH, "ip", "link", "add", "br0", "type", "bridge")
        in_netns(SWITCH, "ip", "addr", "add", f"{CLIENT_ADDRESS}/24", "dev", "br0")
        in_netns(SWITCH, "ip", "link", "set", "br0", "up")
        for index, (namespace, address, *_) in enumerate(HOSTS.values()):
            self.add(namespace)
            port = f"port{index}"
            # Both ends are made inside namespaces: nothing appears on the
            # machine's own network, even for a moment.
            in_netns(SWITCH, "ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", namespace)
            in_netns(SWITCH, "ip", "link", "set", port, "master", "br0")
            in_netns(SWITCH, "ip", "link", "set", port, "up")
            in_netns(namespace, "ip", "link", "set", "lo", "up")
            in_netns(namespace, "ip", "addr", "add", f"{address}/24", "dev", "eth0")
            in_netns(namespace, "ip", "link", "set", "eth0", "up")

    def add(self, namespace: str) -> None:
        """Create C{namespace} and remember to delete it."""
        run("ip", "netns", "add", namespace)
        self.created.append(namespace)

    def cut(self, namespace: str, cut: bool = True) -> None:
        """Drop every packet into or out of C{namespace} (but loopback), or stop dropping."""
        action = "-I" if cut else "-D"
        in_netns(namespace, "iptables", "-w", action, "INPUT", "!", "-i", "lo", "-j", "DROP")
        in_netns(namespace, "iptables", "-w", action, "OUTPUT", "!", "-o", "lo", "-j", "DROP")

    def destroy(self) -> list[str]:
        """Delete every namespace made; return those that would not go."""
        left = []
        for namespace in reversed(self.created):
            if run("ip", "netns", "del", namespace, check=False).returncode != 0:
                left.append(namespace)
        self.created = []
        return left


class Client:
    """The test's HTTP client, a process inside the switch's namespace."""

    def __init__(self, directory: Path):
        script = directory / "client.py"
        script.write_text(CLIENT)
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", SWITCH, sys.executable, "-u", str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def call(self, method: str, url: str, body=None, headers=None, timeout: float = 10.0):
        """One request; return C{(status, decoded body)}, status None if it failed."""
        ask = {"method": method, "url": url, "body": body, "headers": headers or {}, "timeout": timeout}
        self.process.stdin.write(json.dumps(ask) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the test client exited with {self.process.wait()}")
        answer = json.loads(line)
        return answer["status"], answer["body"]

    def close(self) -> None:
        """End the client: it exits when its stdin closes."""
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Hosts:
    """
    The cluster, one process per namespace, started with the contract's
    commands under C{ip netns exec} and stopped by pid.
    """

    def __init__(self, directory: Path, network: Network, client: Client):
        self.directory = directory
        self.network = network
        self.client = client
        self.config = directory / "config.ini"
        self.config.write_text(self.config_text())
        self.processes: dict[str, subprocess.Popen] = {}

    @staticmethod
    def config_text() -> str:
        """config.ini: every host is its namespace's address, as on separate machines."""
        lines = [
            "[cluster]",
            f"secret = {SECRET}",
            "data_dir = var",
            "heartbeat_interval = 0.2",
            f"heartbeat_timeout = {HEARTBEAT_TIMEOUT}",
            "request_timeout = 1.0",
        ]
        for key, (_, address, role, _replica, port) in HOSTS.items():
            lines += ["", f"[{key}]", f"host = {address}", f"port = {port}"]
            if role == "frontend":
                lines.append(f"heartbeat_port = {HEARTBEAT_PORT}")
        return "\n".join(lines) + "\n"

    def url(self, key: str = "frontend") -> str:
        """The base URL of process C{key} (the front end by default)."""
        _, address, _, _, port = HOSTS[key]
        return f"http://{address}:{port}"

    def get(self, key: str, path: str, headers=None):
        """GET C{path} of process C{key} through the test's client."""
        return self.client.call("GET", self.url(key) + path, headers=headers)

    def start(self, key: str) -> None:
        """Start C{key} in its namespace and wait until it answers."""
        namespace, _, role, replica, _ = HOSTS[key]
        command = [
            "ip",
            "netns",
            "exec",
            namespace,
            TWISTD,
            "-n",
            "--pidfile=",
            f"pygmy-{role}",
            "--config",
            str(self.config),
        ]
        if replica is not None:
            command += ["--replica", replica]
        with open(self.log(key), "ab") as log:
            # `ip netns exec` execs the command: the pid is twistd's own.
            self.processes[key] = process = subprocess.Popen(
                command, cwd=self.directory, stdout=log, stderr=subprocess.STDOUT
            )
        ready = "/health" if replica is None else "/status"
        deadline = time.monotonic() + START_TIMEOUT
        while self.get(key, ready)[0] != 200:
            if process.poll() is not None:
                raise RuntimeError(f"{key} exited with {process.returncode}:\n{self.tail(key)}")
            assert time.monotonic() < deadline, f"{key} did not answer:\n{self.tail(key)}"
            time.sleep(0.1)

    def stop_all(self) -> None:
        """SIGTERM every process by pid (SIGKILL if it lingers), front end first."""
        for key in sorted(self.processes, key=lambda k: k != "frontend"):
            process = self.processes.pop(key)
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(10)

    def log(self, key: str) -> Path:
        """Where process C{key} writes its stdout and stderr."""
        return self.directory / f"{key.replace(':', '-')}.log"

    def tail(self, key: str, lines: int = 30) -> str:
        """The last C{lines} lines of process C{key}'s log."""
        return "\n".join(self.log(key).read_text(errors="replace").splitlines()[-lines:])

    def status(self) -> dict:
        """The front end's view of every service (C{GET /status})."""
        status, body = self.get("frontend", "/status")
        assert status == 200, body
        return body["services"]

    def wait_for(self, what: str, condition, within: float):
        """Poll C{condition()} until it returns something true; return that."""
        deadline = time.monotonic() + within
        while True:
            found = condition()
            if found:
                return found
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {key}\n{self.tail(key, 15)}" for key in HOSTS)
                raise AssertionError(f"{what} not within {within}s: {self.status()}\n{logs}")
            time.sleep(0.1)

    def settled(self) -> dict | None:
        """The front end's view if every replica is in its service's view, else None."""
        services = self.status()
        if all(
            view["primary"] is not None and len(view["backups"]) == len(view["replicas"]) - 1
            for view in services.values()
        ):
            return services
        return None

    def converged(self, service: str) -> list | None:
        """The replicas' statuses if they agree on applied_seq and checksum, else None."""
        statuses = [self.get(key, "/status")[1] for key in HOSTS if key.startswith(service + ":")]
        if len({(s["applied_seq"], s["checksum"]) for s in statuses}) == 1:
            return statuses
        return None

    def ledger(self) -> dict:
        """Per item: (stock, orders for it), through the front end and the order primary."""
        status, listed = self.get("frontend", "/list")
        assert status == 200, listed
        primary = self.status()["order"]["primary"]
        status, dump = self.get(f"order:{primary}", "/admin/dump", AUTH)
        assert status == 200, dump
        counts = {}
        for row in dump["rows"]:
            counts[row["item_id"]] = counts.get(row["item_id"], 0) + 1
        return {item["id"]: (item["stock"], counts.get(item["id"], 0)) for item in listed["items"]}


def hosts_on_namespaces(tmp_path: Path):
    """The cluster on five "hosts"; everything is removed afterwards, even on failure."""
    reason = why_not_supported()
    if reason:
        pytest.skip(f"network namespace test: {reason}")
    links_before = root_links()
    network = Network()
    client = cluster = None
    try:
        network.build()
        client = Client(tmp_path)
        cluster = Hosts(tmp_path, network, client)
        for key in ("catalog:A", "catalog:B", "order:A", "order:B", "frontend"):
            cluster.start(key)
        yield cluster
    finally:
        if cluster is not None:
            cluster.stop_all()
        if client is not None:
            client.close()
        left = network.destroy()
        assert left == [], f"could not delete network namespaces {left}"
        assert not {n for n in namespaces() if n.startswith(PREFIX)}, namespaces()
        assert root_links() <= links_before, root_links() - links_before
