"""
L{pygmy.tasks}: work that a caller's cancellation does not stop, and one
task per key however many callers wait.
"""

import pytest
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.logger import capturedLogs

from pygmy.tasks import Tasks, shielded
from tests.fakes import result


def test_cancelling_the_waiter_leaves_the_work_running():
    work = Deferred(lambda d: pytest.fail("the work was cancelled"))
    waiter = shielded(work)
    waiter.cancel()
    with pytest.raises(CancelledError):
        result(waiter)
    work.callback("done")


def test_the_waiter_gets_the_outcome():
    work = Deferred()
    waiter = shielded(work)
    work.callback(7)
    assert result(waiter) == 7


def test_a_failure_nobody_hears_is_logged():
    work = Deferred()
    waiter = shielded(work, "a write")
    waiter.cancel()
    waiter.addErrback(lambda f: None)
    with capturedLogs() as events:
        work.errback(ValueError("disk on fire"))
    assert [e["what"] for e in events if "log_failure" in e] == ["a write"]


def test_a_failure_someone_hears_is_not_logged():
    work = Deferred()
    waiter = shielded(work)
    with capturedLogs() as events:
        work.errback(ValueError("no"))
    assert not [e for e in events if "log_failure" in e]
    with pytest.raises(ValueError):
        result(waiter)


def test_one_task_per_key_and_every_caller_hears_it():
    tasks = Tasks("buy")
    started = []
    work = Deferred()

    def start():
        started.append(1)
        return work

    first, second = tasks.run("k", start), tasks.run("k", start)
    assert started == [1] and tasks.running("k")
    first.cancel()
    first.addErrback(lambda f: None)
    work.callback("order 5")
    assert result(second) == "order 5"
    assert not tasks.running("k") and len(tasks) == 0


def test_a_finished_task_is_started_again_for_a_new_caller():
    tasks = Tasks("buy")
    calls = []

    def start():
        calls.append(1)
        return succeed(len(calls))

    assert result(tasks.run("k", start)) == 1
    assert result(tasks.run("k", start)) == 2
    assert len(tasks) == 0


def test_a_coroutine_runs_to_its_end_after_its_caller_cancels():
    tasks = Tasks("buy")
    gate, steps = Deferred(), []

    async def buy():
        steps.append("decrement")
        await gate
        steps.append("order")
        return "ok"

    waiter = tasks.run("k", buy)
    waiter.cancel()
    waiter.addErrback(lambda f: None)
    gate.callback(None)
    assert steps == ["decrement", "order"]
