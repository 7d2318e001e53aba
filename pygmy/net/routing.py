"""
Which replica of a service gets a call, and what happens when it fails.

A L{ServiceRoutes} knows every replica of one service (from
C{config.ini}) and follows that service's view (number, primary, backups),
pushed by the front end.  Callers hand it a function of a
L{Remote<pygmy.net.remote.Remote>} rather than a replica, so the choice of
replica and the retries stay in this one place:

- **writes** go to the primary.  If it does not answer, or answers that it
  is not the primary, the call waits for the view to change and tries
  again, until C{deadline} seconds have passed; every write carries a
  request id, so trying again never applies it twice;
- **reads** go to the view's live members, in the order the balancer
  (L{pygmy.net.balancer}) prefers; a read that fails on one is tried on the
  next within the same call.  With no live member in the view, any live
  replica serves it; with none alive at all, the call fails at once.
"""

from __future__ import annotations

from typing import Awaitable, Callable, TypeVar

from twisted.internet.task import deferLater

from pygmy.clock import monotonic
from pygmy.config import Config
from pygmy.errors import NotPrimary, Unavailable
from pygmy.net.balancer import Policy, RoundRobin, make_policy
from pygmy.net.remote import HTTPClientService, Remote, ReplicaDown

T = TypeVar("T")

#: How often a write waiting for a new primary looks again.
POLL = 0.05


class ServiceRoutes:
    """
    The replicas of one service, its current view, and the choice between
    them.

    @param alive: where it is known (the front end), a function giving the
        names of the live replicas; elsewhere every replica counts as alive.
    @param policy: the read balancer; round robin if not given.
    """

    def __init__(
        self,
        service: str,
        remotes: list[Remote],
        clock,
        deadline: float,
        alive=None,
        policy: Policy | None = None,
    ):
        if not remotes:
            raise ValueError(f"no replicas for {service}")
        self.service = service
        self.remotes = {remote.replica: remote for remote in remotes}
        self.view = 0
        self.primary_name: str | None = None
        self.backup_names: list[str] = []
        self._clock = clock
        self._deadline = deadline
        self._alive = alive
        self.policy = RoundRobin() if policy is None else policy

    def update(self, view: int, primary: str | None, backups: list[str]) -> None:
        """Follow a new view of the service."""
        if view < self.view:
            return
        self.view = view
        self.primary_name = primary if primary in self.remotes else None
        self.backup_names = [name for name in backups if name in self.remotes]

    def primary(self) -> Remote | None:
        """The replica that takes writes, if there is one."""
        return None if self.primary_name is None else self.remotes[self.primary_name]

    def readers(self) -> list[Remote]:
        """Replicas to read from, in the order to try them."""
        alive = set(self.remotes) if self._alive is None else set(self._alive())
        if self.primary_name is None and not self.backup_names and self.view == 0:
            members = list(self.remotes)
        else:
            members = [n for n in [self.primary_name, *self.backup_names] if n in alive]
        if not members:
            members = [name for name in self.remotes if name in alive]
        return [self.remotes[name] for name in self.policy.order(members)]

    async def write(self, call: Callable[[Remote], Awaitable[T]]) -> T:
        """
        Run C{call} against the primary, trying again across view changes.

        @raise Unavailable: if no primary took it within the deadline.
        """
        give_up = self._clock.seconds() + self._deadline
        reason = f"{self.service} has no primary"
        while True:
            remote = self.primary()
            if remote is not None:
                try:
                    return await call(remote)
                except (ReplicaDown, NotPrimary) as e:
                    reason = e.message
            if self._clock.seconds() >= give_up:
                raise Unavailable(f"{self.service} cannot take writes now: {reason}")
            await deferLater(self._clock, POLL, lambda: None)

    async def read(self, call: Callable[[Remote], Awaitable[T]]) -> T:
        """
        Run C{call} against a replica chosen for reading, trying the others
        if it does not answer.

        @raise Unavailable: if none answered.
        """
        result, _ = await self.read_from(call)
        return result

    def is_member(self, name: str) -> bool:
        """Whether C{name} is the primary or an in-sync backup of the current view."""
        return self.view > 0 and (name == self.primary_name or name in self.backup_names)

    async def read_from(self, call: Callable[[Remote], Awaitable[T]]) -> tuple[T, bool]:
        """
        Like L{read}, and say whether the replica that answered is a member
        of the current view (L{is_member}) as it answers: only such a reply
        may be cached, since a replica outside the view may be behind.
        """
        reason = f"no {self.service} replica is alive"
        policy, clock = self.policy, self._clock
        for remote in self.readers():
            started = clock.seconds()
            policy.started(remote.replica)
            try:
                result = await call(remote)
            except ReplicaDown as e:
                policy.finished(remote.replica, clock.seconds() - started, ok=False)
                reason = e.message
                continue
            except BaseException:
                policy.finished(remote.replica, clock.seconds() - started, ok=True)
                raise
            policy.finished(remote.replica, clock.seconds() - started, ok=True)
            return result, self.is_member(remote.replica)
        raise Unavailable(f"{self.service} cannot be read now: {reason}")


def routes_for(config: Config, service: str, http: HTTPClientService, alive=None) -> ServiceRoutes:
    """
    Build the L{ServiceRoutes} of C{service} from C{config}, with the
    balancer of C{[frontend] balancer}.
    """
    cluster = config.cluster
    return ServiceRoutes(
        service,
        [Remote(http, replica, cluster.secret, cluster.request_timeout) for replica in config.replicas[service]],
        clock=monotonic(http.reactor),
        # Longer than one request timeout, so that a call cut off by its
        # timeout is tried again (under the same request id) at least once.
        deadline=cluster.request_timeout + cluster.heartbeat_timeout * 2 + 2.0,
        alive=alive,
        policy=make_policy(config.frontend.balancer),
    )
