"""
Operations: C{--log-format}, the warning about the default secret, and the
heartbeat flood limit.
"""

import json

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.python import usage

from pygmy.catalog.tap import Options
from pygmy.config import load
from pygmy.process import logs
from pygmy.replication.heartbeat import MonitorProtocol
from tests.fakes import config_text


def config_file(tmp_path, secret="not-the-default"):
    path = tmp_path / "config.ini"
    path.write_text(config_text(secret=secret))
    return path


def test_log_format_json_sets_twistds_logger(tmp_path):
    options = Options()
    options.parent = {"logfile": str(tmp_path / "catalog.log"), "nodaemon": False}
    options.parseOptions(["--config", str(config_file(tmp_path)), "--replica", "A", "--log-format", "json"])
    assert options.parent["logger"] == "pygmy.process.logs.json_observer"
    observer = logs.json_observer()
    from twisted.logger import Logger

    Logger(observer=observer).info("hello {who}", who="world")
    line = (tmp_path / "catalog.log").read_text().strip().lstrip("\x1e")
    event = json.loads(line)
    assert event["log_format"] == "hello {who}" and event["who"] == "world"


def test_log_format_must_be_known(tmp_path):
    with pytest.raises(usage.UsageError):
        Options().parseOptions(["--config", str(config_file(tmp_path)), "--replica", "A", "--log-format", "xml"])


def test_default_secret_is_warned_about(tmp_path):
    with capturedLogs() as events:
        logs.warn_about_defaults(load(config_file(tmp_path, "change-me"), environ={}))
    assert [e["log_level"].name for e in events] == ["warn"]
    with capturedLogs() as events:
        logs.warn_about_defaults(load(config_file(tmp_path, "long-random-secret"), environ={}))
    assert events == []


class Monitor:
    def __init__(self):
        self.beats = 0

    def knows(self, service, replica):
        return True

    def connected(self, service, replica, protocol):
        pass

    def is_current(self, service, replica, protocol):
        return True

    def beat(self, *args):
        self.beats += 1

    def disconnected(self, *args):
        pass


def test_a_flood_of_heartbeat_lines_closes_the_connection():
    from pygmy.replication.heartbeat import proof

    clock, monitor = Clock(), Monitor()
    protocol = MonitorProtocol(monitor, "s3cret", clock, hello_timeout=1.0)
    protocol.MAX_RATE = 10
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(f"HELLO catalog A {proof('s3cret', 'catalog', 'A', protocol.nonce)}\n".encode())
    beat = b"BEAT catalog A 1 0 0 backup\n"
    protocol.dataReceived(beat * 9)
    assert not transport.disconnecting and monitor.beats == 9
    clock.advance(1.5)
    protocol.dataReceived(beat * 11)
    assert transport.disconnecting and monitor.beats == 19
    protocol.connectionLost(None)
    assert clock.getDelayedCalls() == []
