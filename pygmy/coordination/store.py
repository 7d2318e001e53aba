"""
What a views store is: L{StoredView} and the L{ViewStore} interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

from twisted.internet.defer import Deferred


class ViewStoreError(Exception):
    """The views could not be read or stored; the message says why."""


@dataclass(frozen=True)
class StoredView:
    """
    One service's view as stored: what a view manager must begin from.

    @ivar number: the view number; stored numbers only ever go up.
    @ivar primary: the primary's name, or C{None} when none was alive.
    @ivar backups: the backups in the view.
    @ivar in_sync: every replica known to hold every acknowledged write.
    """

    number: int
    primary: str | None
    backups: tuple[str, ...] = ()
    in_sync: frozenset[str] = field(default_factory=frozenset)

    def to_json(self) -> dict:
        """The view as a JSON-ready mapping."""
        return {
            "number": self.number,
            "primary": self.primary,
            "backups": list(self.backups),
            "in_sync": sorted(self.in_sync),
        }

    @classmethod
    def from_json(cls, data: object) -> StoredView:
        """
        Read a view written by L{to_json}.

        @raise ViewStoreError: if C{data} is not such a view.
        """
        try:
            number, primary = data["number"], data["primary"]
            backups, in_sync = tuple(data["backups"]), frozenset(data["in_sync"])
        except (TypeError, KeyError) as e:
            raise ViewStoreError(f"not a stored view: {data!r}") from e
        names = [*backups, *in_sync] + ([] if primary is None else [primary])
        if (
            not isinstance(number, int)
            or isinstance(number, bool)
            or number < 0
            or not all(isinstance(name, str) and name for name in names)
        ):
            raise ViewStoreError(f"not a stored view: {data!r}")
        return cls(number, primary, backups, in_sync)


class ViewStore(Protocol):
    """
    What the view manager needs of a store.  Every method may be called on
    the reactor thread and never blocks it.
    """

    def load(self) -> Deferred[dict[str, StoredView]]:
        """The last stored view of each service (services never stored are absent)."""

    def store(self, service: str, view: StoredView) -> Deferred[None]:
        """
        Store C{view} of C{service}; fires once it is durable, and fails
        (L{ViewStoreError}) if it is not.
        """

    def watch(self, callback: Callable[[str, StoredView], None]) -> None:
        """Call C{callback(service, view)} for every view stored from now on, by anyone."""
