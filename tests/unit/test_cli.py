"""
Unit tests of the ``pygmy`` command: argument parsing, the launcher's view
of processes and pid files, and the chaos run's invariant checks and report
on synthetic observations (a violation must be caught).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from pygmy import chaos, cli, launcher
from pygmy.config import load

CONFIG = """\
[cluster]
secret = s3cret
data_dir = state

[frontend]
port = 8080
heartbeat_port = 8090

[catalog:A]
port = 8081
[catalog:B]
port = 8082
[order:A]
port = 8083
[order:B]
port = 8084
"""


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


@pytest.mark.parametrize("bad", [["chaos", "--clients", "0"], ["chaos", "--duration", "-1"], ["chaos", "--seed", "x"], ["nope"]])
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


# Chaos checks


def healthy() -> chaos.Observations:
    """A run in which everything went right."""
    obs = chaos.Observations(
        start_stock={1: 10, 2: 1000},
        end_stock={1: 3, 2: 997},
        replica_stock={"catalog:A": {1: 3, 2: 997}, "catalog:B": {1: 3, 2: 997}},
        restocks=Counter({1: 4}),
        orders_before={1: 2},
        orders_after={1: 2, 2: 1, 3: 1, 4: 2, 5: 1, 6: 1, 7: 1, 8: 2, 9: 1, 10: 1, 11: 2, 12: 1, 13: 1, 14: 1, 15: 1},
        bought={2: 1, 3: 1, 4: 2, 5: 1},
        buys=Counter({"200": 4, "409": 3, "503": 1}),
        reads=Counter({"ok": 50}),
        divergence={"catalog": "", "order": ""},
        faults=[chaos.Fault("catalog", "primary", "catalog:A", 123, 1.0, 1.2, 3.0, 4.0, 4.5)],
    )
    # 14 orders placed in the run: 11 of item 1 (10 + 4 = 3 + 11), 3 of item 2.
    return obs


def verdicts(obs) -> dict[int, tuple[str, ...]]:
    return {check.number: check.problems for check in chaos.check_all(obs)}


def test_a_healthy_run_holds_every_invariant():
    checks = chaos.check_all(healthy())
    assert [c.number for c in checks] == [1, 2, 3, 4, 5, 6]
    assert all(c.ok for c in checks), [c.problems for c in checks]
    lines = chaos.report(healthy(), checks)
    assert lines[-1] == "result: all invariants hold"
    assert "buys: 4 ok, 3 out of stock (409), 1 unavailable (503), 0 other" in lines
    assert any("kill -9 catalog:A (catalog primary, pid 123) at 1.00s" in line for line in lines)


def test_negative_stock_is_a_violation():
    obs = healthy()
    obs.replica_stock["catalog:B"][1] = -1
    obs.negative_seen.append("lookup at 2.00s: item 1 stock -1")
    problems = verdicts(obs)[1]
    assert "catalog:B: item 1 stock -1" in problems and len(problems) == 2


def test_unbalanced_stock_is_a_violation():
    obs = healthy()
    obs.end_stock[1] = 2  # a copy gone without an order
    assert verdicts(obs)[2] == ("item 1: start 10 + restocks 4 = 14, but stock 2 + orders 11 = 13",)
    obs = healthy()
    obs.restocks[1] += 1  # a restock nobody sees in the stock
    assert verdicts(obs)[2] == ("item 1: start 10 + restocks 5 = 15, but stock 3 + orders 11 = 14",)
    obs = healthy()
    del obs.end_stock[2]
    assert verdicts(obs)[2] == ("item 2: no current stock",)


def test_lost_old_orders_and_unresolved_restocks_are_violations():
    obs = healthy()
    del obs.orders_after[1]
    obs.unresolved_restocks.append("+2 to item 1 (Idempotency-Key k)")
    problems = verdicts(obs)[2]
    assert "restock of unknown outcome: +2 to item 1 (Idempotency-Key k)" in problems
    assert "orders that existed before the run are gone: [1]" in problems


def test_acknowledged_buy_missing_or_unretrievable_is_a_violation():
    obs = healthy()
    obs.bought[99] = 2
    obs.bought[4] = 1
    obs.duplicate_orders.append(5)
    obs.unretrievable[3] = "503 unavailable"
    problems = verdicts(obs)[3]
    assert problems == (
        "order id 5 was answered to two different buys",
        "order 4: bought item 1, table says 2",
        "order 99 (item 2) answered 200 but is not in the order table",
        "GET /orders/3: 503 unavailable",
    )


def test_divergent_replicas_are_a_violation():
    obs = healthy()
    obs.divergence["order"] = "after 5 s: A seq 10 checksum aa, B seq 9 checksum bb"
    assert verdicts(obs)[4] == ("order: after 5 s: A seq 10 checksum aa, B seq 9 checksum bb",)


def test_failed_reads_and_5xx_are_a_violation():
    obs = healthy()
    for n in range(chaos.KEEP + 3):
        obs.fail(f"GET /lookup/1: 500 internal #{n}")
    problems = verdicts(obs)[5]
    assert problems[0] == "GET /lookup/1: 500 internal #0"
    assert problems[-1] == "... and 3 more" and len(problems) == chaos.KEEP + 1


def test_a_replica_that_never_came_back_is_a_violation():
    obs = healthy()
    obs.faults.append(chaos.Fault("order", "primary", "order:B", 7, 5.0, error="restart failed: boom"))
    assert verdicts(obs)[6] == ("order:B: restart failed: boom",)
    lines = chaos.report(obs, chaos.check_all(obs))
    assert lines[-1] == "result: VIOLATED: 6"
    assert "  [FAIL] 6. every killed replica restarted and rejoined" in lines
    assert "         order:B: restart failed: boom" in lines


def test_report_lists_every_violated_invariant():
    obs = healthy()
    obs.end_stock[2] = -1
    obs.reads["failed"] += 1
    obs.fail("GET /list: no answer (timeout)")
    lines = chaos.report(obs, chaos.check_all(obs))
    assert lines[-1] == "result: VIOLATED: 1, 2, 5"
    assert "reads: 50 ok, 1 failed" in lines
