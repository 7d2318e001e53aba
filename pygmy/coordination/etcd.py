"""
The views of several front ends, in etcd: one key per service,
C{<prefix>/views/<service>}, whose value is the view as JSON
(L{StoredView.to_json}).

- L{EtcdViewStore.load} is one range over C{<prefix>/views/}.
- L{EtcdViewStore.store} is one txn, fenced (DESIGN.md section 6): it
  compares the leader key (L{Leadership.fence}: this front end's name, the
  create revision and the lease it won) and the view key's C{mod_revision}
  (the one last read), and only then puts the view.  So a deposed manager
  stores nothing, and two writers cannot make a view number go down: a txn
  refused because the view changed reads the stored view and is tried
  again only if its own number is higher (L{StaleView} otherwise).  Stores
  of one service run one at a time.
- L{EtcdViewStore.watch} follows C{<prefix>/views/} with etcd's watch
  stream, from the revision of the last load (or the last event seen), so
  no store is missed; a stream that drops is opened again from there (on
  the next endpoint, with back-off), one silent for L{EtcdViewStore.idle}
  seconds too, and one whose revision was compacted away is replaced by a
  reload (every view newer than the last one seen is delivered) and a new
  stream from the reload's revision.

When etcd cannot be reached, a store fails (L{EtcdUnavailable}) within the
gateway's timeout and nothing changes: the view manager keeps the views it
has and tries again (DESIGN.md section 6).
"""

from __future__ import annotations

import json
from typing import Callable

from twisted.internet.defer import Deferred, DeferredLock, ensureDeferred
from twisted.logger import Logger

from pygmy.coordination.etcd_gateway import Gateway, WatchStream
from pygmy.coordination.etcd_leader import Leadership, NotLeader
from pygmy.coordination.etcd_wire import EtcdError, b64, kvs, number, revision, txn_response, unb64
from pygmy.coordination.store import StoredView, ViewStoreError

log = Logger()

#: How often a store is tried again when another writer changed the view meanwhile.
ATTEMPTS = 3


class StaleView(ViewStoreError):
    """The view is not newer than the one stored: storing it would take the number back."""


