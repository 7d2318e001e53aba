"""
The front end as view manager: who is alive, who is primary, who is in sync.

Per service a L{ServiceView} holds the **view**: a number, the primary
and the in-sync backups.  It changes on four events: a replica connects and
beats, falls silent for C{heartbeat_timeout}, loses its connection, or is
reported SYNCED by the primary after catching up.  Each change makes a new
view number, pushed to every replica (L{Monitor}).

The rules that keep acknowledged writes safe:

- the **in-sync set** is the primary and its backups: every replica in it
  holds every acknowledged write.  A backup leaves it when it dies or stops
  being a backup; the primary stays in it even when it dies with no live
  backup, so that when it returns it can lead again;
- a new primary is only chosen from the in-sync set (the one whose log goes
  furthest); with none alive there is no primary, and writes answer 503;
- any other replica enters the view only through SYNCED from the primary;
- every view is stored (L{pygmy.coordination}) before anyone is told of
  it, and a view manager that starts begins from the last stored view
  (L{ServiceView.restore}): its in-sync set, never a replica outside it;
- only with no stored view at all (a new cluster) is nobody known to be in
  sync: the view manager then waits until every replica has beaten or
  C{startup_grace} has passed, takes the replica whose log goes furthest as
  primary, and those with the very same log position as backups.

With several front ends only the view manager decides: on the others
(L{ServiceView.following}) the heartbeats still say who is alive, for
their reads, but nothing changes the view except L{ServiceView.follow},
with a view the manager stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from twisted.logger import Logger

from pygmy.coordination.store import StoredView

log = Logger()


@dataclass
class Member:
    """What the front end knows of one replica."""

    name: str
    alive: bool = False
    state: str = "idle"
    view: int = 0
    applied_seq: int = 0
    last_view: int = 0
    last_seen: float = 0.0
    connection: object = None
    silences: int = 0

    @property
    def position(self) -> tuple[int, int]:
        """How far this replica's log goes: (view of last entry, seq)."""
        return (self.last_view, self.applied_seq)


