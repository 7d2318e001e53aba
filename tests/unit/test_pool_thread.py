"""
The fake pools run their jobs at once, in the test's thread; what a job
hands the reactor (C{callFromThread}) still runs after the job, before its
result, as on a real reactor (L{tests.fakes.PoolThread}).  So the store's
C{logged} callbacks run once their batch is committed, with no branch in
the store for fake pools.
"""

from __future__ import annotations

import sqlite3

from pygmy.order.orders import BUYS, INTENT, ORDERS, _record_intent
from pygmy.replication.tables import fingerprint_of
from tests.fakes import PoolThread, SyncReactor, SyncThreadPool, result, sync_store


def test_calls_sent_from_a_job_run_after_it_and_before_its_result():
    said = []

    def job():
        PoolThread.call_from_thread(said.append, "first sent")
        PoolThread.call_from_thread(said.append, "second sent")
        said.append("job done")
        return "value"

    SyncThreadPool().callInThreadWithCallback(lambda ok, value: said.append(("result", ok, value)), job)
    assert said == ["job done", "first sent", "second sent", ("result", True, "value")]


def test_a_failed_job_still_delivers_what_it_sent_first():
    said = []

    def job():
        PoolThread.call_from_thread(said.append, "sent")
        raise ValueError("no")

    SyncThreadPool().callInThreadWithCallback(lambda ok, value: said.append((ok, value.type)), job)
    assert said == ["sent", (False, ValueError)]


def test_outside_a_job_a_call_runs_at_once():
    said = []
    PoolThread.call_from_thread(said.append, "now")
    assert said == ["now"]


def test_a_stores_logged_write_is_told_once_committed_and_before_its_answer(tmp_path):
    reactor = SyncReactor()
    store = sync_store(tmp_path / "order.sqlite", (ORDERS, BUYS), None, reactor)
    store.startService()
    said = []

    def logged(write):
        # Another connection sees the entry: its transaction has committed.
        with sqlite3.connect(store.path) as other:
            [(entries,)] = other.execute("SELECT count(*) FROM log").fetchall()
        said.append(("logged", write.seq, entries))

    d = store.write(INTENT + "r1", _record_intent, 1, "r1", fingerprint=fingerprint_of("buy", 1), logged=logged)
    d.addCallback(lambda write: said.append(("answered", write.seq)))
    result(d)
    assert said == [("logged", 1, 1), ("answered", 1)]
    store.stopService()
