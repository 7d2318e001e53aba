"""
Unit tests of the run of C{pygmy evaluate}: its request plans
(L{pygmy.cli.evaluate}), its handling of the cluster
(L{pygmy.cli.evaluate_cluster}: the running check, the copy of the config
with the cache off, the stock, the counters) and its faults
(L{pygmy.cli.evaluate_faults}) on a C{Clock}, with the front end, the
replicas and the processes faked.  No sockets, no processes.
"""

from __future__ import annotations

import json
import random
from argparse import Namespace

import pytest
from treq.testing import StubTreq
from twisted.internet.defer import ensureDeferred, succeed
from twisted.internet.task import Clock
from twisted.web.resource import Resource

from pygmy import cli
from pygmy.cli import evaluate, evaluate_cluster, evaluate_faults, loadgen
from pygmy.cli.chaos_cluster import Abort, Cluster, Context
from pygmy.cli.loadgen import Sample
from pygmy.config import load
from tests.fakes import REPLICA_SECTIONS, result
from tests.unit import test_lifecycle

#: The fixture of test_lifecycle.py: a config.ini with its data_dir made.
config = test_lifecycle.config


class FakeHTTP:
    """A treq-like client: C{answer(method, url, body)} gives C{(status, JSON body)}; records what was sent."""

    def __init__(self, answer):
        self.answer = answer
        self.sent = []

    def request(self, method, url, data=None, headers=None, timeout=None, **kwargs):
        self.sent.append((method, url, None if data is None else json.loads(data)))
        code, body = self.answer(method, url, data)
        return succeed(Namespace(code=code, content=lambda: succeed(json.dumps(body).encode())))


def context(config, http=None, clock=None) -> Context:
    lines = []
    run = Context(clock or Clock(), config, http, random.Random(5), lines.append)
    run.lines = lines
    return run


# The command line


def test_the_sub_command_parses_and_main_hands_over_the_arguments(monkeypatch):
    seen = {}

    def fake_main(args, argv):
        seen.update(out=args.out, quick=args.quick, argv=argv)
        return 0

    monkeypatch.setattr(evaluate, "main", fake_main)
    assert cli.main(["evaluate", "--out", "report", "--quick"]) == 0
    assert seen == {"out": "report", "quick": True, "argv": ["--out", "report", "--quick"]}


# The request plans


def test_the_writes_plan_buys_then_adds_the_copy_back_book_by_book():
    plan = evaluate.WritesPlan("http://f", [1, 2], {"Authorization": "Bearer s"})
    requests = [plan(n) for n in range(5)]
    assert [(r.operation, r.method, r.url) for r in requests] == [
        ("buy", "POST", "http://f/buy/1"),
        ("update", "POST", "http://f/update/1"),
        ("buy", "POST", "http://f/buy/2"),
        ("update", "POST", "http://f/update/2"),
        ("buy", "POST", "http://f/buy/1"),
    ]
    assert json.loads(requests[1].body) == {"stock_delta": 1} and requests[0].body is None
    assert requests[1].headers == {"Authorization": "Bearer s", "Content-Type": "application/json"}


def test_the_invalidation_plan_updates_then_looks_up_twice():
    plan = evaluate.InvalidationPlan("http://f", [4, 7], {})
    assert [(plan(n).operation, plan(n).url) for n in range(6)] == [
        ("update", "http://f/update/4"),
        ("miss", "http://f/lookup/4"),
        ("hit", "http://f/lookup/4"),
        ("update", "http://f/update/7"),
        ("miss", "http://f/lookup/7"),
        ("hit", "http://f/lookup/7"),
    ]


def test_the_load_sends_a_requests_body():
    class Recorder(Resource):
        isLeaf = True

        def __init__(self):
            super().__init__()
            self.bodies = []

        def render(self, request):
            self.bodies.append((request.method, request.content.read()))
            return b"{}"

    recorder = Recorder()
    plan = evaluate.WritesPlan("http://f", [3], {})
    found = result(loadgen.drive(Clock(), StubTreq(recorder), plan, clients=1, count=2))
    assert [s.operation for s in found] == ["buy", "update"] and all(s.ok for s in found)
    assert recorder.bodies == [(b"POST", b""), (b"POST", b'{"stock_delta": 1}')]


# The cluster


def test_require_running_names_what_does_not_run_and_how_to_start_it(config):
    with pytest.raises(Abort) as caught:
        evaluate_cluster.require_running(config)
    assert str(caught.value) == (
        f"not running (no live pid file in {config.cluster.data_dir}): catalog:A, catalog:B, order:A, order:B, "
        f"frontend; start the cluster with `pygmy up --config {config.path}`"
    )