@dataclass
class ServiceView:
    """
    The view of one service and the liveness of its replicas.

    @param names: the replicas of C{config.ini}, in order (ties go to the
        earlier one).
    @param on_change: called with this object after every new view.
    """

    service: str
    names: tuple[str, ...]
    on_change: Callable[["ServiceView"], None]
    number: int = 0
    primary: str | None = None
    backups: list[str] = field(default_factory=list)
    in_sync: set[str] | None = None
    started: float = 0.0
    grace: float = 0.0
    #: While true (stored views not loaded yet), nothing is decided.
    waiting: bool = False
    #: After a restore, until when to wait for the whole in-sync set to beat.
    restored_until: float | None = None
    #: The primary of the restored view, kept if it is alive then.
    restored_primary: str | None = None
    #: While true (another front end manages the views), liveness is
    #: recorded but nothing is decided: only L{follow} changes the view.
    following: bool = False
    #: Called as C{on_event(view, kind, replica, **details)} at what the
    #: dashboard's timeline shows (L{pygmy.frontend.events.Timeline.noted}).
    on_event: Callable[..., None] = field(default=lambda view, kind, replica, **details: None, repr=False)
    members: dict[str, Member] = field(init=False)

    def __post_init__(self):
        self.members = {name: Member(name) for name in self.names}

    def restore(self, stored: StoredView, now: float) -> None:
        """
        Begin from C{stored}, the last view a view manager stored: its number
        and in-sync set.  The primary is chosen again from that set among the
        replicas alive, never outside it: once every replica of the set has
        beaten, or C{grace} has passed, so that a restart of the view manager
        does not move the primary needlessly.  The wait is counted from
        this front end's start: one that has been following for longer
        than C{grace} knows already who is alive (a takeover), and decides
        at once.
        """
        self.following = False
        self.number = max([self.number, stored.number] + [m.view for m in self.members.values() if m.alive])
        self.in_sync = set(stored.in_sync)
        self.primary, self.backups = None, []
        self.restored_until = max(now, self.started + self.grace)
        self.restored_primary = stored.primary
        log.info(
            "{service}: begins from stored view {number} (in sync: {in_sync})",
            service=self.service,
            number=stored.number,
            in_sync=",".join(sorted(stored.in_sync)) or "-",
        )
        self.elect(now)

    def follow(self, stored: StoredView | None) -> None:
        """
        Take C{stored}, a view the view manager stored, as this view (a
        following front end's); C{None}: no view yet.  Whatever this front
        end had decided and not stored is forgotten.
        """
        if stored is None:
            self.number, self.primary, self.backups, self.in_sync = 0, None, [], None
        else:
            self.number, self.primary = stored.number, stored.primary
            self.backups, self.in_sync = list(stored.backups), set(stored.in_sync)
        self.restored_until = self.restored_primary = None

    def stored(self) -> StoredView:
        """This view as it is to be stored."""
        return StoredView(self.number, self.primary, tuple(self.backups), frozenset(self.in_sync or ()))

    def promotion(self, name: str) -> tuple[bool, str]:
        """Whether C{name} may become primary now, and why (for C{GET /status})."""
        member = self.members[name]
        if name == self.primary:
            return True, "primary"
        if self.in_sync is None:
            if not member.alive:
                return False, "down; the first view takes the live replica whose log goes furthest"
            return True, "no view yet: the first view takes the live replica whose log goes furthest"
        if name not in self.in_sync:
            return False, "not in the in-sync set: it may lack acknowledged writes until it catches up"
        if not member.alive:
            return False, "in the in-sync set, but down"
        return True, "in the in-sync set"

    # Events

    def connected(self, name: str, connection, now: float) -> None:
        """A replica said HELLO on C{connection}."""
        member = self.members[name]
        if member.connection is not None and member.connection is not connection:
            self._lost(name, "reconnected")
        member.connection = connection
        member.last_seen = now

    def beat(self, name: str, view: int, applied_seq: int, last_view: int, state: str, now: float) -> None:
        """A replica reported the view it follows, its log position and state."""
        member = self.members[name]
        member.view, member.applied_seq, member.last_view = view, applied_seq, last_view
        member.state = state
        member.last_seen = now
        if not member.alive:
            member.alive = True
            log.info(
                "{service}:{name} is alive ({state}, seq {seq})",
                service=self.service,
                name=name,
                state=state,
                seq=applied_seq,
            )
            self.on_event(self, "back", name, state=state, seq=applied_seq)
        if name in self.backups and view >= self.number and state != "backup" and not self.following:
            self._drop_backup(name, f"reports {state} in view {view}")
        self.elect(now)

    def disconnected(self, name: str, connection, now: float) -> None:
        """A replica's heartbeat connection closed."""
        if self.members[name].connection is connection:
            self._lost(name, "connection lost")
            self.elect(now)

    def check(self, now: float, timeout: float) -> None:
        """Declare dead every replica silent for more than C{timeout}."""
        for member in self.members.values():
            if member.alive and now - member.last_seen > timeout:
                connection = member.connection
                member.silences += 1
                self._lost(member.name, f"silent for {now - member.last_seen:.2f}s", since=member.last_seen)
                if connection is not None:
                    connection.transport.loseConnection()
        self.elect(now)

    def synced(self, sender: str, name: str, seq: int, now: float) -> None:
        """The primary C{sender} reports that C{name} caught up to C{seq}."""
        member = self.members.get(name)
        if self.following or sender != self.primary or member is None or not member.alive:
            return
        if name in self.backups or name == self.primary:
            return
        self.backups.append(name)
        self.in_sync.add(name)
        self.on_event(self, "caught_up", name, seq=seq)
        self._new_view(f"{name} caught up to seq {seq}")

    def unreachable(self, sender: str, name: str) -> None:
        """The primary C{sender} cannot reach its backup C{name}."""
        if not self.following and sender == self.primary and name in self.backups:
            self._drop_backup(name, f"primary {sender} cannot reach it")

    # Decisions

    def elect(self, now: float) -> None:
        """Choose a primary if there is none and one may be chosen."""
        if self.primary is not None or self.waiting or self.following:
            return
        alive = [m for m in self.members.values() if m.alive]
        if self.in_sync is None:
            everyone = len(alive) == len(self.members)
            if not alive or not (everyone or now - self.started >= self.grace):
                return
            # Views of an earlier front end may be out there: go past them.
            self.number = max([self.number] + [m.view for m in alive])
            best = max(alive, key=self._rank)
            self.primary = best.name
            self.backups = [m.name for m in alive if m is not best and m.position == best.position]
            self.in_sync = {self.primary, *self.backups}
            self._new_view("start-up")
            return
        candidates = [m for m in alive if m.name in self.in_sync]
        keep = None
        if self.restored_until is not None:
            if len(candidates) < len(self.in_sync) and now < self.restored_until:
                return
            self.restored_until = None
            # Every in-sync replica holds every acknowledged write, so the
            # stored primary may lead on: no failover for a restart of ours
            # (beats are up to an interval old, so ranks could disagree).
            keep = self.restored_primary
        if not candidates:
            return
        kept = [m for m in candidates if m.name == keep]
        best = kept[0] if kept else max(candidates, key=self._rank)
        self.primary = best.name
        self.backups = [m.name for m in candidates if m is not best]
        self.in_sync = {self.primary, *self.backups}
        self.on_event(self, "promoted", best.name)
        self._new_view(f"{best.name} promoted")

    def _rank(self, member: Member):
        return (member.position, -self.names.index(member.name))

    def _lost(self, name: str, why: str, since: float | None = None) -> None:
        member = self.members[name]
        was_alive = member.alive
        member.alive = False
        member.connection = None
        member.state = "down"
        if was_alive:
            log.warn("{service}:{name} is dead: {why}", service=self.service, name=name, why=why)
            self.on_event(self, "dead", name, why=why, primary=name == self.primary, since=since)
        if self.following:
            return
        if name in self.backups:
            self._drop_backup(name, why)
        elif name == self.primary:
            # Still in sync: with no live backup it is the only one that
            # holds every acknowledged write.
            self.primary = None
            if not any(self.members[b].alive for b in self.backups):
                self._new_view(f"primary {name} lost ({why}); no in-sync replica alive")

    def _drop_backup(self, name: str, why: str) -> None:
        self.backups.remove(name)
        if self.primary is not None and self.members[self.primary].alive:
            self.in_sync.discard(name)
        self._new_view(f"backup {name} out: {why}")

    def _new_view(self, why: str) -> None:
        self.number += 1
        log.info(
            "{service} view {number}: primary {primary}, backups {backups} ({why})",
            service=self.service,
            number=self.number,
            primary=self.primary or "-",
            backups=",".join(self.backups) or "-",
            why=why,
        )
        self.on_event(self, "view", self.primary, why=why)
        self.on_change(self)

    def alive_names(self) -> list[str]:
        """The replicas alive now, in config order."""
        return [name for name in self.names if self.members[name].alive]
