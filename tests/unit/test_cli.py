"""
Unit tests of the C{pygmy} command: argument parsing, the launcher's view
of processes and pid files, and the stock a chaos run sets before its
snapshot.  The invariant checks are in C{test_invariants.py}.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pygmy import cli
from pygmy.cli import chaos, launcher
from pygmy.config import load
from tests.fakes import config_text

CONFIG = config_text(data_dir="state")


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "config.ini"
    path.write_text(CONFIG)
    return load(path)


# Arguments


def test_up_and_down_arguments():
    args = cli.build_parser().parse_args(["up", "--config", "x.ini", "--only", "catalog:A", "--only", "frontend"])
    assert (args.command, args.config, args.only) == ("up", "x.ini", ["catalog:A", "frontend"])
    args = cli.build_parser().parse_args(["down"])
    assert (args.command, args.config, args.only) == ("down", "config.ini", [])


def test_chaos_arguments_and_defaults():
    args = cli.build_parser().parse_args(["chaos", "-c", "c.ini", "--duration", "6", "--clients", "3", "--seed", "42"])
    assert (args.config, args.duration, args.clients, args.seed) == ("c.ini", 6.0, 3, 42)
    args = cli.build_parser().parse_args(["chaos"])
    assert (args.duration, args.clients, args.seed) == (30.0, 8, None)


@pytest.mark.parametrize(
    "bad", [["chaos", "--clients", "0"], ["chaos", "--duration", "-1"], ["chaos", "--seed", "x"], ["nope"]]
)
def test_bad_arguments_exit_2(bad, capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(bad)
    assert exit.value.code == 2
    assert "usage: pygmy" in capsys.readouterr().err


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 0
    assert "up" in capsys.readouterr().out


def test_bad_config_is_one_line(tmp_path, capsys):
    assert cli.main(["up", "--config", str(tmp_path / "missing.ini")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.ini: cannot read" in err[0]


def test_unknown_only_is_one_line(config, capsys):
    assert cli.main(["down", "--config", str(config.path), "--only", "catalog:Z"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--only catalog:Z: no such process" in err[0]


# The launcher


def test_processes_replicas_first_then_front_end(config):
    found = launcher.processes(config)
    assert [p.name for p in found] == ["catalog:A", "catalog:B", "order:A", "order:B", "frontend"]
    data = config.path.parent / "state"
    assert found[0].pidfile == data / "catalog-A.pid" and found[0].logfile == data / "catalog-A.log"
    assert found[-1].pidfile == data / "frontend.pid" and found[-1].logfile == data / "frontend.log"
    assert found[0].ready_url == "http://127.0.0.1:8081/status"
    assert found[-1].ready_url == "http://127.0.0.1:8080/health"


def test_only_picks_processes_or_services(config):
    assert [p.name for p in launcher.processes(config, ["frontend", "catalog:B"])] == ["catalog:B", "frontend"]
    assert [p.name for p in launcher.processes(config, ["order"])] == ["order:A", "order:B"]
    with pytest.raises(launcher.LaunchError, match="known: catalog:A, catalog:B"):
        launcher.processes(config, ["catalog:C"])


def test_command_is_daemonised_twistd_of_the_role(config):
    catalog, front = launcher.processes(config, ["catalog:A", "frontend"])
    assert launcher.command(config, catalog) == [
        launcher.TWISTD,
        f"--pidfile={catalog.pidfile}",
        f"--logfile={catalog.logfile}",
        "pygmy-catalog",
        "--config",
        str(config.path.resolve()),
        "--replica",
        "A",
    ]
    command = launcher.command(config, front)
    assert command[3:] == ["pygmy-frontend", "--config", str(config.path.resolve())]
    assert "-n" not in command and Path(launcher.TWISTD).parent == Path(sys.executable).parent


@pytest.fixture
def pretender(tmp_path):
    """A live process whose command line looks like catalog replica A."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "pygmy-catalog", "--replica", "A"])
    yield child
    child.kill()
    child.wait()


def test_pid_files_live_stale_and_foreign(config, pretender):
    catalog_a, catalog_b = launcher.processes(config, ["catalog:A", "catalog:B"])
    catalog_a.data_dir.mkdir()
    assert launcher.read_pid(catalog_a) is None
    catalog_a.pidfile.write_text(str(pretender.pid))
    assert launcher.running_pid(catalog_a) == pretender.pid
    # Alive, but not catalog:B's twistd: a reused pid is never signalled.
    catalog_b.pidfile.write_text(str(pretender.pid))
    assert launcher.running_pid(catalog_b) is None
    assert launcher.clear_stale(catalog_b) and not catalog_b.pidfile.exists()
    catalog_b.pidfile.write_text("garbage")
    assert launcher.read_pid(catalog_b) is None


def test_up_refuses_a_live_pid_file(config, pretender):
    (catalog,) = launcher.processes(config, ["catalog:A"])
    catalog.data_dir.mkdir()
    catalog.pidfile.write_text(str(pretender.pid))
    with pytest.raises(launcher.LaunchError, match=rf"already running: catalog:A \(pid {pretender.pid}\)"):
        launcher.up(config, ["catalog:A"], echo=lambda line: None)
    assert pretender.poll() is None


def test_down_stops_by_pid_and_tolerates_stale_files(config, pretender):
    catalog_a, order_a = launcher.processes(config, ["catalog:A", "order:A"])
    catalog_a.data_dir.mkdir()
    catalog_a.pidfile.write_text(str(pretender.pid))
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    order_a.pidfile.write_text(str(finished.pid))
    lines = []
    assert launcher.down(config, echo=lines.append) == 0
    assert pretender.wait(5) == -signal.SIGTERM
    said = dict(line.split(None, 1) for line in lines)
    assert said["catalog:A"] == f"stopped (pid {pretender.pid})"
    assert said["order:A"].startswith("not running (removed stale pid file")
    assert said["frontend"] == "not running (no pid file)"
    assert not catalog_a.pidfile.exists() and not order_a.pidfile.exists()


def test_zombie_counts_as_gone(pretender):
    """A killed child nobody has reaped yet is a zombie: it counts as gone."""
    assert launcher.pid_alive(pretender.pid)
    pretender.send_signal(signal.SIGKILL)
    for _ in range(100):
        if not launcher.pid_alive(pretender.pid):
            break
        time.sleep(0.05)
    assert not launcher.pid_alive(pretender.pid)
    assert pretender.returncode is None  # not reaped: still a zombie


# Chaos set-up


def test_stock_targets_set_the_scarce_item_and_top_up_the_rest():
    stock = {1: 1000, 2: 3, 3: 199, 4: 200, 5: chaos.TOP_UP}
    # 1 is the scarce one, 2 and 3 are below TOP_UP_BELOW, 4 and 5 are left alone.
    assert chaos.stock_targets(stock, scarce=1) == {1: chaos.SCARCE_STOCK, 2: chaos.TOP_UP, 3: chaos.TOP_UP}
    assert chaos.stock_targets({5: chaos.SCARCE_STOCK, 4: chaos.TOP_UP}, scarce=5) == {}