def test_the_cache_off_copy_is_the_same_cluster_without_a_cache(tmp_path):
    (tmp_path / "etc").mkdir()
    path = tmp_path / "etc" / "config.ini"
    path.write_text(
        "[cluster]\nsecret = s3cret ; a comment\ndata_dir = state\nheartbeat_interval = 0.3\n\n"
        "[frontend]\nport = 8080\nheartbeat_port = 8090\ncache_size = 50\nlisten = unix:front.sock\n\n"
        + REPLICA_SECTIONS
    )
    original = load(path)
    original.cluster.data_dir.mkdir()
    copy = evaluate_cluster.cache_off_copy(original)
    assert copy == tmp_path / "etc" / "state" / evaluate_cluster.CACHE_OFF_NAME
    assert copy.stat().st_mode & 0o777 == 0o600
    found = load(copy)
    assert found.frontend.cache_size == 0
    assert found.cluster.data_dir == original.cluster.data_dir
    assert found.frontend.listen == original.frontend.listen == f"unix:{tmp_path / 'etc' / 'front.sock'}"
    assert (found.cluster.secret, found.cluster.heartbeat_interval) == ("s3cret", 0.3)
    assert found.replicas == original.replicas and found.frontend.port == 8080


def test_counted_is_the_growth_of_each_counter():
    before = {"hits": 5, "misses": 2, "invalidations": 1, "refused_fills": 0, "size": 9}
    after = {"hits": 12, "misses": 2, "invalidations": 4, "refused_fills": 1, "size": 3}
    assert evaluate_cluster.counted(before, after) == {"hits": 7, "misses": 0, "invalidations": 3, "refused_fills": 1}


def test_restock_tops_up_the_low_items_only(config):
    stock = {1: 150, 2: 900, 3: 0}

    def answer(method, url, data):
        if "/list" in url:
            return 200, {"items": [{"id": i, "stock": s} for i, s in stock.items()], "next": None}
        item = int(url.rsplit("/", 1)[1])
        stock[item] += json.loads(data)["stock_delta"]
        return 200, {"item": {"id": item, "stock": stock[item]}}

    http = FakeHTTP(answer)
    run = context(config, http)
    assert result(ensureDeferred(evaluate_cluster.restock(Cluster(run)))) == {1: 1000, 2: 900, 3: 1000}
    assert stock == {1: 1000, 2: 900, 3: 1000}
    assert [(m, u.rsplit("/", 2)[-2:], b) for m, u, b in http.sent if m == "POST"] == [
        ("POST", ["update", "1"], {"stock_delta": 850}),
        ("POST", ["update", "3"], {"stock_delta": 1000}),
    ]


# The faults


class FakeCluster:
    """
    The front end's view of the catalog as a kill and a restart change it:
    view 3 (A primary, B backup); 0.3 s after the kill a view 4 without
    the killed replica; 0.4 s after the restart a view 5 with it back.
    """

    def __init__(self, run: Context, role: str):
        self.run, self.role = run, role
        self.killed = self.restarted = None

    async def view(self, service):
        now = self.run.reactor.seconds()
        gone = "A" if self.role == "primary" else "B"
        if self.restarted is not None and now >= self.restarted + 0.4:
            primary = "B" if self.role == "primary" else "A"
            return {"view": 5, "primary": primary, "backups": [gone], "in_sync": [primary, gone]}
        if self.killed is not None and now >= self.killed + 0.3:
            left = "B" if self.role == "primary" else "A"
            return {"view": 4, "primary": left, "backups": [], "in_sync": [left]}
        return {"view": 3, "primary": "A", "backups": ["B"], "in_sync": ["A", "B"]}


class FakeSchedule:
    """The kill and restart of L{pygmy.cli.chaos_faults.FaultSchedule}, on the fake cluster's clock."""

    def __init__(self, run: Context, cluster: FakeCluster):
        self.run, self.cluster = run, cluster
        self.processes = {f"catalog:{n}": Namespace(name=f"catalog:{n}") for n in "AB"}

    async def kill(self, fault, process):
        fault.target, fault.pid, fault.killed = process.name, 99, self.run.now()
        self.cluster.killed = self.run.reactor.seconds()

    async def restart(self, process):
        from pygmy.cli import lifecycle

        self.cluster.restarted = self.run.reactor.seconds()
        await lifecycle.sleep(self.run.reactor, 0.25)  # until it answers


def crash(config, role: str) -> evaluate_faults.FaultRun:
    clock = Clock()
    clock.advance(100)
    run = context(config, clock=clock)
    cluster = FakeCluster(run, role)
    fault = evaluate_faults.FaultRun(run, cluster, FakeSchedule(run, cluster), "catalog", role)
    fault.started, fault.note = clock.seconds(), run.lines.append
    done = ensureDeferred(fault.run(1.0, 2.0))
    while not done.called:
        clock.advance(0.01)
    return fault


