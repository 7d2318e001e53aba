"""
Unit tests of C{pygmy chaos} with several front ends
(L{pygmy.cli.chaos_frontends}, the load's and the schedule's parts), on a
C{Clock} against three fake front ends by URL (a dead one refuses
connections): the schedule kills the manager and a follower; the status
polls; the kill of the manager, the new manager, the restart and the
return as a follower; the cost writer and its reads through every front
end (a stale front end is caught); the load's reads going on to the next
front end while its buys are never sent twice.  No sockets, no processes.
"""

from __future__ import annotations

import json
import random

import pytest
from twisted.internet.defer import ensureDeferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock

from pygmy.cli import chaos_faults
from pygmy.cli.chaos_cluster import Abort, Cluster, Context
from pygmy.cli.chaos_frontends import CostWriter, Watch, crash_one_of_several
from pygmy.cli.chaos_load import Load
from pygmy.cli.invariants import DOWN, Fault
from pygmy.cli.invariants_frontends import FrontendObservations, check_visible_everywhere
from pygmy.config import load
from tests.fakes import REPLICA_SECTIONS

CONFIG = (
    "[cluster]\nsecret = s\ndata_dir = state\nheartbeat_interval = 0.2\nheartbeat_timeout = 0.6\n\n"
    "[frontend:1]\nport = 8080\nheartbeat_port = 8090\n\n"
    "[frontend:2]\nport = 8180\nheartbeat_port = 8190\n\n"
    "[frontend:3]\nport = 8280\nheartbeat_port = 8290\n\n"
    "[coordinator]\netcd = http://127.0.0.1:2379\nlease_ttl = 2\n\n" + REPLICA_SECTIONS
)


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "config.ini"
    path.write_text(CONFIG)
    return load(path)


class FakeResponse:
    def __init__(self, code, body):
        self.code, self.body = code, body

    def content(self):
        return succeed(json.dumps(self.body).encode())


class Fronts:
    """
    Three front ends by base URL: C{/status} (who leads, the views),
    C{/update} (the cost), C{/lookup}, C{/buy}, C{/search}; the C{dead} ones
    refuse; a C{stale} one answers lookups with the first cost it saw.
    """

    def __init__(self, config):
        self.names = {front.url: name for name, front in config.frontends.items()}
        self.leader, self.dead, self.stale, self.reading = "1", set(), set(), set()
        self.views = {"catalog": 3, "order": 2}
        self.cost, self.first_cost = "1.00", None
        self.seen: list[tuple[str, str, str]] = []

    def request(self, method, url, data=None, headers=None, timeout=None, **kwargs):
        base = "/".join(url.split("/")[:3])
        name, path = self.names[base], url[len(base) :]
        self.seen.append((name, method, path))
        if name in self.dead:
            return fail(ConnectionRefusedError())
        return succeed(FakeResponse(*self.answer(name, method, path, data)))

    def answer(self, name, method, path, data):
        if path == "/status":
            role = "leader" if name == self.leader else "follower"
            replicas = {"A": {"alive": True}, "B": {"alive": True}}
            services = {
                s: {"view": v, "primary": "A", "backups": ["B"], "replicas": replicas} for s, v in self.views.items()
            }
            block = {"name": name, "role": role, "leader": self.leader, "views_read": name not in self.reading}
            return 200, {"frontend": block, "services": services}
        if path.startswith("/update/"):
            self.cost = json.loads(data).get("cost", self.cost)
            self.first_cost = self.first_cost or self.cost
            return 200, {"item": {"id": 5, "cost": self.cost}}
        if path.startswith("/lookup/"):
            cost = self.first_cost if name in self.stale and self.first_cost else self.cost
            return 200, {"id": int(path.rsplit("/", 1)[1]), "cost": cost, "stock": 4}
        if path.startswith("/buy/"):
            return 200, {"order": {"id": len(self.seen), "item_id": 1}}
        return 200, {"items": []}


