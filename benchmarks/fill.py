"""
Fill the databases of a stopped cluster with a long history, through the
stores' own write path, quickly.

    .venv/bin/python benchmarks/fill.py --config DIR/config.ini --orders 1000000 [--books 1000000]

A million buys one at a time through the front end take hours; this makes
the same state in minutes, and makes it the way the replicas would have:

 - every replica's database is opened with the project's own classes
   (L{Store} with the tables of C{pygmy.catalog.books} and
   C{pygmy.order.orders}, at the path the replica's service uses), so the
   file is created, seeded and digested by L{pygmy.replication.database};
 - the buys are L{Orders.buy} (the intent, the catalog's decrement
   L{Catalog.decrement}, the order), the restocks L{Catalog.update}, the new
   books L{Catalog.add} (what C{POST /books} does): each a
   L{Store.write}, so the log entries, the kept digest
   (L{pygmy.replication.digest}), the C{requests} rows and the checksums are
   exactly what real writes make.  Thousands of buys are started at once,
   so the store's group commit puts thousands of writes in one transaction
   (a savepoint each): that, and no HTTP, is what makes it fast;
 - the first replica of each service takes the writes (the primary); every
   other one applies the primary's log with L{Store.apply}, the backup's
   path, in batches as a catching-up replica does;
 - after every round both compact as a replica's node does
   (L{Store.compact}: the last C{[cluster] log_keep} entries stay, the
   primary keeps what a backup still needs, request ids older than
   C{[cluster] idempotency_keep} are forgotten).

The history is spread over simulated time that ends now: the stores' clock
moves forward by the same step at every write, so that C{--rate} buys
happen per simulated second (default 1: a million orders span eleven
days).  The log and the C{requests} table therefore end as those of a
store that has been open that long: compacted, with only the last
idempotency window's request ids.  At the end the replicas of each service
must report the same C{applied_seq} and checksum, and each one's kept
digest must equal a recount of its rows (L{Store.verify}), or the fill
fails.

Every replica process of the config must be stopped while it runs (the
stores take each database file for themselves); it prints its progress.
"""

from __future__ import annotations

import argparse
import sys
import time

from twisted.internet import defer, task

from pygmy import config as configuration
from pygmy.catalog.books import BOOKS, SEED, Catalog, seed
from pygmy.cli import launcher
from pygmy.order.orders import BUYS, ORDERS, Orders
from pygmy.replication.store import Store
from pygmy.replication.tables import utc_timestamp

#: Buys started at once: the writes of each step of them share a transaction.
CONCURRENCY = 2000
#: Entries a backup applies per transaction (as L{pygmy.replication.catchup} fetches them).
APPLY_BATCH = 5000
#: Writes per buy: its intent, the catalog's decrement, the order.
WRITES_PER_BUY = 3


class TickingClock:
    """
    The reactor, except that C{seconds()} is a simulated time that moves
    forward by C{step} at every call (the stores call it once per write, to
    stamp it).

    @param reactor: what everything else is delegated to.
    @param start: the simulated time of the first call.
    @param step: simulated seconds between two calls.
    """

    def __init__(self, reactor, start: float, step: float):
        self._reactor = reactor
        self.now = start
        self.step = step

    def seconds(self) -> float:
        """The simulated time; the next call is C{step} later."""
        now = self.now
        self.now += self.step
        return now

    def __getattr__(self, name):
        return getattr(self._reactor, name)


class LocalCatalog:
    """
    What L{Orders} asks for its decrements, in place of the catalog's
    L{ServiceRoutes<pygmy.net.routing.ServiceRoutes>}: the catalog
    primary's L{Catalog} in this process, answering as its
    C{POST /books/decrement} does.
    """

    def __init__(self, catalog: Catalog):
        self.catalog = catalog

    def write(self, call):
        """Run C{call} on the primary (this object), as L{ServiceRoutes.write} does."""
        return call(self)

    async def batched(self, path: str, call: dict) -> dict:
        """One decrement, as the catalog app answers one call of a batch."""
        write = await self.catalog.decrement(call["item_id"], call["request_id"])
        return {"item": write.row, "seq": write.seq}


