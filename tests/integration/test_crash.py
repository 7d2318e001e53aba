"""
Crashes under load on real twistd processes (DESIGN §6 invariants 1-6):
C{kill -9} of the catalog primary, the order primary, or a backup while
clients buy and look up books; the process restarts; then stock and orders
add up, every acknowledged order is there, reads never failed, and the
replicas agree within 5 s.
"""

import signal

import pytest
import pytest_twisted

from pygmy.testing import converged, get_json, settled
from tests.integration.load import check_invariants, ledger, run_load

pytestmark = pytest.mark.integration


def role_of(cluster, service, which):
    view = get_json(cluster.url + "/status")[1]["services"][service]
    return view["primary"] if which == "primary" else view["backups"][0]


@pytest.mark.parametrize(
    "service, which",
    [("catalog", "primary"), ("order", "primary"), ("catalog", "backup"), ("order", "backup")],
)
@pytest_twisted.ensureDeferred
async def test_kill_9_under_load(fresh_cluster, http, service, which):
    cluster = fresh_cluster
    await settled(cluster)
    victim = role_of(cluster, service, which)
    before = ledger(cluster)
    killed = []

    def kill():
        killed.append(cluster.stop(f"{service}:{victim}", signal.SIGKILL))

    def restart():
        cluster.start(service, victim)

    record = await run_load(http, cluster.url, seconds=6.0, events=[(1.5, kill), (3.5, restart)])
    assert killed == [-signal.SIGKILL]
    assert record.buys.get(200, 0) > 20, record.buys
    await settled(cluster)
    check_invariants(cluster, before, record)
    for name in ("catalog", "order"):
        statuses = await converged(cluster, name)
        assert sorted(s["role"] for s in statuses) == ["backup", "primary"], statuses
