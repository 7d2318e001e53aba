"""
What one internal exchange costs: an HTTP request as the replicas make
them today, against a framed message on a connection that stays open, in
one run on this machine.

    .venv/bin/python benchmarks/exchange.py [--count 3000] [--entries 1]

A server process answers both on 127.0.0.1: a Klein route on Pygmy's own
site (L{pygmy.net.web.make_site}: JSON requests, no access log) that reads a
JSON body and answers it back, and an
L{Int32StringReceiver<twisted.protocols.basic.Int32StringReceiver>} that does
the same with length-prefixed frames.  This process sends C{--count}
bodies one after the other to each -- a body like a replication batch of
C{--entries} log entries -- through a persistent
L{HTTPConnectionPool<twisted.web.client.HTTPConnectionPool>} and Agent (as
L{pygmy.net.direct.DirectClient} does), and through one open framed
connection.  It prints each one's p50 round trip and its CPU per exchange
summed over both ends (this process's, and the server's from
C{/proc/<pid>/stat}), and their ratios: what a persistent framed stream
between two replicas would save on each of a buy's internal exchanges.
The server is stopped, whatever happens.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from pygmy import testing


def serve(http_port: int, frame_port: int) -> None:
    """The server process: the Klein route and the framed echo."""
    from klein import Klein
    from twisted.internet import protocol, reactor
    from twisted.protocols.basic import Int32StringReceiver

    from pygmy.net.web import json_response, make_site, read_json_body

    app = Klein()

    @app.route("/echo", methods=["POST"])
    def echo(request):
        return json_response(request, {"applied": read_json_body(request)["entries"][-1]["seq"]})

    class Echo(Int32StringReceiver):
        MAX_LENGTH = 1 << 24

        def stringReceived(self, data):
            body = json.loads(data)
            self.sendString(json.dumps({"applied": body["entries"][-1]["seq"]}).encode())

    frames = protocol.Factory.forProtocol(Echo)
    reactor.listenTCP(http_port, make_site(app.resource()), interface="127.0.0.1")
    reactor.listenTCP(frame_port, frames, interface="127.0.0.1")
    reactor.run()


def body(seq: int, entries: int) -> dict:
    """A replication batch of C{entries} order entries, the last one C{seq}."""
    return {
        "view": 3,
        "entries": [
            {
                "seq": seq - entries + 1 + i,
                "view": 3,
                "request_id": f"0187c1d2e3f4a5b6-{seq:016x}",
                "changes": [{"table": "orders", "id": seq, "item_id": 1, "created": "2026-12-02T04:00:00.000Z"}],
                "created": "2026-12-02T04:00:00.000Z",
                "fingerprint": "buy:1",
            }
            for i in range(entries)
        ],
    }


def server_cpu(pid: int) -> float:
    """CPU seconds C{pid} has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    """CPU seconds this process has used so far."""
    times = os.times()
    return times.user + times.system


async def http_round_trips(reactor, port: int, count: int, entries: int) -> list[float]:
    """C{count} POSTs one after the other on a persistent connection; their round trips."""
    import treq
    from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool
    from twisted.web.http_headers import Headers

    from pygmy.net.web import json_bytes

    pool = HTTPConnectionPool(reactor, persistent=True)
    agent = Agent(reactor, pool=pool)
    url = f"http://127.0.0.1:{port}/echo".encode()
    headers = Headers({b"content-type": [b"application/json"], b"authorization": [b"Bearer s"]})
    times = []
    for seq in range(entries, count + entries):
        started = time.perf_counter()
        response = await agent.request(
            b"POST", url, headers, FileBodyProducer(io.BytesIO(json_bytes(body(seq, entries))))
        )
        answer = json.loads(await treq.content(response))
        times.append(time.perf_counter() - started)
        assert answer["applied"] == seq, answer
    await pool.closeCachedConnections()
    return times


async def frame_round_trips(reactor, port: int, count: int, entries: int) -> list[float]:
    """C{count} frames one after the other on one open connection; their round trips."""
    from twisted.internet import defer, endpoints
    from twisted.protocols.basic import Int32StringReceiver

    class Caller(Int32StringReceiver):
        MAX_LENGTH = 1 << 24
        waiting: defer.Deferred | None = None

        def stringReceived(self, data):
            waiting, self.waiting = self.waiting, None
            waiting.callback(json.loads(data))

        def call(self, message) -> defer.Deferred:
            self.waiting = defer.Deferred()
            self.sendString(json.dumps(message).encode())
            return self.waiting

    point = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    caller = await endpoints.connectProtocol(point, Caller())
    caller.transport.setTcpNoDelay(True)
    times = []
    for seq in range(entries, count + entries):
        started = time.perf_counter()
        answer = await caller.call(body(seq, entries))
        times.append(time.perf_counter() - started)
        assert answer["applied"] == seq, answer
    caller.transport.loseConnection()
    return times


def run(args, server_pid: int, http_port: int, frame_port: int) -> dict:
    """Both measurements, each warmed up first: name -> (p50 s, CPU s an exchange)."""
    from twisted.internet import defer, task

    results = {}

    async def main(reactor):
        for name, round_trips, port in (
            ("http", http_round_trips, http_port),
            ("framed", frame_round_trips, frame_port),
        ):
            await round_trips(reactor, port, 200, args.entries)
            cpu = own_cpu() + server_cpu(server_pid)
            times = await round_trips(reactor, port, args.count, args.entries)
            used = own_cpu() + server_cpu(server_pid) - cpu
            results[name] = (statistics.median(times), used / args.count)

    def measured(reactor):
        d = defer.ensureDeferred(main(reactor))
        d.addErrback(lambda failure: print(failure.getTraceback(), file=sys.stderr) or failure)
        return d

    try:
        task.react(measured)
    except SystemExit as stop:
        if stop.code:
            raise
    return results


def main(argv=None):
    """Start the server, measure both, print, stop the server."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--count", type=int, default=3000, help="exchanges of each kind")
    parser.add_argument("--entries", type=int, default=1, help="log entries in each body")
    parser.add_argument("--serve", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(*args.serve)
    http_port, frame_port = testing.free_ports(2)
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(http_port), str(frame_port)])
    try:
        testing.wait_until(lambda: _answers(frame_port) and _answers(http_port), 15, "the exchange server")
        results = run(args, server.pid, http_port, frame_port)
        (http_p50, http_cpu), (frame_p50, frame_cpu) = results["http"], results["framed"]
        print(f"{args.count} exchanges of each kind, {args.entries} log entries a body, one at a time")
        print(f"  {'':28} {'p50 us':>8} {'CPU us':>8}   (CPU: both ends, an exchange)")
        print(f"  {'HTTP (Agent -> Klein)':28} {http_p50 * 1e6:8.0f} {http_cpu * 1e6:8.0f}")
        print(f"  {'framed, connection kept':28} {frame_p50 * 1e6:8.0f} {frame_cpu * 1e6:8.0f}")
        print(f"  framed / HTTP: p50 {frame_p50 / http_p50:.2f}, CPU {frame_cpu / http_cpu:.2f}")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(10)


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