class Service:
    """
    The replicas of one service: the first takes the writes, the others
    apply its log.

    @param stores: the replicas' started L{Store}s, primary first.
    """

    def __init__(self, stores: list[Store]):
        self.primary, self.backups = stores[0], stores[1:]
        self.applied = {id(store): 0 for store in self.backups}

    async def start(self) -> None:
        """Read where each backup's log stands."""
        for store in self.backups:
            self.applied[id(store)] = (await store.status())[0]

    async def ship(self) -> None:
        """Apply the primary's new log entries on every backup."""
        for store in self.backups:
            while True:
                entries = await self.primary.read_log(self.applied[id(store)], APPLY_BATCH)
                if not entries:
                    break
                self.applied[id(store)], _ = await store.apply(entries)

    async def compact(self, keep: int, forget_before: str) -> int:
        """
        Compact every replica as its node would; the primary keeps what the
        backups hold not yet (none, after L{ship}).

        @return: the log entries the primary deleted.
        """
        lowest = min(self.applied.values(), default=(await self.primary.status())[0])
        deleted = await self.primary.compact(keep, lowest, forget_before)
        for store in self.backups:
            await store.compact(keep, self.applied[id(store)], forget_before)
        return deleted

    async def statuses(self) -> list[tuple]:
        """C{(applied_seq, last_view, checksum)} of every replica."""
        return [await store.status() for store in (self.primary, *self.backups)]


def open_stores(config, clock) -> dict[str, list[Store]]:
    """Every replica's store, at the paths and with the tables its service uses."""
    data_dir = config.cluster.data_dir
    kinds = {"catalog": ((BOOKS,), seed), "order": ((ORDERS, BUYS), None)}
    stores = {}
    for service, (tables, seeding) in kinds.items():
        stores[service] = [
            Store(data_dir / f"{service}-{replica.name}.sqlite", tables, seeding, clock)
            for replica in config.replicas[service]
        ]
    return stores


class Progress:
    """Prints how far a fill is, at most every few seconds."""

    def __init__(self, what: str, total: int, echo, every: float = 5.0):
        self.what, self.total, self.echo, self.every = what, total, echo, every
        self.started = self.shown = time.monotonic()

    def __call__(self, done: int, force: bool = False) -> None:
        """Say that C{done} of the total are done (now, with C{force})."""
        now = time.monotonic()
        if not force and now - self.shown < self.every:
            return
        self.shown = now
        rate = done / max(now - self.started, 1e-9)
        left = (self.total - done) / rate if rate else 0.0
        self.echo(
            f"  {self.what}: {done:,}/{self.total:,} ({100 * done / max(self.total, 1):.0f}%), "
            f"{rate:,.0f}/s, {left:.0f} s to go"
        )


async def buy_round(orders: Orders, catalog: Catalog, first: int, count: int) -> None:
    """
    C{count} buys at once (numbers C{first}...), of the seed books in turn;
    each book restocked first with as many copies as the round buys of it,
    so that none runs out (and invariant 2 holds: the restocks are writes).
    """
    wanted = {}
    for n in range(first, first + count):
        wanted[n % len(SEED) + 1] = wanted.get(n % len(SEED) + 1, 0) + 1
    await defer.gatherResults(
        [catalog.update(item, {"stock_delta": k}, f"fill-restock-{first}-{item}") for item, k in wanted.items()],
        consumeErrors=True,
    )
    await defer.gatherResults(
        [orders.buy(n % len(SEED) + 1, f"fill-buy-{n}") for n in range(first, first + count)],
        consumeErrors=True,
    )


