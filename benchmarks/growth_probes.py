"""
Blocking probes of a running cluster for C{benchmarks/growth.py}: timed
requests on one keep-alive connection, the memory of a process from
C{/proc}, and row counts of a replica's database file (read-only, beside
the running replica: SQLite's write-ahead log lets a reader in).
"""

from __future__ import annotations

import http.client
import sqlite3
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit


class Client:
    """One keep-alive HTTP/1.1 connection that times each request."""

    def __init__(self, url: str, headers=None):
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        self.headers = headers or {}

    def time(self, method: str, path: str, headers=None) -> float:
        """Seconds from sending C{method path} to its whole body; anything but 200 is an error."""
        started = time.perf_counter()
        self.connection.request(method, path, headers={**self.headers, **(headers or {})})
        response = self.connection.getresponse()
        body = response.read()
        took = time.perf_counter() - started
        if response.status != 200:
            raise SystemExit(f"growth: {method} {path} answered {response.status}: {body[:200]!r}")
        return took

    def close(self) -> None:
        """Close the connection."""
        self.connection.close()


def timings(client: Client, method: str, paths, count: int, headers=None, warm: int = 5) -> list[float]:
    """The latencies of C{count} requests to C{paths(n)}, after C{warm} unmeasured ones."""
    for n in range(warm):
        client.time(method, paths(n), headers)
    return [client.time(method, paths(n), headers) for n in range(count)]


def memory_kb(pid: int, field: str) -> int:
    """C{VmRSS} or C{VmHWM} of C{pid} in kB, from C{/proc}; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler(threading.Thread):
    """The highest C{VmRSS} of each pid, sampled every C{every} seconds until L{stop}."""

    def __init__(self, pids, every: float = 0.01):
        super().__init__(daemon=True)
        self.peaks = {pid: memory_kb(pid, "VmRSS") for pid in pids}
        self.every = every
        self._done = threading.Event()
        self._lock = threading.Lock()

    def add(self, pid: int) -> None:
        """Sample C{pid} too, from now on."""
        with self._lock:
            self.peaks[pid] = memory_kb(pid, "VmRSS")

    def run(self) -> None:
        """Sample until stopped."""
        while not self._done.wait(self.every):
            with self._lock:
                for pid in self.peaks:
                    self.peaks[pid] = max(self.peaks[pid], memory_kb(pid, "VmRSS"))

    def stop(self) -> dict:
        """Stop sampling; the peaks in kB by pid."""
        self._done.set()
        self.join()
        return self.peaks


def table_counts(path: Path, tables) -> dict:
    """Rows of each of C{tables} in the database at C{path}, read-only."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return {table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in tables}
    finally:
        connection.close()