class EtcdViewStore:
    """
    L{ViewStore<pygmy.coordination.store.ViewStore>} in etcd, with stores
    fenced by C{leadership}.

    @param gateway: the etcd cluster.
    @param prefix: every key is under it (C{[coordinator] prefix}).
    @param leadership: this front end's candidacy; only its leader may store.
    @param reactor: schedules the watch's restarts.
    @param idle: seconds of silence after which the watch stream is opened
        again (a member that froze or was cut off sends nothing).
    """

    def __init__(self, gateway: Gateway, prefix: str, leadership: Leadership, reactor, idle: float = 30.0):
        self.gateway = gateway
        self.views_key = prefix.rstrip("/") + "/views/"
        self.leadership = leadership
        self.idle = idle
        self._reactor = reactor
        #: per service: the mod_revision and view last read or stored.
        self._known: dict[str, tuple[int, StoredView]] = {}
        #: per service: the mod_revision last handed to the watchers.
        self._delivered: dict[str, int] = {}
        #: every change up to this revision has been seen (load or watch).
        self._revision: int | None = None
        self._locks: dict[str, DeferredLock] = {}
        self._watchers: list[Callable[[str, StoredView], None]] = []
        self._stream: WatchStream | None = None
        self._later = None
        self._silence = None
        self._backoff = 0.0
        self._stopped = False
        self._reloading = False
        self._compacted = False

    def key(self, service: str) -> str:
        """The key of C{service}'s view."""
        return self.views_key + service

    # Load

    def load(self) -> Deferred[dict[str, StoredView]]:
        """The last stored view of each service, read in one range."""
        return self.gateway.range(self.views_key, prefix=True).addCallback(self._loaded)

    def _loaded(self, answer: dict) -> dict[str, StoredView]:
        views = {}
        first = self._revision is None
        for kv in kvs(answer):
            service, view = self._decode(kv)
            mod = number(kv, "mod_revision")
            self._note(service, mod, view)
            views[service] = view
            if first:
                self._delivered[service] = mod
        if first:
            # The watch begins after the first load; a later one leaves
            # the watch where it is, so that it misses nothing.
            self._revision = revision(answer)
        return views

    def _decode(self, kv: dict) -> tuple[str, StoredView]:
        key = unb64(kv.get("key", ""))
        try:
            data = json.loads(unb64(kv.get("value", "")))
        except ValueError:
            raise ViewStoreError(f"etcd key {key}: not a stored view") from None
        return key[len(self.views_key) :], StoredView.from_json(data)

    def _note(self, service: str, mod_revision: int, view: StoredView) -> None:
        if mod_revision >= self._known.get(service, (0, None))[0]:
            self._known[service] = (mod_revision, view)

    # Store

    def store(self, service: str, view: StoredView) -> Deferred[None]:
        """
        Store C{view} of C{service} in a fenced txn; fires once etcd has
        it.  Fails with L{NotLeader} (this front end is not, or no longer,
        the view manager), L{StaleView} (a view with this number or a higher
        one is stored), or L{EtcdError} / L{EtcdUnavailable}.
        """
        lock = self._locks.setdefault(service, DeferredLock())
        return lock.run(lambda: ensureDeferred(self._store(service, view)))

    async def _store(self, service: str, view: StoredView) -> None:
        key, value = b64(self.key(service)), b64(json.dumps(view.to_json(), sort_keys=True))
        leader_key = b64(self.leadership.key)
        for _ in range(ATTEMPTS):
            fence = self.leadership.fence()
            mod, current = self._known.get(service, (0, None))
            if current is not None and view.number < current.number:
                raise StaleView(f"{service} view {view.number} is older than the stored view {current.number}")
            answer = await self.gateway.txn(
                fence + [{"key": key, "target": "MOD", "result": "EQUAL", "mod_revision": str(mod)}],
                [{"request_put": {"key": key, "value": value}}],
                [{"request_range": {"key": leader_key}}, {"request_range": {"key": key}}],
            )
            if answer.get("succeeded"):
                self._note(service, revision(answer), view)
                return
            held = kvs(txn_response(answer, 0, "response_range"))
            if not self.leadership.holds(held[0] if held else None):
                holder = unb64(held[0].get("value", "")) if held else None
                self.leadership.leader = holder
                self.leadership.lost(f"the leader key is held by {holder or 'nobody'}")
                raise NotLeader(
                    f"{service} view {view.number} not stored: front end {self.leadership.name} "
                    f"is no longer the view manager (the leader key is held by {holder or 'nobody'})"
                )
            stored = kvs(txn_response(answer, 1, "response_range"))
            if not stored:
                self._known.pop(service, None)
                continue
            _, found = self._decode(stored[0])
            self._note(service, number(stored[0], "mod_revision"), found)
            if found == view:
                return  # an earlier try of this store was applied; its answer was lost
            if found.number >= view.number:
                raise StaleView(f"{service} view {view.number} not stored: view {found.number} is stored")
        raise ViewStoreError(f"{service} view {view.number} not stored: the stored view kept changing")

    # Watch

    def watch(self, callback: Callable[[str, StoredView], None]) -> None:
        """
        Call C{callback(service, view)} for every view stored from the last
        L{load} on (from now on, without one), by any front end, this one
        included; each once, in the order they were stored.
        """
        self._watchers.append(callback)
        if self._stream is None and self._later is None and not self._reloading and not self._stopped:
            if self._revision is None:
                self._reload(deliver=False)
            else:
                self._open()

    def stop(self) -> None:
        """Close the watch stream and cancel its restarts."""
        self._stopped = True
        for call in (self._later, self._silence):
            if call is not None and call.active():
                call.cancel()
        self._later = self._silence = None
        if self._stream is not None:
            self._stream.stop()

    def _open(self) -> None:
        self._later = None
        if self._stopped:
            return
        self._compacted = False
        stream = self._stream = self.gateway.watch(self.views_key, self._revision + 1, self._message)
        stream.ended.addBoth(self._ended, stream)
        self._heard()

    def _heard(self) -> None:
        """Something came on the stream (or it opened): wait L{idle} seconds for more."""
        if self._silence is not None and self._silence.active():
            self._silence.reset(self.idle)
        else:
            self._silence = self._reactor.callLater(self.idle, self._quiet)

    def _quiet(self) -> None:
        self._silence = None
        if self._stream is not None:
            log.info("etcd watch: silent for {idle}s; opening it again", idle=self.idle)
            self._stream.stop()

    def _message(self, result: dict) -> None:
        self._heard()
        self._backoff = 0.0
        if result.get("canceled"):
            self._compacted = number(result, "compact_revision") > 0
            reason = result.get("cancel_reason") or ("compacted" if self._compacted else "canceled")
            log.info("etcd watch: ended by etcd ({reason})", reason=reason)
            self._stream.stop()
            return
        for event in result.get("events", []):
            kv = event.get("kv") if isinstance(event, dict) else None
            if not isinstance(kv, dict):
                continue
            mod = number(kv, "mod_revision")
            self._revision = max(self._revision, mod)
            if event.get("type", "PUT") != "PUT":
                log.warn("etcd watch: {key} was deleted", key=unb64(kv.get("key", "")))
                continue
            try:
                service, view = self._decode(kv)
            except ViewStoreError as e:
                log.error("etcd watch: {error}", error=str(e))
                continue
            self._note(service, mod, view)
            self._deliver(service, mod, view)

    def _deliver(self, service: str, mod: int, view: StoredView) -> None:
        if mod <= self._delivered.get(service, 0):
            return
        self._delivered[service] = mod
        for watcher in list(self._watchers):
            try:
                watcher(service, view)
            except Exception:
                log.failure("etcd watch: a watcher failed")

    def _ended(self, result, stream) -> None:
        if stream is not self._stream:
            return
        self._stream = None
        if self._silence is not None and self._silence.active():
            self._silence.cancel()
        self._silence = None
        if self._stopped:
            return
        if self._compacted:
            self._reload(deliver=True)
            return
        if isinstance(getattr(result, "value", None), Exception):
            log.info("etcd watch: {error}", error=result.getErrorMessage())
        self._again(self._open)

    def _again(self, f) -> None:
        """Call C{f} after the back-off (0.1 s, doubling up to 2 s while it keeps failing)."""
        self._backoff = min(2.0, max(0.1, self._backoff * 2))
        self._later = self._reactor.callLater(self._backoff, f)

    def _reloaded(self, result):
        self._reloading = False
        return result

    def _reload(self, deliver: bool) -> None:
        """Read every view again, hand on what is newer than what was delivered, then watch from there."""
        self._later = None
        if self._stopped:
            return

        def loaded(answer):
            for kv in kvs(answer):
                service, view = self._decode(kv)
                mod = number(kv, "mod_revision")
                self._note(service, mod, view)
                if deliver:
                    self._deliver(service, mod, view)
                else:
                    self._delivered[service] = max(self._delivered.get(service, 0), mod)
            self._revision = revision(answer)
            self._open()

        def failed(failure):
            if not failure.check(EtcdError, ViewStoreError):
                log.failure("etcd watch: reload", failure)
            self._again(lambda: self._reload(deliver))

        self._reloading = True
        d = self.gateway.range(self.views_key, prefix=True)
        d.addBoth(self._reloaded)
        d.addCallbacks(loaded, failed)


__all__ = ["EtcdViewStore", "NotLeader", "StaleView"]