async def fill(reactor, config, orders: int, books: int = 0, rate: float = 1.0, echo=print) -> dict:
    """
    Fill the stopped cluster of C{config}: C{books} books in all (the seven
    seed books included), then C{orders} buys.

    @return: per service, the C{(applied_seq, last_view, checksum)} the
        replicas agree on.
    @raise SystemExit: if they do not agree.
    """
    running = [p.name for p in launcher.processes(config) if p.replica and launcher.running_pid(p) is not None]
    if running:
        raise SystemExit(f"fill: stop these replicas first: {', '.join(running)}")
    span = max(orders, 1) / rate
    writes = WRITES_PER_BUY * orders + max(books - len(SEED), 0) + len(SEED) * (orders // CONCURRENCY + 1)
    now = time.time()
    clock = TickingClock(reactor, now - span, span / max(writes, 1))
    stores = open_stores(config, clock)
    every = [store for group in stores.values() for store in group]
    for store in every:
        store.startService()
        store.view = 1
    cluster = config.cluster
    services = {name: Service(group) for name, group in stores.items()}
    try:
        for service in services.values():
            await service.start()
        catalog = Catalog(services["catalog"].primary)
        if books > len(SEED):
            await add_books(catalog, services["catalog"], books, cluster, clock, echo)
        shop = Orders(services["order"].primary, LocalCatalog(catalog))
        progress = Progress("orders", orders, echo)
        done = 0
        while done < orders:
            count = min(CONCURRENCY, orders - done)
            await buy_round(shop, catalog, done, count)
            done += count
            forget = utc_timestamp(clock.now - cluster.idempotency_keep)
            for service in services.values():
                await service.ship()
                await service.compact(cluster.log_keep, forget)
            progress(done, force=done == orders)
        agreed = {}
        for name, service in services.items():
            statuses = await service.statuses()
            if len({(seq, checksum) for seq, _, checksum in statuses}) != 1:
                raise SystemExit(f"fill: the {name} replicas disagree: {statuses}")
            for store in (service.primary, *service.backups):
                verified = await store.verify()
                if not verified["match"]:
                    raise SystemExit(f"fill: {store.path.name}: kept digest {verified} is not the recount")
            agreed[name] = statuses[0]
            echo(f"  {name}: every replica at seq {statuses[0][0]}, checksum {statuses[0][2][:16]}...")
        return agreed
    finally:
        for store in every:
            await store.stopService()


async def add_books(catalog: Catalog, service: Service, books: int, cluster, clock, echo) -> None:
    """
    Add books until the catalog holds C{books}, by the catalog's own write
    of a new book (L{Catalog.add}), many at once.
    """
    progress = Progress("books", books - len(SEED), echo)
    topics = max((books - len(SEED)) // 10, 1)
    done = 0
    while done < books - len(SEED):
        count = min(CONCURRENCY * 5, books - len(SEED) - done)
        await defer.gatherResults(
            [
                catalog.add(generated_book(len(SEED) + 1 + n, topics), f"fill-book-{n}")
                for n in range(done, done + count)
            ],
            consumeErrors=True,
        )
        done += count
        await service.ship()
        await service.compact(cluster.log_keep, utc_timestamp(clock.now - cluster.idempotency_keep))
        progress(done, force=done == books - len(SEED))


def generated_book(number: int, topics: int) -> dict:
    """
    The C{POST /books} body of generated book C{number}: about ten books
    per generated topic, none in a seed book's topic (so a search of a seed
    topic finds the same two books at every size).
    """
    return {
        "title": f"Generated book {number}: a title of a usual length",
        "topic": f"generated topic {number % topics}",
        "cost": f"{number % 50 + 5}.{number % 100:02d}",
        "stock": 10,
    }


def main(argv=None):
    """Fill the databases of the config's (stopped) replicas."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--config", required=True, help="the cluster's config.ini")
    parser.add_argument("--orders", type=int, default=1_000_000, help="buys to make")
    parser.add_argument("--books", type=int, default=len(SEED), help="books in all, the seven seed books included")
    parser.add_argument("--rate", type=float, default=1.0, help="buys per simulated second")
    args = parser.parse_args(argv)
    config = configuration.load(args.config)
    started = time.monotonic()

    async def run(reactor):
        await fill(reactor, config, args.orders, args.books, args.rate)

    try:
        task.react(lambda reactor: defer.ensureDeferred(run(reactor)))
    except SystemExit as e:
        if e.code:
            raise
    print(f"filled in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
