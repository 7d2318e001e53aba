"""
How C{pygmy import} reads its file (L{pygmy.cli.importer.Import}): never
on the reactor thread -- a slow disk or a network file system must not
stall the requests in flight -- but in the reactor's thread pool,
L{READ_AHEAD} rows a trip; and a file that fails while being read has the
rows before the failure sent, then the import stops and says why.
"""

from __future__ import annotations

import errno
import json

from treq.testing import StubTreq
from twisted.internet.defer import Deferred

from pygmy.cli import importer
from pygmy.cli.import_file import Rows
from pygmy.cli.importer import READ_AHEAD, Import, Settings
from tests.fakes import ThreadedClock
from tests.import_fakes import SECRET, URL, FakeFrontEnd, settle, write


class Guarded:
    """A file whose reads fail the test unless the pool is running them; the read after C{fail_after} lines fails."""

    def __init__(self, stream, pool, fail_after=None):
        self.stream, self.pool, self.fail_after = stream, pool, fail_after
        self.lines = 0

    def readline(self, limit=-1):
        assert self.pool.running, "the file was read on the reactor thread"
        if self.fail_after is not None and self.lines >= self.fail_after:
            raise OSError(errno.EIO, "Input/output error")
        self.lines += 1
        return self.stream.readline(limit)


def books(count: int) -> str:
    row = {"topic": "t", "cost": "1.00", "stock": 1}
    return "".join(json.dumps({"title": f"B{n}", **row}) + "\n" for n in range(count))


def run(tmp_path, count: int, fail_after=None):
    path = write(tmp_path, "b.jsonl", books(count))
    clock, front = ThreadedClock(), FakeFrontEnd()
    with open(path, "rb") as stream:
        rows = Rows(Guarded(stream, clock.pool, fail_after), "jsonl", path.stat().st_size, str(path))
        job = Import(clock, StubTreq(front.app.resource()), Settings(str(path), "jsonl", URL, SECRET), rows)
        return settle(clock, Deferred.fromCoroutine(job.run())), front, clock.pool, path


def test_the_file_is_read_in_the_thread_pool_a_few_dozen_rows_a_trip(tmp_path):
    count = 2 * READ_AHEAD + 22
    summary, front, pool, _ = run(tmp_path, count)
    assert summary.clean and summary.added == count and len(front.books) == count
    assert pool.jobs == 3  # two full trips, then a short one: the end


def test_a_file_that_fails_midway_sends_the_rows_before_and_stops(tmp_path):
    summary, front, _, path = run(tmp_path, 200, fail_after=READ_AHEAD + 6)
    assert summary.added == READ_AHEAD + 6 and len(front.books) == READ_AHEAD + 6
    assert summary.stop.message == f"cannot read {path}: Input/output error"
    assert summary.last_line == READ_AHEAD + 6
    assert importer.exit_status(summary) == 1
