"""
What a C{pygmy chaos} run reads back once its load has stopped: whether
the replicas converge (invariant 4), the stock through the front end and
in each catalog replica, the order table, and every order a buy placed
(invariant 3), all into the run's L{pygmy.cli.invariants.Observations}.
"""

from __future__ import annotations

from pygmy.cli import lifecycle
from pygmy.cli.chaos_cluster import Abort, Cluster, Context, call
from pygmy.cli.invariants import CONVERGE_WITHIN, describe_states, replicas_agree, row_stock, stock_levels

#: Seconds the read-back of the orders may take in all.
RETRIEVE_WITHIN = 60.0


class Aftermath:
    """The observations gathered from C{cluster} after the load."""

    def __init__(self, run: Context, cluster: Cluster, clients: int):
        self.run, self.cluster, self.clients = run, cluster, clients

    async def gather(self) -> None:
        """Gather what the checks need once the load has stopped."""
        from twisted.internet.defer import ensureDeferred, gatherResults

        run = self.run
        await gatherResults([ensureDeferred(self.converge(s)) for s in ("catalog", "order")])
        try:
            run.obs.end_stock = stock_levels(await self.cluster.listing())
            for replica in run.config.replicas["catalog"]:
                run.obs.replica_stock[replica.label] = row_stock(await self.cluster.dump(replica))
            run.obs.orders_after = await self.cluster.order_table()
            ledger = run.obs.frontends
            if ledger is not None and ledger.cost_item is not None:
                book = await self.cluster.fetch(None, "GET /lookup", f"/lookup/{ledger.cost_item}")
                run.obs.final_cost = book.get("cost")
        except Abort as e:
            run.obs.fail(f"after the load: {e}")
        await self.retrieve_orders()

    async def converge(self, service: str) -> None:
        """Invariant 4: wait up to 5 s for the replicas of C{service} to agree."""
        run = self.run
        replicas = run.config.replicas[service]
        deadline = run.reactor.seconds() + CONVERGE_WITHIN
        while True:
            seen = {}
            for replica in replicas:
                status, body = await call(run.http, "GET", replica.url + "/status", timeout=2)
                seen[replica.name] = (body["applied_seq"], body["checksum"]) if status == 200 else None
            if replicas_agree(seen):
                run.say(f"{service}: replicas agree at seq {seen[replicas[0].name][0]}")
                return
            if run.reactor.seconds() >= deadline:
                run.obs.divergence[service] = f"after {CONVERGE_WITHIN:.0f} s: {describe_states(seen)}"
                return
            await lifecycle.sleep(run.reactor, 0.1)

    async def retrieve_orders(self) -> None:
        """Invariant 3: C{GET /orders/<id>} of every buy answered 200."""
        from twisted.internet.defer import DeferredList, DeferredSemaphore, ensureDeferred

        run, obs = self.run, self.run.obs
        deadline = run.reactor.seconds() + RETRIEVE_WITHIN

        async def one(order: int, item: int):
            if run.reactor.seconds() >= deadline:
                obs.unretrievable[order] = "not checked: out of time"
                return
            status, body = await self.cluster.ask("GET", f"/orders/{order}")
            obs.record_retrieval(order, item, status, body)

        gate = DeferredSemaphore(max(self.clients, 16))
        await DeferredList([gate.run(lambda o=o, i=i: ensureDeferred(one(o, i))) for o, i in obs.bought.items()])
        run.say(f"{len(obs.bought)} orders read back, {len(obs.unretrievable)} not retrievable")
