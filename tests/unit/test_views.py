"""
The front end's view manager, L{pygmy.frontend.views.ServiceView}, driven directly:
plain objects stand for the heartbeat connections and a list records every
new view, so each election rule is checked without sockets or clocks.
"""

from __future__ import annotations

from types import SimpleNamespace

from pygmy.frontend.views import ServiceView

GRACE = 3.0
TIMEOUT = 1.5


class FakeTransport:
    """Records whether the view manager closed the connection."""

    def __init__(self):
        self.closed = False

    def loseConnection(self):
        self.closed = True


def connection():
    """A stand-in for a heartbeat connection."""
    return SimpleNamespace(transport=FakeTransport())


def make_view(names=("A", "B", "C"), started=0.0, grace=GRACE):
    """A L{ServiceView} and the list of (number, primary, backups) it announced."""
    views = []
    view = ServiceView(
        "catalog",
        tuple(names),
        lambda v: views.append((v.number, v.primary, list(v.backups))),
        started=started,
        grace=grace,
    )
    view.conns = {}
    return view, views


def join(view, name, now=0.0, seq=0, last_view=0, state="idle", number=0):
    """Connect C{name} and let it beat once."""
    view.conns[name] = connection()
    view.connected(name, view.conns[name], now)
    view.beat(name, number, seq, last_view, state, now)


def running(names=("A", "B", "C"), backups=("B", "C")):
    """A view with A primary and C{backups} in sync, every replica alive."""
    view, views = make_view(names)
    for name in names:
        join(view, name, seq=10 if name == "A" or name in backups else 4, last_view=1)
    assert (view.primary, view.backups) == ("A", list(backups))
    return view, views


# Start-up


def test_start_up_waits_for_everyone():
    view, views = make_view()
    join(view, "A", seq=5, last_view=1)
    join(view, "B", seq=5, last_view=1)
    assert view.primary is None and views == [] and view.in_sync is None
    join(view, "C", seq=5, last_view=1)
    assert views == [(1, "A", ["B", "C"])]
    assert view.in_sync == {"A", "B", "C"}


def test_start_up_after_grace_without_the_missing_replica():
    view, views = make_view(started=10.0)
    join(view, "B", now=10.5, seq=3, last_view=1)
    view.check(10.0 + GRACE - 0.1, TIMEOUT * 10)
    assert views == []
    view.check(10.0 + GRACE, TIMEOUT * 10)
    assert views == [(1, "B", [])]
    assert view.in_sync == {"B"}


def test_furthest_log_wins_and_equal_positions_are_backups():
    view, views = make_view()
    join(view, "A", seq=9, last_view=2)
    join(view, "B", seq=4, last_view=3)
    join(view, "C", seq=4, last_view=3)
    # (last_view, seq) orders: view 3 beats any seq of view 2.
    assert views == [(1, "B", ["C"])]
    assert view.in_sync == {"B", "C"}


def test_ties_go_to_config_order():
    view, views = make_view(names=("C", "B", "A"))
    for name in ("A", "B", "C"):
        join(view, name, seq=7, last_view=2)
    assert views == [(1, "C", ["B", "A"])]


def test_view_number_starts_above_any_reported_view():
    view, views = make_view()
    join(view, "A", seq=7, last_view=2, number=6, state="primary")
    join(view, "B", seq=7, last_view=2, number=9, state="backup")
    join(view, "C", seq=1, last_view=1, number=4, state="recovering")
    assert views == [(10, "A", ["B"])]
    assert view.number == 10


# Failures


def test_primary_dies_and_a_live_backup_is_promoted():
    view, views = running(backups=("B",))
    before = view.number
    view.disconnected("A", view.conns["A"], 2.0)
    assert views[-1] == (before + 1, "B", [])
    assert view.in_sync == {"B"}
    assert not view.members["A"].alive


def test_stale_disconnect_of_an_old_connection_is_ignored():
    view, views = running()
    old = view.conns["B"]
    join(view, "B", now=1.0, seq=10, last_view=1, state="recovering", number=1)
    count = len(views)
    view.disconnected("B", old, 2.0)
    assert len(views) == count and view.members["B"].alive


