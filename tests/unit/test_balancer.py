"""
Read balancing (DESIGN §7): the order each policy of L{pygmy.net.balancer}
gives over successive calls, and L{ServiceRoutes.read} trying the next
replica when one does not answer, telling the policy, and failing at once
when no replica is alive.
"""

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from pygmy.config import BALANCERS
from pygmy.errors import NotFound, Unavailable
from pygmy.net.balancer import LeastConnections, LeastLatency, RoundRobin, make_policy
from pygmy.net.remote import ReplicaDown
from pygmy.net.routing import ServiceRoutes

NAMES = ["A", "B", "C"]


def is_rotation(order, names):
    """Whether C{order} is C{names} rotated."""
    start = names.index(order[0])
    return order == names[start:] + names[:start]


# Policies


def test_round_robin_rotates():
    policy = RoundRobin()
    orders = [policy.order(NAMES) for _ in range(6)]
    assert all(is_rotation(order, NAMES) for order in orders)
    firsts = [order[0] for order in orders]
    for one, following in zip(firsts, firsts[1:], strict=False):
        assert NAMES.index(following) == (NAMES.index(one) + 1) % 3
    assert policy.order([]) == []


def test_least_connections_prefers_fewest_in_flight():
    policy = LeastConnections()
    policy.started("A")
    policy.started("A")
    policy.started("B")
    for _ in range(3):
        assert policy.order(NAMES) == ["C", "B", "A"]
    policy.finished("A", 0.1, True)
    policy.finished("A", 0.1, True)
    policy.started("C")
    assert [policy.order(NAMES)[0] for _ in range(3)] == ["A", "A", "A"]
    assert policy.in_flight == {"A": 0, "B": 1, "C": 1}


def test_least_connections_ties_rotate_and_never_go_negative():
    policy = LeastConnections()
    assert {policy.order(NAMES)[0] for _ in range(3)} == set(NAMES)
    policy.finished("B", 0.1, False)
    assert policy.in_flight["B"] == 0


def test_least_latency_never_timed_first_then_fastest():
    policy = LeastLatency()
    policy.finished("A", 0.5, True)
    policy.finished("B", 0.1, True)
    assert policy.order(NAMES) == ["C", "B", "A"]
    policy.finished("C", 0.3, True)
    for _ in range(3):
        assert policy.order(NAMES) == ["B", "C", "A"]


def test_least_latency_moving_average():
    policy = LeastLatency(weight=0.25)
    policy.finished("A", 0.4, True)
    assert policy.average["A"] == pytest.approx(0.4)
    policy.finished("A", 0.0, True)
    assert policy.average["A"] == pytest.approx(0.3)
    policy.finished("A", 0.0, True)
    assert policy.average["A"] == pytest.approx(0.225)


def test_least_latency_penalises_a_failed_call():
    policy = LeastLatency(weight=0.2, penalty=1.0)
    policy.finished("A", 0.1, True)
    policy.finished("B", 0.1, True)
    policy.finished("A", 0.001, False)  # failed fast, counts as a second
    assert policy.average["A"] == pytest.approx(0.1 + 0.2 * (1.0 - 0.1))
    assert policy.order(["A", "B"]) == ["B", "A"]
    fresh = LeastLatency(penalty=1.0)
    fresh.finished("A", 3.0, False)
    assert fresh.average["A"] == pytest.approx(3.0)


@pytest.mark.parametrize(
    "name, cls",
    [("round_robin", RoundRobin), ("least_connections", LeastConnections), ("least_latency", LeastLatency)],
)
def test_make_policy(name, cls):
    policy = make_policy(name)
    assert type(policy) is cls and policy.name == name
    assert make_policy(name) is not policy


def test_every_configurable_balancer_has_a_policy():
    assert {make_policy(name).name for name in BALANCERS} == set(BALANCERS)


# ServiceRoutes.read


class FakeRemote:
    """A replica that answers its name, raises C{fails}, or never answers."""

    def __init__(self, replica, fails=None, clock=None, takes=0.0):
        self.name = f"catalog:{replica}"
        self.replica = replica
        self.fails = fails
        self.clock = clock
        self.takes = takes
        self.calls = []

    async def get(self, path, params=None):
        self.calls.append(path)
        if self.clock is not None:
            self.clock.advance(self.takes)
        if self.fails is not None:
            raise self.fails
        return {"from": self.replica}

    async def post(self, path, body):
        raise AssertionError("reads never post")


