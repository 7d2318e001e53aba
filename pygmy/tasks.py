"""
Work that runs to its end whatever happens to whoever asked for it.

Twisted cancels a request's handler when its connection drops (Klein
cancels the handler's L{Deferred}), and cancellation travels down every
C{await}.  A write that is cancelled halfway (the catalog's stock taken,
the order not yet recorded; a commit queued, its replication not yet
sent) leaves state behind that nobody finishes.  So writes run as tasks
that no caller can cancel: L{shielded} hands a caller a L{Deferred} of its
own, and L{Tasks} runs one task per key, however many callers wait for it
(a retry of a request still in progress joins it instead of starting it
again).
"""

from __future__ import annotations

from typing import Awaitable, Callable, Hashable

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger()


class Task:
    """
    One piece of work and whoever waits for it.

    @ivar done: whether it has finished.
    """

    def __init__(self, work: Deferred, what: str = "a task"):
        self.done = False
        self._what = what
        self._result = None
        self._waiters: list[Deferred] = []
        work.addBoth(self._finished)

    def waiter(self) -> Deferred:
        """A L{Deferred} of the outcome; cancelling it leaves the work running."""
        waiter = Deferred()
        if self.done:
            waiter.callback(self._result)
        else:
            self._waiters.append(waiter)
        return waiter

    def _finished(self, result) -> None:
        self.done, self._result = True, result
        waiters, self._waiters = self._waiters, []
        heard = not waiters  # finished at once: the first waiter is yet to come
        for waiter in waiters:
            if not waiter.called:
                heard = True
                waiter.callback(result)
        if isinstance(result, Failure) and not heard:
            log.failure("{what} failed, and nobody waits for it any more", result, what=self._what)
        # Each waiter got its own reference; the task's own chain ends here.
        return None


def shielded(work: Deferred | Awaitable, what: str = "a task") -> Deferred:
    """
    C{work}'s outcome, through a L{Deferred} whose cancellation does not
    cancel C{work}.
    """
    return Task(ensureDeferred(work), what).waiter()


class Tasks:
    """
    At most one running task per key.

    @param what: what the tasks are, for the log line of one that fails
        when nobody waits for it.
    """

    def __init__(self, what: str):
        self._what = what
        self._running: dict[Hashable, Task] = {}

    def run(self, key: Hashable, start: Callable[[], Awaitable]) -> Deferred:
        """
        The outcome of the task of C{key}: the running one, or a new one
        started with C{start()}.  Cancelling the result leaves the task
        running.
        """
        task = self._running.get(key)
        if task is None:
            work = ensureDeferred(start())
            task = Task(work, f"{self._what} {key}")
            if not task.done:
                self._running[key] = task
                work.addBoth(self._forget, key, task)
        return task.waiter()

    def running(self, key: Hashable) -> bool:
        """Whether the task of C{key} is still running."""
        return key in self._running

    def __len__(self) -> int:
        return len(self._running)

    def _forget(self, _, key, task) -> None:
        if self._running.get(key) is task:
            del self._running[key]
