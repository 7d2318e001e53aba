"""
docs/haproxy.cfg for the tests: L{render} it with other addresses (the
test's free ports, the compose services), and run a real HAProxy from it
(L{HAProxy}: in the foreground, stopped by its pid).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "docs" / "haproxy.cfg"


def render(template: str, bind: str, servers: dict[str, str], server_options=()) -> str:
    """
    C{template} (the text of docs/haproxy.cfg) with the address of its
    C{frontend}'s C{bind} line replaced by C{bind}, and its C{server} lines
    replaced, where the first one was, by one per C{servers} item (name ->
    C{host:port}), each with the options of the template's first server
    line and then C{server_options}.  Everything else (timeouts, checks,
    retries) stays as it is.

    @raise ValueError: if the template has no bind or no server line.
    """
    out: list[str] = []
    options, bound, section = None, False, None
    for line in template.splitlines():
        words = line.split()
        indent = line[: len(line) - len(line.lstrip())]
        if words and not indent and not words[0].startswith("#"):
            section = words[0]
        if section == "frontend" and words[:1] == ["bind"]:
            out.append(" ".join([f"{indent}bind", bind, *words[2:]]))
            bound = True
        elif section == "backend" and words[:1] == ["server"]:
            if options is None:
                options = [*words[3:], *server_options]
                out += [" ".join([f"{indent}server", name, address, *options]) for name, address in servers.items()]
        else:
            out.append(line)
    if options is None or not bound:
        raise ValueError("the template needs a bind line in a frontend and a server line in a backend")
    return "\n".join(out) + "\n"


def haproxy_binary() -> str | None:
    """HAProxy (Debian's haproxy package, installed by .ci/run), or C{None}."""
    return shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")


class HAProxy:
    """
    A real HAProxy in C{directory} from L{render}ed docs/haproxy.cfg:
    listening at C{127.0.0.1:port}, in front of C{servers}; its output in
    C{directory/haproxy.log}.  L{stop} stops it by its pid.
    """

    def __init__(self, directory: Path, port: int, servers: dict[str, str]):
        self.directory = Path(directory)
        self.url = f"http://127.0.0.1:{port}"
        self.path = self.directory / "haproxy.cfg"
        self.path.write_text(render(TEMPLATE.read_text(), f"127.0.0.1:{port}", servers))
        self.log = self.directory / "haproxy.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> None:
        """Check the file, start HAProxy in the foreground (C{-db}), wait until it answers C{/health}."""
        binary = haproxy_binary()
        if binary is None:
            raise RuntimeError("no haproxy: apt-get install haproxy")
        checked = subprocess.run([binary, "-c", "-f", str(self.path)], capture_output=True, text=True)
        if checked.returncode != 0:
            raise RuntimeError(f"haproxy -c refused {self.path}:\n{checked.stdout}{checked.stderr}")
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([binary, "-db", "-f", str(self.path)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"haproxy did not answer at {self.url}:\n{self.log.read_text(errors='replace')}")
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM by pid and reap it; SIGKILL if it outlives C{timeout}."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