def run_of(config, fronts, clock=None, lines=None):
    clock = clock or Clock()
    run = Context(clock, config, fronts, random.Random(3), (lines if lines is not None else []).append)
    run.obs.frontends = FrontendObservations(tuple(config.frontends), 2.6)
    run.started = clock.seconds()
    return run


# The schedule


def test_with_several_front_ends_the_manager_and_a_follower_are_killed(config):
    assert chaos_faults.schedule(frontend=True, several=True) == (
        ("catalog", "primary"),
        ("catalog", "backup"),
        ("frontend", "manager"),
        ("order", "primary"),
        ("frontend", "follower"),
    )
    assert chaos_faults.schedule(frontend=False, several=True) == chaos_faults.FAULTS
    schedule = chaos_faults.FaultSchedule(run_of(config, None), None, 30.0, frontend=True)
    assert ("frontend", "manager") in schedule.faults
    assert {"frontend:1", "frontend:2", "frontend:3"} <= set(schedule.processes)


# The polls


def test_the_watch_polls_every_front_end_and_knows_the_manager(config):
    clock, fronts = Clock(), Fronts(config)
    run = run_of(config, fronts, clock)
    watch = Watch(run)
    watch.start()
    clock.pump([0.1] * 5)
    polls = run.obs.frontends.polls
    assert {p.name for p in polls} == {"1", "2", "3"} and len(polls) == 3 * 6
    assert watch.manager() == "1" and watch.new_manager("1") is None
    fronts.leader = "2"
    fronts.dead.add("1")
    clock.advance(0.1)
    assert watch.manager() == "2" and watch.new_manager("1") == pytest.approx(0.6)
    assert watch.latest["1"].role is None  # no answer
    assert watch.latest["3"].views == {"catalog": 3, "order": 2} and not watch.latest["3"].reading
    fronts.reading.add("3")  # restarted, its stored views not read yet
    clock.advance(0.1)
    assert watch.latest["3"].reading
    done = ensureDeferred(watch.stop())
    assert done.called and not watch.ticker.running


def test_two_front_ends_saying_leader_is_no_manager(config):
    clock, fronts = Clock(), Fronts(config)
    run = run_of(config, fronts, clock)
    watch = Watch(run)
    watch.start()
    watch.latest["3"] = watch.latest["3"].__class__("3", 0.0, 0.05, "leader", "3", {})
    assert watch.manager() is None


# The kill of a front end of several


def crash(config, role, monkeypatch, new_leader_after=1.0):
    clock, fronts, lines = Clock(), Fronts(config), []
    run = run_of(config, fronts, clock, lines)
    watch = Watch(run)
    watch.start()
    schedule = chaos_faults.FaultSchedule(run, Cluster(run), 10.0, frontend=True, watch=watch)
    events = []

    async def kill(fault, process):
        name = process.name.split(":")[1]
        fronts.dead.add(name)
        fault.target, fault.pid, fault.killed = process.name, 77, run.now()
        events.append(("kill", process.name, run.obs.frontend_down))
        if name == fronts.leader and new_leader_after is not None:
            clock.callLater(new_leader_after, setattr, fronts, "leader", "2")

    async def restart(process):
        fronts.dead.discard(process.name.split(":")[1])
        events.append(("restart", process.name, run.now()))

    monkeypatch.setattr(schedule, "kill", kill)
    monkeypatch.setattr(schedule, "restart", restart)
    fault = Fault("frontend", role)
    done = ensureDeferred(crash_one_of_several(schedule, fault))
    clock.pump([0.05] * 800)
    return fault, done, events, run, lines


def test_the_manager_is_killed_another_takes_over_and_it_comes_back_as_a_follower(config, monkeypatch):
    fault, done, events, run, lines = crash(config, "manager", monkeypatch)
    assert done.called and done.result is None
    assert events[0] == ("kill", "frontend:1", True)
    assert events[1][:2] == ("restart", "frontend:1")
    assert fault.failover - fault.killed == pytest.approx(1.0, abs=0.15)
    assert fault.restarted - fault.killed >= 2.5 * 0.6
    assert fault.ready <= fault.rejoined and not run.obs.frontend_down
    assert any("a new view manager after 1.0" in line for line in lines)
    assert lines[-1].endswith(f"frontend:1 is back as a follower ({fault.rejoined - fault.killed:.2f}s after the kill)")


