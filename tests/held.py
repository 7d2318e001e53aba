"""
A thread pool and a reactor that run no threads: L{HeldPool} keeps each job
until the test runs it, and L{HeldReactor} is just what C{deferToThreadPool}
needs of a reactor, around a L{HeldPool}.  Used by the views store's tests
(C{tests/unit/test_coordination.py}, C{tests/unit/test_durable_views.py})
and a replica's shutdown (C{tests/unit/test_shutdown.py}).
"""

from tests.fakes import PoolThread


class HeldPool:
    """A thread pool whose jobs wait until the test runs them."""

    def __init__(self):
        self.jobs = []

    def callInThreadWithCallback(self, on_result, f, *args, **kwargs):
        self.jobs.append((on_result, f, args, kwargs))

    def run_one(self):
        on_result, f, args, kwargs = self.jobs.pop(0)
        PoolThread.run(on_result, f, *args, **kwargs)

    def run_all(self):
        while self.jobs:
            self.run_one()


class HeldReactor:
    """Just what C{deferToThreadPool} needs of a reactor."""

    def __init__(self):
        self.pool = HeldPool()

    def getThreadPool(self):
        return self.pool

    def callFromThread(self, f, *args, **kwargs):
        PoolThread.call_from_thread(f, *args, **kwargs)
