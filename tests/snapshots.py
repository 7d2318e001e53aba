"""
Snapshots in tests: the records a store streams (L{pygmy.replication.snapshot.copy}),
gathered, and installed into another store through the real
L{Install<pygmy.replication.install.Install>}, one record at a time.  For
stores whose interactions complete at once (L{tests.fakes.sync_store}).
"""

from __future__ import annotations

import json

from twisted.internet.defer import Deferred

from pygmy.replication import snapshot
from pygmy.replication.install import Install
from tests.fakes import result


def records_of(store, rows: int | None = None, budget: int | None = None, between=None) -> list[dict]:
    """
    The records of C{store}'s snapshot stream, decoded.

    @param between: called with the record just sent, before the next page
        is read (to write to C{store} in the middle of a copy).
    """
    records = []

    async def send(data: bytes) -> None:
        assert data.endswith(b"\n") and data.count(b"\n") == 1
        records.append(json.loads(data))
        if between is not None:
            between(records[-1])

    result(Deferred.fromCoroutine(snapshot.copy(store, send, rows, budget)))
    return records


def snapshot_of(store) -> dict:
    """
    C{store}'s snapshot as one dict: C{{"applied_seq", "last_view",
    "tables": {name: rows}, "requests": [entry, ...]}} (a quiet store's:
    its log part is empty).
    """
    records = records_of(store)
    start, end = records[0]["snapshot"], records[-1]["end"]
    assert (start["applied_seq"], start["last_view"]) == (end["applied_seq"], end["last_view"]), "not quiet"
    tables = {table.name: [] for table in store.tables}
    requests = []
    for record in records:
        if "page" in record:
            tables[record["page"]["table"]] += record["page"]["rows"]
        elif "requests" in record:
            requests += record["requests"]
    return {**start, "tables": tables, "requests": requests}


def install_records(store, records: list[dict], source: str = "test") -> tuple[int, int] | None:
    """Feed C{records} to an L{Install} on C{store}; where its log ends if complete, else C{None}."""
    install = Install(store, source)
    for record in records:
        result(install.record(record))
    return install.position


def install_snapshot(store, snap: dict) -> tuple[int, int]:
    """Install a snapshot in the shape of L{snapshot_of} (C{requests} optional) on C{store}."""
    records = [{"snapshot": {"applied_seq": snap["applied_seq"], "last_view": snap["last_view"]}}]
    for name, rows in snap["tables"].items():
        records += [{"page": {"table": name, "rows": rows[i : i + 1000]}} for i in range(0, len(rows), 1000)]
    if snap.get("requests"):
        records.append({"requests": snap["requests"]})
    records.append({"log": {"after": snap["applied_seq"], "until": snap["applied_seq"]}})
    records.append({"end": {"applied_seq": snap["applied_seq"], "last_view": snap["last_view"]}})
    position = install_records(store, records)
    assert position is not None
    return position
