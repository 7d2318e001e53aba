"""
The load of a C{pygmy chaos} run: concurrent clients buying and reading
through the front ends, a restocker adding copies of the scarce item, and a
progress line every 2 s, each answer recorded in the run's
L{pygmy.cli.invariants.Observations}.

With several front ends, client C{i} starts at the C{i}-th: a read that
gets no answer goes on to the next front end at once (so no read fails
while one is down), a buy does not (it is never sent twice, for
invariant 9) and the client's next request goes to the next front end.
"""

from __future__ import annotations

from pygmy.cli import lifecycle
from pygmy.cli.chaos_cluster import Cluster, Context, call, through
from pygmy.cli.frontends import Frontends

#: Bound of the loops: operations per client (and restocks).
MAX_OPS = 1_000_000
#: Seconds between progress lines, and between restocks.
PROGRESS_EVERY, RESTOCK_EVERY = 2.0, 0.5
#: Seconds a client pauses between operations while the front end is down
#: (a refused connection fails at once; the clients must not spin).
DOWN_PAUSE = 0.05


class Load:
    """
    C{clients} clients and a restocker against C{cluster}, from L{start}
    until L{stop}.

    @ivar items: the item ids the clients pick from.
    @ivar topics: the topics they search.
    @ivar scarce: the item the restocker adds copies of.
    @ivar orders: C{(order id, item id)} of every buy answered 200 so far.
    """

    def __init__(self, run: Context, cluster: Cluster, clients: int, items: list[int], topics: list[str], scarce: int):
        self.run, self.cluster, self.clients = run, cluster, clients
        self.items, self.topics, self.scarce = items, topics, scarce
        self.orders: list[tuple[int, int]] = []
        #: The book whose cost the run changes (invariant 6), or C{None}.
        self.watched: int | None = None
        self.running = False
        self.workers: list = []
        self.ticker = None

    def start(self) -> None:
        """Start the clients, the restocker and the progress lines."""
        from twisted.internet.defer import ensureDeferred
        from twisted.internet.task import LoopingCall

        self.running = True
        fronts = self.cluster.frontends
        self.workers = [ensureDeferred(self.client(fronts.spread(number))) for number in range(self.clients)]
        self.workers.append(ensureDeferred(self.restocker()))
        self.ticker = LoopingCall(self.progress)
        self.ticker.clock = self.run.reactor
        self.ticker.start(PROGRESS_EVERY, now=False)

    async def stop(self) -> None:
        """Stop them; fires once every client has finished its last operation."""
        from twisted.internet.defer import DeferredList

        self.running = False
        if self.ticker is not None and self.ticker.running:
            self.ticker.stop()
        await DeferredList(self.workers)

    def progress(self) -> None:
        """Print the counts so far."""
        b, r = self.run.obs.buys, self.run.obs.reads
        self.run.say(f"buys {b['200']} ok / {b['409']} 409 / {b['503']} 503, reads {r['ok']} ok / {r['failed']} failed")

    async def client(self, fronts: Frontends) -> None:
        """One client, through C{fronts}: buys and reads, until the load stops."""
        for _ in range(MAX_OPS):
            if not self.running:
                return
            try:
                await self.operation(fronts)
            except Exception as e:  # a bug here must not end the client silently
                self.run.obs.fail(f"client error: {type(e).__name__}: {e}")
            if self.run.obs.frontend_down:
                await lifecycle.sleep(self.run.reactor, DOWN_PAUSE)

    async def operation(self, fronts: Frontends) -> None:
        """One random operation."""
        rng, obs = self.run.rng, self.run.obs
        dice = rng.random()
        if dice < 0.45:
            await self.buy(rng.choice(self.items), fronts)
        elif dice < 0.70 or (dice >= 0.85 and not self.orders):
            await self.lookup(rng.choice(self.items), fronts)
        elif dice < 0.80:
            await self.read(f"/search/{rng.choice(self.topics)}", fronts)
        elif dice < 0.85:
            await self.read("/list", fronts)
        else:
            order, item = rng.choice(self.orders)
            obs.record_order_read(order, item, await self.read(f"/orders/{order}", fronts))

    async def buy(self, item: int, fronts: Frontends) -> None:
        """
        C{POST /buy/<item>} to the client's current front end, without an
        C{Idempotency-Key} and never sent again (so invariant 9 holds only
        if the cluster finishes every buy it started); record the order of a
        200.  With no answer, the client's next request goes to the next
        front end.
        """
        status, body = await call(self.run.http, "POST", f"{fronts.url}/buy/{item}")
        now = self.run.now()
        order = self.run.obs.record_buy(item, status, body, now)
        if status in (200, 409) and self.run.obs.frontends is not None:
            self.run.obs.frontends.writes.append(now)
        if status is None:
            fronts.current = (fronts.current + 1) % len(fronts.urls)
        if order is not None:
            self.orders.append((order, item))

    async def lookup(self, item: int, fronts: Frontends) -> None:
        """C{GET /lookup/<item>}: its stock checked, and its cost if it is the watched book (invariant 6)."""
        from pygmy.cli.invariants_frontends import CostRead

        sent = self.run.now()
        book = await self.read(f"/lookup/{item}", fronts)
        self.run.obs.record_lookup(book, self.run.now())
        ledger = self.run.obs.frontends
        if book is not None and ledger is not None and item == ledger.cost_item:
            ledger.cost_reads.append(CostRead(fronts.url, sent, self.run.now(), book.get("cost")))

    async def read(self, path: str, fronts: Frontends):
        """A GET through the front ends (the next one if one gives no answer); its body, or C{None} if it failed."""
        status, body = await through(self.run.http, fronts, "GET", path)
        return self.run.obs.record_read(path, self.run.now(), status, body)

    async def restocker(self) -> None:
        """Add a few copies of the scarce item every 0.5 s, until the load stops."""
        for _ in range(MAX_OPS):
            if not self.running:
                return
            await lifecycle.sleep(self.run.reactor, RESTOCK_EVERY)
            delta = self.run.rng.randint(1, 3)
            if await self.cluster.update_stock(self.scarce, delta):
                self.run.obs.restocks[self.scarce] += delta
