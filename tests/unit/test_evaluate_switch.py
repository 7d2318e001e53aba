"""
C{pygmy evaluate} interrupted (Ctrl-C, SIGTERM) from its first restart of
the front end until the front end is back on its own config puts it back
before the reactor stops: C{react} stops without resuming the run, so the
run's own clean-up never comes.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from pygmy.cli.evaluate_cluster import FrontendSwitch


class TriggerReactor:
    """The system-event triggers of a reactor, recorded."""

    def __init__(self):
        self.triggers = {}
        self._next = 0

    def addSystemEventTrigger(self, phase, event, f, *args):
        self._next += 1
        self.triggers[self._next] = (phase, event, f)
        return self._next

    def removeSystemEventTrigger(self, handle):
        del self.triggers[handle]


@pytest.fixture
def front():
    original = SimpleNamespace(path="config.ini")
    run = SimpleNamespace(reactor=TriggerReactor(), config=original, echo=[].append)
    front = FrontendSwitch(run, cluster=None)
    front.lines = run.echo.__self__
    front.other = SimpleNamespace(path="cache-off.ini")
    return front


def fake_switches(front, fail_on=None):
    """Switches that only guard and record, as the real one does around its restart."""
    done = []

    async def switch(config):
        front._guard(True)
        if config is fail_on:
            raise RuntimeError("no such pid")
        front.current = config
        done.append(config.path)
        if config is front.original:
            front._guard(False)

    front.switch = switch
    return done


def run(coroutine_or_deferred):
    from twisted.internet.defer import ensureDeferred

    outcome = []
    ensureDeferred(coroutine_or_deferred).addBoth(outcome.append)
    assert outcome, "did not finish"
    return outcome[0]


def test_the_guard_is_on_from_the_first_switch_until_back_on_the_config(front):
    done = fake_switches(front)
    triggers = front.run.reactor.triggers
    run(front.switch(front.other))
    [(phase, event, _)] = triggers.values()
    assert (phase, event) == ("before", "shutdown")
    run(front.restore())
    assert done == ["cache-off.ini", "config.ini"]
    assert triggers == {}


def test_the_guard_stays_while_the_way_back_failed(front):
    fake_switches(front, fail_on=front.original)
    run(front.switch(front.other))
    with pytest.raises(RuntimeError):
        run(front.restore()).raiseException()
    assert len(front.run.reactor.triggers) == 1


def test_the_shutdown_puts_the_front_end_back_first_and_only_once(front):
    done = fake_switches(front)
    run(front.switch(front.other))
    [(_, _, at_shutdown)] = front.run.reactor.triggers.values()
    assert run(at_shutdown()) is None
    assert done == ["cache-off.ini", "config.ini"]
    assert front.lines == ["stopping: putting the front end back on config.ini first"]
    # The switch back during the shutdown adds no trigger of its own (the
    # one that fired is the reactor's to drop).
    assert len(front.run.reactor.triggers) == 1


def test_a_failed_restore_at_shutdown_is_said_and_does_not_stop_the_shutdown(front):
    fake_switches(front, fail_on=front.original)
    run(front.switch(front.other))
    [(_, _, at_shutdown)] = front.run.reactor.triggers.values()
    assert run(at_shutdown()) is None
    assert front.lines[-1] == "could not put the front end back: no such pid"
