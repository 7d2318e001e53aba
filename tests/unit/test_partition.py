"""
A backup that still beats but that its primary cannot reach (a partial
partition): the primary reports it, the front end takes it out of the
view, and writes stop waiting for it.
"""

from types import SimpleNamespace

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from pygmy.frontend.views import ServiceView
from pygmy.net.remote import ReplicaDown
from pygmy.replication.heartbeat import parse
from pygmy.replication.primary import BackupLink, Replicator


def test_parse_unreachable():
    assert parse(b"UNREACHABLE catalog B") == ("UNREACHABLE", "catalog", "B")


def view_with_backup():
    changes = []
    view = ServiceView("catalog", ("A", "B"), changes.append, grace=10.0)
    for name in ("A", "B"):
        view.connected(name, SimpleNamespace(), 0.0)
        view.beat(name, 0, 5, 0, "idle", 0.0)
    assert (view.primary, view.backups) == ("A", ["B"])
    return view, changes


def test_front_end_drops_a_backup_its_primary_cannot_reach():
    view, changes = view_with_backup()
    view.unreachable("B", "A")  # not the primary: ignored
    assert view.backups == ["B"] and len(changes) == 1
    view.unreachable("A", "B")
    assert view.backups == [] and view.in_sync == {"A"} and len(changes) == 2


class Unreachable:
    """A backup's Remote that never answers."""

    name, replica = "catalog:B", "B"

    def __init__(self):
        self.calls = 0

    async def post(self, path, body):
        self.calls += 1
        raise ReplicaDown("catalog:B is unreachable: ConnectError.")


def advance(clock, seconds, step=0.05):
    for _ in range(round(seconds / step)):
        clock.advance(step)


def test_primary_reports_a_backup_that_does_not_answer():
    clock = Clock()
    reported = []
    node = SimpleNamespace(
        view=3,
        name="A",
        applied_seq=10,
        report_unreachable=lambda name: reported.append(name) or True,
    )
    replicator = Replicator(node, store=None, peers=None, clock=clock, retry_delay=0.25, patience=1.5)
    remote = Unreachable()
    link = BackupLink(replicator, "B", remote)
    replicator.links["B"] = link
    waiting = link.wait_for(10)
    assert isinstance(waiting, Deferred) and not waiting.called
    advance(clock, 1.0)
    assert reported == [] and remote.calls >= 4
    advance(clock, 1.0)
    assert reported == ["B"]
    advance(clock, 5.0)
    assert reported == ["B"], "reported once per failing streak"
    assert not waiting.called, "the write still waits: the front end decides"
    replicator.drop("B")
    assert waiting.called and link.closed