def test_backup_dies_and_leaves_the_in_sync_set():
    view, views = running()
    view.disconnected("C", view.conns["C"], 2.0)
    assert views[-1] == (2, "A", ["B"])
    assert view.in_sync == {"A", "B"}


def test_primary_alone_dies_and_only_it_may_lead_again():
    view, views = running(backups=())
    view.disconnected("A", view.conns["A"], 2.0)
    assert views[-1] == (2, None, [])
    assert view.in_sync == {"A"}
    join(view, "B", now=3.0, seq=10, last_view=1, state="recovering", number=2)
    join(view, "C", now=3.0, seq=40, last_view=1, state="recovering", number=2)
    assert view.primary is None and views[-1] == (2, None, [])
    join(view, "A", now=4.0, seq=10, last_view=1, state="idle", number=0)
    assert views[-1] == (3, "A", [])


def test_backup_then_primary_die_and_the_backup_may_not_lead():
    view, views = running(names=("A", "B"), backups=("B",))
    view.disconnected("B", view.conns["B"], 2.0)
    view.disconnected("A", view.conns["A"], 3.0)
    assert views[-1] == (3, None, [])
    join(view, "B", now=4.0, seq=10, last_view=1, state="recovering", number=3)
    assert view.primary is None
    join(view, "A", now=5.0, seq=10, last_view=1, state="idle", number=0)
    assert views[-1] == (4, "A", [])


def test_silence_declares_dead_and_closes_the_connection():
    view, views = running(backups=("B",))
    view.beat("A", 1, 10, 1, "primary", 1.0)
    view.beat("C", 1, 4, 1, "recovering", 1.0)
    view.check(TIMEOUT, TIMEOUT)
    assert not view.conns["B"].transport.closed and view.backups == ["B"]
    view.check(TIMEOUT + 0.01, TIMEOUT)
    # B has been silent since 0.0: gone; A and C beat at 1.0: still there.
    assert view.conns["B"].transport.closed
    assert not view.members["B"].alive
    assert view.members["B"].connection is None
    assert views[-1] == (2, "A", [])
    assert view.in_sync == {"A"}
    assert not view.conns["A"].transport.closed


def test_silent_primary_is_replaced_and_its_connection_closed():
    view, views = running(backups=("B",))
    view.beat("B", 1, 10, 1, "backup", 2.0)
    view.beat("C", 1, 4, 1, "recovering", 2.0)
    view.check(2.0, TIMEOUT)
    assert view.conns["A"].transport.closed
    assert views[-1] == (2, "B", [])


# Joining


def test_synced_from_the_primary_adds_a_backup():
    view, views = running(backups=())
    view.synced("A", "C", 12, 1.0)
    assert views[-1] == (2, "A", ["C"])
    assert view.in_sync == {"A", "C"}
    view.synced("A", "C", 12, 1.1)
    assert len(views) == 2


def test_synced_from_a_non_primary_is_ignored():
    view, views = running(backups=())
    view.synced("B", "C", 12, 1.0)
    assert views == [(1, "A", [])]
    assert view.in_sync == {"A"}


def test_synced_for_a_dead_replica_is_ignored():
    view, views = running(backups=())
    view.disconnected("C", view.conns["C"], 1.0)
    view.synced("A", "C", 12, 1.1)
    assert view.backups == [] and view.in_sync == {"A"}


def test_backup_recovering_in_the_current_view_is_dropped():
    view, views = running()
    view.beat("B", view.number, 3, 1, "recovering", 1.0)
    assert views[-1] == (2, "A", ["C"])
    assert view.in_sync == {"A", "C"}


def test_backup_recovering_in_an_older_view_stays():
    view, views = running(backups=())
    view.synced("A", "B", 10, 1.0)
    assert views[-1] == (2, "A", ["B"])
    # B has not seen view 2 yet: it still reports its catch-up in view 1.
    view.beat("B", 1, 10, 1, "recovering", 1.1)
    assert views[-1] == (2, "A", ["B"]) and view.in_sync == {"A", "B"}
    view.beat("B", 2, 10, 1, "backup", 1.2)
    assert view.backups == ["B"] and len(views) == 2


def test_alive_names_in_config_order():
    view, views = make_view(names=("C", "A", "B"))
    join(view, "B")
    join(view, "C")
    assert view.alive_names() == ["C", "B"]