class SpyPolicy(RoundRobin):
    """Keeps the order it is given and records what it hears."""

    name = "spy"

    def __init__(self):
        super().__init__()
        self.events = []

    def order(self, candidates):
        return list(candidates)

    def started(self, replica):
        self.events.append(("started", replica))

    def finished(self, replica, seconds, ok):
        self.events.append(("finished", replica, seconds, ok))


class ReadTests(SynchronousTestCase):
    """L{ServiceRoutes.read} over fake replicas; every call completes at once."""

    def routes(self, remotes, alive, policy, view=(1, "A", ["B"])):
        routes = ServiceRoutes("catalog", remotes, Clock(), deadline=1.0, alive=lambda: alive, policy=policy)
        routes.update(*view)
        return routes

    def read(self, routes):
        return Deferred.fromCoroutine(routes.read(lambda remote: remote.get("/books/1")))

    def test_dead_replica_is_retried_on_the_next_within_the_call(self):
        clock = Clock()
        dead = FakeRemote("A", ReplicaDown("catalog:A is unreachable"), clock, takes=0.25)
        live = FakeRemote("B", clock=clock, takes=0.5)
        policy = SpyPolicy()
        routes = ServiceRoutes("catalog", [dead, live], clock, 1.0, alive=lambda: ["A", "B"], policy=policy)
        routes.update(1, "A", ["B"])
        self.assertEqual(self.successResultOf(self.read(routes)), {"from": "B"})
        self.assertEqual((dead.calls, live.calls), (["/books/1"], ["/books/1"]))
        self.assertEqual(
            policy.events,
            [("started", "A"), ("finished", "A", 0.25, False), ("started", "B"), ("finished", "B", 0.5, True)],
        )

    def test_latency_policy_learns_to_avoid_the_dead_replica(self):
        dead = FakeRemote("A", ReplicaDown("down"))
        live = FakeRemote("B")
        policy = LeastLatency(penalty=1.0)
        routes = self.routes([dead, live], ["A", "B"], policy)
        for _ in range(3):
            self.assertEqual(self.successResultOf(self.read(routes)), {"from": "B"})
        self.assertEqual(len(dead.calls), 1)
        self.assertEqual(policy.average["A"], 1.0)

    def test_connections_are_released_after_a_failure(self):
        policy = LeastConnections()
        dead = FakeRemote("A", ReplicaDown("down"))
        routes = self.routes([dead, FakeRemote("B")], ["A", "B"], policy)
        for _ in range(2):  # ties rotate, so one of the two tries A first
            self.assertEqual(self.successResultOf(self.read(routes)), {"from": "B"})
        self.assertEqual(len(dead.calls), 1)
        self.assertEqual(policy.in_flight, {"A": 0, "B": 0})

    def test_every_replica_down_is_unavailable(self):
        routes = self.routes(
            [FakeRemote("A", ReplicaDown("A down")), FakeRemote("B", ReplicaDown("B down"))],
            ["A", "B"],
            SpyPolicy(),
        )
        failure = self.failureResultOf(self.read(routes), Unavailable)
        self.assertNotIsInstance(failure.value, ReplicaDown)
        self.assertIn("B down", failure.value.message)

    def test_an_answered_error_is_not_retried(self):
        """NotFound is an answer: the next replica would say the same."""
        first, second = FakeRemote("A", NotFound("no book 1")), FakeRemote("B")
        policy = SpyPolicy()
        routes = self.routes([first, second], ["A", "B"], policy)
        self.failureResultOf(self.read(routes), NotFound)
        self.assertEqual(second.calls, [])
        self.assertEqual(policy.events, [("started", "A"), ("finished", "A", 0, True)])

    def test_no_replica_alive_fails_at_once(self):
        remotes = [FakeRemote("A"), FakeRemote("B")]
        routes = self.routes(remotes, [], SpyPolicy())
        failure = self.failureResultOf(self.read(routes), Unavailable)
        self.assertIn("catalog", failure.value.message)
        self.assertEqual([r.calls for r in remotes], [[], []])

    def test_readers_skip_dead_members(self):
        routes = self.routes([FakeRemote("A"), FakeRemote("B")], ["B"], SpyPolicy())
        self.assertEqual([r.replica for r in routes.readers()], ["B"])
        self.assertEqual(self.successResultOf(self.read(routes)), {"from": "B"})

    def test_no_live_member_falls_back_to_any_live_replica(self):
        remotes = [FakeRemote("A"), FakeRemote("B"), FakeRemote("C")]
        routes = self.routes(remotes, ["C"], SpyPolicy(), view=(2, "A", ["B"]))
        self.assertEqual(self.successResultOf(self.read(routes)), {"from": "C"})