def test_a_follower_is_killed_and_no_new_manager_is_waited_for(config, monkeypatch):
    fault, done, events, _, _ = crash(config, "follower", monkeypatch)
    assert done.called and done.result is None
    assert events[0][1] in ("frontend:2", "frontend:3")
    assert fault.failover is None and fault.rejoined is not None


def test_no_new_manager_aborts_the_fault(config, monkeypatch):
    fault, done, _, run, _ = crash(config, "manager", monkeypatch, new_leader_after=None)
    assert done.called
    failure = []
    done.addErrback(failure.append)
    assert failure[0].check(Abort) and str(failure[0].value) == "no new view manager within 30s"
    assert not run.obs.frontend_down


# The cost writer


def test_the_cost_writer_reads_every_new_cost_back_through_every_front_end(config):
    clock, fronts = Clock(), Fronts(config)
    run = run_of(config, fronts, clock)
    writer = CostWriter(run, Cluster(run), 5)
    writer.start()
    clock.pump([0.05] * 30)
    ensureDeferred(writer.stop())
    clock.pump([0.5] * 2)
    ledger = run.obs.frontends
    assert ledger.cost_item == 5 and len(ledger.cost_writes) >= 3
    assert len({w.value for w in ledger.cost_writes}) == len(ledger.cost_writes)
    assert all(w.acked is not None for w in ledger.cost_writes)
    assert len(ledger.cost_reads) == 3 * len(ledger.cost_writes)
    assert {r.frontend for r in ledger.cost_reads} == {"1", "2", "3"}
    assert check_visible_everywhere(run.obs).ok
    assert len(ledger.writes) == len(ledger.cost_writes)


def test_a_front_end_that_serves_a_stale_cost_is_caught(config):
    clock, fronts = Clock(), Fronts(config)
    fronts.stale.add("3")
    run = run_of(config, fronts, clock)
    writer = CostWriter(run, Cluster(run), 5)
    writer.start()
    clock.pump([0.05] * 30)
    problems = check_visible_everywhere(run.obs).problems
    assert problems and all("through 3 " in line for line in problems)


def test_a_dead_front_end_is_skipped_by_the_write_and_its_read(config):
    clock, fronts = Clock(), Fronts(config)
    fronts.dead.add("1")
    run = run_of(config, fronts, clock)
    writer = CostWriter(run, Cluster(run), 5)
    writer.start()
    clock.pump([0.05] * 5)
    ledger = run.obs.frontends
    assert ledger.cost_writes[0].acked is not None
    assert {r.frontend for r in ledger.cost_reads} == {"2", "3"}
    assert ("2", "POST", "/update/5") in fronts.seen


# The load


def test_reads_go_on_to_the_next_front_end_and_buys_are_never_sent_twice(config):
    clock, fronts = Clock(), Fronts(config)
    fronts.dead.add("1")
    run = run_of(config, fronts, clock)
    cluster = Cluster(run)
    mine = cluster.frontends.spread(0)
    job = Load(run, cluster, 1, [1, 2], ["t"], 1)
    run.obs.frontend_down = True
    ensureDeferred(job.buy(2, mine))
    assert [s for s in fronts.seen if s[1] == "POST"] == [("1", "POST", "/buy/2")]
    assert run.obs.buys[DOWN] == 1 and mine.url == config.frontends["2"].url
    ensureDeferred(job.read("/search/t", mine))
    fronts.dead.add("2")
    ensureDeferred(job.read("/search/t", mine))
    assert [s[0] for s in fronts.seen if s[2] == "/search/t"] == ["2", "2", "3"]
    assert run.obs.reads["ok"] == 2 and run.obs.reads["failed"] == 0
    ensureDeferred(job.buy(2, mine))
    assert run.obs.bought and run.obs.frontends.writes and list(run.obs.bought_at.values())[0] == 0.0