@pytest.mark.parametrize("role, target", [("primary", "catalog:A"), ("backup", "catalog:B")])
def test_a_fault_notes_the_kill_the_new_view_the_restart_and_the_rejoin(config, role, target):
    fault = crash(config, role)
    f = fault.fault
    assert f.error == "" and f.target == target
    assert f.killed == pytest.approx(1.0, abs=0.011)
    assert f.failover - f.killed == pytest.approx(0.3, abs=0.03)  # looked at every 20 ms
    assert f.restarted == pytest.approx(3.0, abs=0.011)
    assert f.ready - f.restarted == pytest.approx(0.25, abs=0.011)
    assert f.rejoined - f.restarted == pytest.approx(0.4, abs=0.03)
    assert fault.after["view"] == 4 and fault.before["view"] == 3
    assert [what for _, what in fault.events()] == [
        f"kill -9 {target}",
        "new view 4",
        f"restart {target}",
        f"{target} in sync",
    ]
    assert fault.context.lines == [
        f"[  1.30s] catalog: view 4, primary {'B' if role == 'primary' else 'A'} (0.300 s after the kill)",
        f"[  3.00s] restart {target}",
        f"[  3.41s] {target} back in the in-sync set (0.41 s after its restart)",
    ]


def test_a_fault_without_a_new_view_is_an_error_not_an_exception(config):
    clock = Clock()
    run = context(config, clock=clock)
    cluster = FakeCluster(run, "primary")
    schedule = FakeSchedule(run, cluster)

    async def kill_without_effect(fault, process):
        fault.target, fault.killed = process.name, run.now()

    schedule.kill = kill_without_effect
    fault = evaluate_faults.FaultRun(run, cluster, schedule, "catalog", "primary")
    done = ensureDeferred(fault.run(0.5, 1.0))
    while not done.called:
        clock.advance(0.5)
    assert fault.fault.error == "no new catalog view without A within 30 s"
    assert fault.fault.failover is None and run.lines[-1].endswith("ERROR: no new catalog view without A within 30 s")


def test_the_record_counts_the_requests_that_overlapped_the_kill(config):
    fault = crash(config, "primary")
    f = fault.fault
    samples = [
        Sample("lookup", 200, 0.002, 0.2),  # before
        Sample("buy", 0, 0.05, f.killed - 0.01),  # in flight at the kill: counts
        Sample("lookup", 503, 0.01, f.killed + 0.1),
        Sample("buy", 409, 0.01, f.killed + 0.2),  # the store's answer, no failure
        Sample("lookup", 200, 0.002, f.rejoined - 0.001),
        Sample("lookup", 503, 0.002, f.rejoined + 0.5),  # after the rejoin
    ]
    record = fault.record(samples, 5.0)
    assert (record["requests"], record["failed"], record["errors"]) == (4, 2, {"no answer": 1, "503": 1})
    assert record["failed_outside"] == 1 and record["rejoined_under_load"] is True
    assert record["detect_seconds"] == pytest.approx(0.3, abs=0.03)
    assert record["restart_to_in_sync_seconds"] == pytest.approx(record["start_seconds"] + record["catchup_seconds"])
    assert record["view_before"] == {"view": 3, "primary": "A", "backups": ["B"]}
    assert record["view_after"] == {"view": 4, "primary": "B", "backups": []}
    assert set(record["operations"]) == {"buy", "lookup"}
    assert fault.record(samples, 2.0)["rejoined_under_load"] is False


def test_members_without_an_in_sync_list():
    assert evaluate_faults.members({"primary": "A", "backups": ["B"]}) == ["A", "B"]
    assert evaluate_faults.members({"primary": None, "backups": []}) == []


def test_checksums_read_every_replica_and_say_whether_they_agree(config):
    seen = {"8081": (7, "aa"), "8082": (7, "aa"), "8083": (9, "cc"), "8084": (8, "cc")}

    def answer(method, url, data):
        seq, checksum = seen[url.split(":")[2].split("/")[0]]
        return 200, {"applied_seq": seq, "checksum": checksum}

    clock = Clock()
    run = context(config, FakeHTTP(answer), clock)
    done = ensureDeferred(evaluate_faults.checksums(run, Cluster(run)))
    while not done.called:
        clock.advance(0.1)
    found = result(done)
    assert found["catalog"] == {
        "replicas": {"A": {"applied_seq": 7, "checksum": "aa"}, "B": {"applied_seq": 7, "checksum": "aa"}},
        "agree": True,
    }
    assert found["order"]["agree"] is False and found["order"]["replicas"]["B"] == {"applied_seq": 8, "checksum": "cc"}


def test_a_fault_that_never_ran_is_recorded_as_failed(config):
    from pygmy.cli.evaluate_report import checks

    run = context(config)
    fault = evaluate_faults.FaultRun(run, None, None, "catalog", "backup")
    fault.fault.error = "not killed: catalog is not whole within 30 s"
    record = fault.record([], 0.0)
    assert (record["requests"], record["detected"], record["rejoined"], record["operations"]) == (0, None, None, {})
    doc = {"faults": [record], "checksums": {}, "response_time": [], "consistency": {}}
    doc["cache_off"] = {"capacity": 0}
    doc["consistency"]["invalidation"] = {"cycles": 0, "operations": {}, "counters": {"misses": 0}}
    failed = [c for c in checks(doc) if not c["ok"]]
    assert [c["detail"] for c in failed[:2]] == [
        "catalog backup: not killed: catalog is not whole within 30 s",
        "catalog: not killed: catalog is not whole within 30 s",
    ]
