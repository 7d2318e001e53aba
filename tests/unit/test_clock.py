"""
L{pygmy.clock}: durations are measured on a monotonic clock, while the
reactor schedules the calls.
"""

from twisted.internet.task import Clock, LoopingCall
from twisted.internet.testing import MemoryReactorClock

from pygmy.clock import MonotonicClock, monotonic, ordered_id


class SteppingWallClock(MemoryReactorClock):
    """A reactor whose wall clock the test steps."""


def test_seconds_ignore_a_wall_clock_step():
    reactor = SteppingWallClock()
    ticks = iter([100.0, 100.5])
    clock = MonotonicClock(reactor, now=lambda: next(ticks))
    first = clock.seconds()
    reactor.advance(-3600)  # the wall clock steps back an hour
    assert clock.seconds() - first == 0.5


def test_calls_are_scheduled_by_the_reactor_with_their_delay():
    reactor = MemoryReactorClock()
    clock = MonotonicClock(reactor, now=lambda: 5.0)
    called = []
    clock.callLater(2, called.append, "x")
    assert len(reactor.getDelayedCalls()) == 1 and clock.getDelayedCalls() == reactor.getDelayedCalls()
    reactor.advance(2)
    assert called == ["x"]


def test_a_looping_call_on_it_keeps_its_interval():
    reactor = MemoryReactorClock()
    now = [1000.0]
    clock = MonotonicClock(reactor, now=lambda: now[0])
    beats = []
    loop = LoopingCall(lambda: beats.append(now[0]))
    loop.clock = clock
    loop.start(0.5, now=True)
    for _ in range(3):
        now[0] += 0.5
        reactor.advance(0.5)
    loop.stop()
    assert beats == [1000.0, 1000.5, 1001.0, 1001.5]


def test_a_test_clock_is_used_as_it_is():
    clock = Clock()
    assert monotonic(clock) is clock


def test_a_reactor_is_wrapped_once():
    from twisted.internet import reactor

    wrapped = monotonic(reactor)
    assert isinstance(wrapped, MonotonicClock) and monotonic(wrapped) is wrapped


def test_a_wall_clock_step_declares_no_replica_dead(tmp_path):
    from types import SimpleNamespace

    from pygmy.config import load
    from pygmy.frontend.monitor import Monitor
    from tests.fakes import config_text

    path = tmp_path / "config.ini"
    path.write_text(config_text())
    reactor = MemoryReactorClock()
    now = [50.0]
    monitor = Monitor(load(path), MonotonicClock(reactor, now=lambda: now[0]), {})
    connection = SimpleNamespace(send=lambda line: None, transport=SimpleNamespace(loseConnection=lambda: None))
    monitor.connected("catalog", "A", connection)
    monitor.beat("catalog", "A", 0, 0, 0, "idle")
    reactor.advance(3600)  # the wall clock jumps an hour ahead
    now[0] += 0.1
    monitor.check()
    assert monitor.alive("catalog") == ["A"]
    now[0] += 10
    monitor.check()
    assert monitor.alive("catalog") == []


def test_the_front_end_and_the_replicas_measure_on_the_monotonic_clock(tmp_path):
    from pygmy.config import load
    from pygmy.frontend.service import frontend_service
    from pygmy.replication.replica import ReplicaParts
    from tests.fakes import config_text

    path = tmp_path / "config.ini"
    path.write_text(config_text(data_dir=str(tmp_path)))
    config = load(path)
    reactor = MemoryReactorClock()
    assert isinstance(frontend_service(config, reactor).monitor.clock, MonotonicClock)
    parts = ReplicaParts(config, config.replica("catalog", "A"), object(), reactor)
    assert isinstance(parts.node.timer, MonotonicClock) and parts.node.clock is reactor
    assert isinstance(parts.node.catchup.clock, MonotonicClock)


def test_ordered_ids_sort_by_the_time_they_were_made_and_never_repeat():
    now = iter([5, 5, 6, 2**64 + 7]).__next__
    made = [ordered_id(now=now) for _ in range(4)]
    assert all(len(made_id) == 32 and int(made_id, 16) >= 0 for made_id in made)
    assert made[0][:16] == made[1][:16] == f"{5:016x}" and made[0] != made[1]
    assert made[1] < made[2]
    assert made[3][:16] == f"{7:016x}"  # past 2**64 ns (in 2554) it wraps, still 32 digits
    many = {ordered_id() for _ in range(10_000)}
    assert len(many) == 10_000
    assert ordered_id(noise=lambda n: bytes(range(n)))[16:] == "0001020304050607"
