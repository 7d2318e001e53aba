"""
The arithmetic behind what C{benchmarks/throughput.py} prints as the
ceiling of issue 14's first ratio (L{bounds}), and its reading of a
process's CPU per thread from C{/proc} (L{cpu_seconds}): the benchmark
never runs in the suite, so these keep it honest.
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "throughput.py"


@pytest.fixture(scope="module")
def throughput():
    spec = importlib.util.spec_from_file_location("throughput_under_test", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def spin(seconds: float) -> None:
    """Use C{seconds} of this thread's CPU."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_cpu_seconds_tells_the_main_thread_from_the_others(throughput):
    main, other = throughput.cpu_seconds(os.getpid())
    spun, done = threading.Event(), threading.Event()

    def work():
        spin(0.3)
        spun.set()
        done.wait(10)  # alive while it is measured: /proc lists live threads only

    worker = threading.Thread(target=work)
    worker.start()
    try:
        assert spun.wait(10)
        after_main, after_other = throughput.cpu_seconds(os.getpid())
    finally:
        done.set()
        worker.join()
    assert after_other - other >= 0.2  # the worker's spin, counted as another thread's
    assert after_main - main < 0.2  # the main thread only waited for it
    spin(0.3)
    assert throughput.cpu_seconds(os.getpid())[0] - after_main >= 0.2


def test_the_ceiling_is_the_cores_over_the_database_work_and_the_bare_route(throughput, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    seconds = 5
    # The bare route: 8,000 requests/s; its server used 4 s of CPU and wrk 1 s in 5 s.
    ref, ref_cpu = (8000.0, 1.0, 2.0, 0), {"reference": (4.0, 0.0), "load": (1.0, 0.0)}
    # Buys: 1,000/s; per buy 0.5 ms of reactor and 0.3 ms of SQLite in order:A, 0.2 ms of SQLite in order:B.
    buys = (1000.0, 50.0, 90.0, 0)
    buy_cpu = {"order:A": (2.5, 1.5), "order:B": (0.0, 1.0), "load": (0.1, 0.0)}
    bound = throughput.bounds(seconds, ref, ref_cpu, buys, buy_cpu)
    assert bound["route"] == pytest.approx(5.0 / 40_000)  # 0.125 ms a request
    assert bound["database"] == pytest.approx(0.0005)  # 0.3 + 0.2 ms a buy
    assert bound["reactors"] == pytest.approx(0.0005)
    assert bound["per"]["order:A"] == pytest.approx((0.0005, 0.0003))
    assert bound["ceiling"] == pytest.approx(2 / 0.000625)  # 3,200 buys/s
    assert bound["ceiling_ratio"] == pytest.approx(3200 / 8000)


def test_the_bounds_are_printed_in_milliseconds(throughput, capsys):
    bound = {
        "cores": 2,
        "per": {"order:A": (0.0005, 0.0003), "order:B": (0.0, 0.0002), "load": (0.00002, 0.0)},
        "database": 0.0005,
        "reactors": 0.0005,
        "route": 0.000125,
        "ceiling": 3200.0,
        "ceiling_ratio": 0.4,
        "one": {"order:A": (0.003, 0.0012), "catalog:A": (0.002, 0.0005)},
        "primaries": ["order:A", "catalog:A"],
        "goal_p50": 0.00315,
    }
    throughput.print_bounds(bound, 50)
    out = capsys.readouterr().out
    assert "    order:A       0.500 +  0.300\n" in out
    assert "    load (wrk)    0.020\n" in out
    assert "SQLite threads 0.500 ms a buy, the processes' reactor threads 0.500 ms" in out
    assert "3200 buys/s, 0.400 of the bare route" in out
    assert "SQLite threads 1.70 ms a buy (order:A 1.20, catalog:A 0.50" in out
    assert "the goal's buy p50 3.15 ms" in out
