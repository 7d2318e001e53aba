"""
A replica that was down while 10,000 writes happened catches up from the
primary's log, joins, and ends with the same data; with a short log
(C{log_keep}) it gets a snapshot instead.

Both clusters compact every 0.2 s (C{[cluster] compact_interval}), and the
snapshot case waits until the primary's log no longer holds the backup's
last entry before it restarts the backup: with the default 10 s the writes
could finish before the first compaction, and the backup would catch up
from the log after all.
"""

import signal

import pytest
import pytest_twisted

from pygmy.testing import Cluster, compacted_past, converged, settled
from tests.bulk_writes import write_many
from tests.integration.load import AUTH

pytestmark = pytest.mark.integration
WRITES = 10_000
COMPACT_INTERVAL = 0.2


def log_position(url: str) -> dict:
    """
    C{{"applied_seq", "last_view"}} of the replica at C{url}: the first
    record of its snapshot stream (the rest is not read).
    """
    import json
    import urllib.request

    request = urllib.request.Request(url + "/replication/snapshot", headers=AUTH)
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
        return json.loads(response.readline())["snapshot"]


@pytest.mark.parametrize("log_keep", [100_000, 500], ids=["from-log", "snapshot"])
@pytest_twisted.ensureDeferred
async def test_backup_down_for_10000_writes_catches_up(tmp_path, http, log_keep):
    from twisted.internet import reactor

    cluster = Cluster(tmp_path, log_keep=log_keep, compact_interval=COMPACT_INTERVAL)
    try:
        cluster.start_all()
        services = await settled(cluster)
        primary, backup = services["catalog"]["primary"], services["catalog"]["backups"][0]
        cluster.stop(f"catalog:{backup}", signal.SIGKILL)
        primary_url = cluster.replica_url("catalog", primary)
        # Where the backup's log ends: the primary's head and its view, as the backup saw them.
        head = log_position(primary_url)
        before = head["applied_seq"]
        await write_many(http, primary_url, WRITES)
        if log_keep < WRITES:
            await compacted_past(primary_url, before, head["last_view"])
        started = reactor.seconds()
        cluster.start("catalog", backup)
        statuses = await converged(cluster, "catalog", within=30)
        took = reactor.seconds() - started
        assert statuses[0]["applied_seq"] == before + WRITES
        await settled(cluster)
        print(f"\ncatch-up of {WRITES} entries ({'log' if log_keep > WRITES else 'snapshot'}): {took:.2f}s")
        how = "snapshot" if log_keep < WRITES else "caught up from seq"
        assert how in cluster.log_tail(f"catalog:{backup}", 400)
    finally:
        cluster.stop_all()
