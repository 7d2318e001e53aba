"""
Which front end manages the views: the one that holds C{<prefix>/leader}
in etcd (the Patroni leader-key pattern, DESIGN.md section 6).

A candidate (L{Leadership}) polls the key, and watches it between polls;
when nobody holds it (read, or its deletion seen on the watch: the holder's
lease lapsed or it resigned), it takes a lease of C{lease_ttl} and puts its
name there in a txn that succeeds only if the key does not exist
(C{create_revision == 0}), so exactly one candidate wins.  The key is
bound to the lease: it goes when the lease lapses.  The winner renews the
lease every third of its TTL and counts itself leader only until C{TTL}
after it I{sent} the last renewal that etcd answered (measured on the
monotonic clock): etcd expires the lease no sooner than that, so a front
end stops acting as manager before anyone else can win.  A renewal
answered with TTL 0 (the lease is gone), a store refused by the fence, or
no renewal within the TTL ends the leadership at once
(L{Leadership.deposed}); a clean stop revokes the lease (resigns).

Fencing: L{Leadership.fence} gives the compares every view store adds to
its txn: the key holds this front end's name, with the create revision and
the lease it won.  A deposed manager's store fails and stores nothing, even
if it has not noticed yet.

etcd grants leases in whole seconds: the lease is asked for
C{max(1, floor(lease_ttl))} seconds; etcd may raise a TTL below its minimum
(twice its heartbeat, 2 s by default), which delays a takeover but never
makes two leaders, since a front end believes itself leader for at most
C{lease_ttl}.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from pygmy.clock import monotonic
from pygmy.coordination.etcd_gateway import Gateway
from pygmy.coordination.etcd_wire import EtcdError, b64, kvs, number, revision, txn_response, unb64
from pygmy.coordination.store import ViewStoreError

log = Logger()


class NotLeader(ViewStoreError):
    """This front end does not hold the leadership, so it may not store a view."""


class Leadership:
    """
    One front end's candidacy for C{<prefix>/leader}.

    @param gateway: the etcd cluster.
    @param prefix: every key is under it (C{[coordinator] prefix}).
    @param name: this front end's name, the key's value when it leads.
    @param ttl: C{lease_ttl}: the longest a leader that stopped renewing
        (or cannot reach etcd) still counts itself leader.
    @param reactor: schedules the renewals and the polls; the durations
        are measured on its L{monotonic} clock.

    @ivar leading: whether this front end is the view manager now.
    @ivar leader: the holder's name as last read (C{None}: nobody, not
        known since etcd could not be reached, or this front end's name
        under a lease it does not hold, until that lease lapses).
    @ivar elected: called with no argument when this front end wins.
    @ivar deposed: called with a reason (a sentence) when it stops leading
        for any reason but L{stop}.
    """

    def __init__(self, gateway: Gateway, prefix: str, name: str, ttl: float, reactor):
        self.gateway = gateway
        self.key = prefix.rstrip("/") + "/leader"
        self.name = name
        self.ttl = ttl
        self.clock = monotonic(reactor)
        self.leading = False
        self.leader: str | None = None
        #: The lease (as etcd wrote it) last found on the key under this
        #: front end's name while it did not hold it.
        self._stale: str | None = None
        self.elected = lambda: None
        self.deposed = lambda reason: None
        #: Times this front end became or stopped being the view manager.
        self.changes = 0
        #: Renewals of the lease that failed (no answer, an error, or a lapsed lease).
        self.renewal_failures = 0
        self._lease: int | None = None
        self._won: int | None = None
        self._valid_until = 0.0
        self._expiry = None
        self._problem: str | None = None
        self._campaigning = False
        self._watch = None
        self._renewing = self._loop(self._renew)
        self._polling = self._loop(self._campaign)

    @property
    def renew_every(self) -> float:
        """Seconds between renewals: a third of the TTL, so two may be lost."""
        return self.ttl / 3

    @property
    def poll_every(self) -> float:
        """Seconds between a follower's reads of the key."""
        return max(0.05, min(self.ttl / 8, 0.5))

    def start(self) -> None:
        """Begin campaigning (at once, then every L{poll_every} while not leading)."""
        self._polling = self._loop(self._campaign)
        self._polling.start(self.poll_every, now=True)

    def _loop(self, f) -> LoopingCall:
        """
        A new loop of the coroutine function C{f} on the clock (a new one
        each time: a call of an old loop may still be under way).
        """
        loop = LoopingCall(lambda: ensureDeferred(f()))
        loop.clock = self.clock
        return loop

    def stop(self) -> Deferred:
        """
        Stop campaigning; a leader resigns (revokes its lease, so another
        front end can win at once).  Fires once the revoke was answered or
        failed.
        """
        for loop in (self._polling, self._renewing):
            if loop.running:
                loop.stop()
        self._unwatch()
        self._cancel_expiry()
        lease, self._lease = self._lease, None
        self.leading, self._won = False, None
        if lease is None:
            return succeed(None)
        return self._revoke(lease)

    def fence(self) -> list[dict]:
        """
        The compares that make a txn succeed only while this front end
        holds the leadership it won.

        @raise NotLeader: if it does not lead now (or its lease may have
            lapsed: L{ttl} has passed since its last answered renewal).
        """
        if self.leading and self.clock.seconds() >= self._valid_until:
            self.lost(f"no renewal of the leadership lease within {self.ttl:g}s")
        if not self.leading:
            raise NotLeader(f"front end {self.name} is not the view manager (the leader is {self.leader or 'unknown'})")
        key = b64(self.key)
        return [
            {"key": key, "target": "VALUE", "result": "EQUAL", "value": b64(self.name)},
            {"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": str(self._won)},
            {"key": key, "target": "LEASE", "result": "EQUAL", "lease": str(self._lease)},
        ]

    def holds(self, kv: dict | None) -> bool:
        """Whether C{kv} (the key as read) is this front end's won leadership."""
        return (
            self.leading
            and kv is not None
            and unb64(kv.get("value", "")) == self.name
            and number(kv, "create_revision") == self._won
            and number(kv, "lease") == self._lease
        )

    def lost(self, reason: str) -> None:
        """
        Stop leading now (a fenced store was refused, the lease lapsed);
        tell L{deposed}, resign the lease and campaign again.
        """
        if not self.leading:
            return
        log.warn("front end {name}: no longer the view manager: {reason}", name=self.name, reason=reason)
        self.leading, self._won = False, None
        self.changes += 1
        if self.leader == self.name:
            self.leader = None
        if self._renewing.running:
            self._renewing.stop()
        self._cancel_expiry()
        lease, self._lease = self._lease, None
        if lease is not None:
            self._revoke(lease)
        try:
            self.deposed(reason)
        except Exception:
            log.failure("front end {name}: the deposed callback failed", name=self.name)
        if not self._polling.running:
            self._polling = self._loop(self._campaign)
            self._polling.start(self.poll_every, now=False)

    # Following: read the key; when nobody holds it, try to take it

    async def _campaign(self) -> None:
        if self._campaigning:
            return  # the watch started one that is still under way
        self._campaigning = True
        try:
            await self._try_to_win()
            self._problem = None
        except EtcdError as e:
            self.leader = None
            if str(e) != self._problem:
                log.warn("front end {name}: campaign: {error}", name=self.name, error=str(e))
            self._problem = str(e)
        except Exception:
            log.failure("front end {name}: campaign", name=self.name)
        finally:
            self._campaigning = False

    async def _try_to_win(self) -> None:
        answer = await self.gateway.range(self.key)
        held = kvs(answer)
        if held:
            self.leader = self._holder(held[0])
            self._watch_key(revision(answer))
            return
        sent = self.clock.seconds()
        granted = await self.gateway.grant(max(1, int(self.ttl)))
        lease, ttl = number(granted, "ID"), number(granted, "TTL")
        key = b64(self.key)
        answer = await self.gateway.txn(
            [{"key": key, "target": "CREATE", "result": "EQUAL", "create_revision": "0"}],
            [{"request_put": {"key": key, "value": b64(self.name), "lease": str(lease)}}],
            [{"request_range": {"key": key}}],
        )
        if answer.get("succeeded"):
            self._win(lease, revision(answer), sent, ttl)
            return
        holder = kvs(txn_response(answer, 0, "response_range"))
        if holder and number(holder[0], "lease") == lease:
            # An earlier try of this very txn was applied; its answer was lost.
            self._win(lease, number(holder[0], "create_revision"), sent, ttl)
            return
        self.leader = self._holder(holder[0]) if holder else None
        await self._revoke(lease)

    def _holder(self, kv: dict) -> str | None:
        """
        The leader C{kv} (the key, as read while following) names: C{None}
        if it names this front end under a lease it does not hold -- that
        of a previous run of this front end (killed, then restarted), or of
        a campaign of its own whose answer was lost -- which leads nothing
        and goes when that lease lapses, nobody renewing it.  Logged once a
        lease.
        """
        name = unb64(kv.get("value", ""))
        if name != self.name:
            return name
        lease = kv.get("lease")
        if lease != self._stale:
            self._stale = lease
            log.info(
                "front end {name}: the leader key names this front end under lease {lease}, which it does"
                " not hold (a previous run's, or a campaign's whose answer was lost); following until it lapses",
                name=self.name,
                lease=lease,
            )
        return None

    def _win(self, lease: int, won: int, sent: float, ttl: int) -> None:
        if self.leading or not self._polling.running:
            # stop() came while the txn was in flight: resign at once.
            self._revoke(lease)
            return
        self._lease, self._won, self.leading, self.leader = lease, won, True, self.name
        self.changes += 1
        self._polling.stop()
        self._unwatch()
        self._extend(sent, ttl)
        self._renewing = self._loop(self._renew)
        self._renewing.start(min(self.ttl, ttl) / 3, now=False)
        log.info("front end {name}: now the view manager (lease {lease})", name=self.name, lease=lease)
        try:
            self.elected()
        except Exception:
            log.failure("front end {name}: the elected callback failed", name=self.name)

    def _watch_key(self, seen: int) -> None:
        """
        While following, watch the key from after revision C{seen}, so that
        its deletion starts a campaign at once instead of at the next poll
        (one watch at a time; a watch that ends is opened again by the next
        poll that finds the key held).
        """
        if self._watch is not None or self.leading or not self._polling.running:
            return
        stream = self._watch = self.gateway.watch(self.key, seen + 1, self._key_changed, prefix=False)
        stream.ended.addBoth(self._watch_ended, stream)

    def _key_changed(self, result: dict) -> None:
        """An answer of the watch: a new holder is noted; a deletion starts a campaign now."""
        for event in result.get("events", []):
            kv = event.get("kv") if isinstance(event, dict) else None
            if not isinstance(kv, dict):
                continue
            if event.get("type", "PUT") == "DELETE":
                self.leader = None
                if self._polling.running:
                    ensureDeferred(self._campaign())
            else:
                self.leader = self._holder(kv)

    def _watch_ended(self, result, stream) -> None:
        if self._watch is stream:
            self._watch = None

    def _unwatch(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.stop()

    # Leading: renew the lease; lapse at the deadline

    async def _renew(self) -> None:
        lease, sent = self._lease, self.clock.seconds()
        if lease is None:
            return
        try:
            answer = await self.gateway.keepalive(lease, timeout=min(self.gateway.timeout, self.renew_every))
            result = answer.get("result")
            ttl = number(result, "TTL") if isinstance(result, dict) else 0
        except EtcdError as e:
            self.renewal_failures += 1
            log.warn("front end {name}: lease renewal failed: {error}", name=self.name, error=str(e))
            return
        except Exception:
            self.renewal_failures += 1
            log.failure("front end {name}: lease renewal", name=self.name)
            return
        if lease != self._lease:
            return
        if ttl <= 0:
            self.renewal_failures += 1
            self.lost("the leadership lease has expired in etcd")
        else:
            self._extend(sent, ttl)

    def _extend(self, sent: float, ttl: int) -> None:
        """Lead until C{min(ttl, lease_ttl)} after C{sent}; lapse then unless renewed."""
        self._valid_until = max(self._valid_until, sent + min(ttl, self.ttl))
        self._cancel_expiry()
        delay = max(0.0, self._valid_until - self.clock.seconds())
        self._expiry = self.clock.callLater(delay, self._lapse)

    def _lapse(self) -> None:
        self._expiry = None
        self.lost(f"no renewal of the leadership lease answered within {self.ttl:g}s")

    def _cancel_expiry(self) -> None:
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = None

    def _revoke(self, lease: int) -> Deferred:
        d = self.gateway.revoke(lease, timeout=min(self.gateway.timeout, self.ttl))
        d.addErrback(lambda f: log.info("front end {name}: revoke: {error}", name=self.name, error=f.getErrorMessage()))
        return d
