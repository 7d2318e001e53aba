"""
What the tests of several front ends measure, on the reactor (treq): a load
of reads and writes through chosen front ends that stamps every answer, and
a watcher of every front end's and replica's C{/status} that records roles,
leaders and view numbers over time.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from twisted.internet.defer import DeferredList, ensureDeferred
from twisted.internet.task import deferLater

from pygmy.testing import SECRET

AUTH = {b"Authorization": [f"Bearer {SECRET}".encode()]}
TOPICS = ("distributed systems", "graduate school", "project management", "theory", "travel")


def now() -> float:
    from twisted.internet import reactor

    return reactor.seconds()


async def sleep(seconds: float) -> None:
    from twisted.internet import reactor

    await deferLater(reactor, seconds, lambda: None)


async def call(http, method: str, url: str, body=None, timeout: float = 10.0):
    """One request: (status, decoded body); a network error is (None, its repr)."""
    try:
        data = None if body is None else json.dumps(body).encode()
        headers = AUTH if body is not None else None
        response = await http.request(method, url, data=data, headers=headers, timeout=timeout)
        return response.code, json.loads(await response.content())
    except Exception as e:
        return None, repr(e)


@dataclass
class Answer:
    """One request of the load: when it was sent and answered, through which front end, how."""

    kind: str  # "read" or "write"
    frontend: str
    sent: float
    answered: float
    status: int | None
    body: object


@dataclass
class Load:
    """
    Readers and writers through each front end of C{urls} until L{stop}.
    Writes are C{POST /update/<id>} (stock +1) and C{POST /buy/<id>}, in
    turn; reads are lookups and searches.
    """

    http: object
    urls: dict  # front end key -> base URL
    readers: int = 2
    writers: int = 1
    answers: list = field(default_factory=list)
    _running: bool = True
    _work: list = field(default_factory=list)

    def start(self) -> None:
        rng = random.Random(11)
        for key, url in self.urls.items():
            for _ in range(self.readers):
                self._work.append(ensureDeferred(self._reader(key, url, random.Random(rng.random()))))
            for _ in range(self.writers):
                self._work.append(ensureDeferred(self._writer(key, url, random.Random(rng.random()))))

    async def stop(self) -> None:
        self._running = False
        for ok, failure in await DeferredList(self._work, consumeErrors=True):
            assert ok, failure

    async def _reader(self, key, url, rng) -> None:
        while self._running:
            if rng.random() < 0.5:
                path = f"/lookup/{rng.randint(1, 7)}"
            else:
                path = "/search/" + rng.choice(TOPICS).replace(" ", "%20")
            sent = now()
            status, body = await call(self.http, "GET", url + path)
            self.answers.append(Answer("read", key, sent, now(), status, body))
            await sleep(0.01)

    async def _writer(self, key, url, rng) -> None:
        buy = False
        while self._running:
            item = rng.randint(1, 7)
            sent = now()
            if buy:
                status, body = await call(self.http, "POST", f"{url}/buy/{item}")
            else:
                status, body = await call(self.http, "POST", f"{url}/update/{item}", {"stock_delta": 1})
            self.answers.append(Answer("write", key, sent, now(), status, body))
            buy = not buy
            await sleep(0.01)

    def failed(self, kind: str) -> list[Answer]:
        """The answers of C{kind} that were not 200 (a buy of a book out of stock, 409, counts as answered)."""
        return [a for a in self.answers if a.kind == kind and a.status not in (200, 409)]

    def longest_pause(self, kind: str, after: float, before: float) -> float:
        """
        The longest time between C{after} and C{before} during which some
        front end of the load answered no request of C{kind} well.
        """
        longest = 0.0
        for key in self.urls:
            good = sorted(
                a.answered for a in self.answers if a.kind == kind and a.frontend == key and a.status in (200, 409)
            )
            times = [after] + [t for t in good if after < t < before] + [before]
            longest = max([longest] + [b - a for a, b in zip(times, times[1:], strict=False)])
        return longest

    def first_good(self, kind: str, after: float):
        """When the first request of C{kind} sent after C{after} was answered well (C{None}: none was)."""
        good = [a.answered for a in self.answers if a.kind == kind and a.sent > after and a.status == 200]
        return min(good, default=None)


@dataclass
class Sample:
    """One C{/status} answer of a front end."""

    at: float
    frontend: str
    role: str
    leader: str | None
    views: dict  # service -> view number


@dataclass
class Watcher:
    """Polls every front end's and replica's C{/status} every C{every} seconds until L{stop}."""

    http: object
    cluster: object
    every: float = 0.05
    samples: list = field(default_factory=list)
    replica_views: list = field(default_factory=list)  # (at, "service:name", view)
    _running: bool = True
    _work: object = None

    def start(self) -> None:
        self._work = ensureDeferred(self._run())

    async def stop(self) -> None:
        self._running = False
        await self._work

    async def _run(self) -> None:
        cluster = self.cluster
        replicas = [(s, r.name, r.url) for s in ("catalog", "order") for r in cluster.config.replicas[s]]
        while self._running:
            for key in cluster.frontends:
                if key not in cluster.processes:
                    continue
                status, body = await call(self.http, "GET", cluster.frontend_url(key) + "/status", timeout=1.0)
                if status == 200 and body["frontend"]["views_read"]:
                    # (A front end that has not read the stored views yet says nothing of them.)
                    front = body["frontend"]
                    views = {service: view["view"] for service, view in body["services"].items()}
                    self.samples.append(Sample(now(), key, front["role"], front["leader"], views))
            for service, name, url in replicas:
                status, body = await call(self.http, "GET", url + "/status", timeout=1.0)
                if status == 200:
                    self.replica_views.append((now(), f"{service}:{name}", body["view"]))
            await sleep(self.every)

    def leaders(self) -> dict[str, tuple[float, float]]:
        """Per front end, the first and last time it said it led."""
        found = {}
        for sample in self.samples:
            if sample.role == "leader":
                first, _ = found.get(sample.frontend, (sample.at, sample.at))
                found[sample.frontend] = (first, sample.at)
        return found

    def views_went_down(self) -> list[str]:
        """Every time a replica's view number, or a running front end's, went down."""
        wrong, last = [], {}
        for at, replica, view in self.replica_views:
            if view < last.get(replica, 0):
                wrong.append(f"{replica}: view {last[replica]} then {view} at {at:.2f}")
            last[replica] = max(view, last.get(replica, 0))
        last = {}
        for sample in self.samples:
            for service, view in sample.views.items():
                key = (sample.frontend, service)
                if view < last.get(key, 0):
                    wrong.append(f"{sample.frontend} {service}: view {last[key]} then {view} at {sample.at:.2f}")
                last[key] = max(view, last.get(key, 0))
        return wrong


# The front ends' agreement, read from their /status


async def statuses(http, cluster) -> dict:
    """The C{/status} of every running front end, by key."""
    found = {}
    for key in cluster.frontends:
        if key in cluster.processes:
            status, body = await call(http, "GET", cluster.frontend_url(key) + "/status", timeout=2.0)
            if status == 200:
                found[key] = body
    return found


def whole(services: dict) -> bool:
    """Every replica in its service's view, and alive as this front end sees it."""
    return all(
        v["primary"] is not None
        and len(v["backups"]) == len(v["replicas"]) - 1
        and all(r["alive"] for r in v["replicas"].values())
        for v in services.values()
    )


async def agreed(http, cluster, within: float = 20.0, exclude=()) -> str:
    """
    Wait until every running front end names the same leader, that leader
    says it leads, and every view is whole and the same everywhere; return
    the leader's key.
    """
    deadline = now() + within
    while True:
        found = {k: v for k, v in (await statuses(http, cluster)).items() if k not in exclude}
        leaders = {body["frontend"]["leader"] for body in found.values()}
        views = {
            tuple(sorted((s, v["view"], v["primary"], tuple(v["backups"])) for s, v in body["services"].items()))
            for body in found.values()
        }
        running = [k for k in cluster.frontends if k in cluster.processes and k not in exclude]
        if len(found) == len(running) and len(leaders) == 1 and len(views) == 1:
            (leader,) = leaders
            key = f"frontend:{leader}" if leader else None
            if key in found and found[key]["frontend"]["role"] == "leader":
                if all(whole(body["services"]) for body in found.values()):
                    return key
        assert now() < deadline, {k: (v["frontend"], v["services"]) for k, v in found.items()}
        await sleep(0.1)
