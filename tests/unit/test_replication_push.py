"""
What a service does after each write, with the two catalog replicas of
L{tests.replication_pair.Pair} in memory: the catalog's cache push
(L{InvalidationPush}) sends an C{INVALIDATE} line for every new write after
the backups hold it and before the write returns, none for a replayed one,
none from a node without it or without a connection; the catalog's service
installs the push, the order service does not.
"""

from __future__ import annotations

import pytest

from pygmy import config as configuration
from pygmy.catalog.books import Catalog
from pygmy.catalog.service import InvalidationPush, catalog_service
from pygmy.order.service import order_service
from pygmy.replication.heartbeat import invalidate_line
from pygmy.replication.node import Node, NodeService
from tests.fakes import SyncReactor, config_text, result
from tests.replication_pair import SECRET, Pair


@pytest.fixture
def pair(make_store, reactor):
    return Pair(make_store, reactor)


def pushing(pair):
    """C{pair} with A's node pushing invalidations, as L{catalog_service} installs it."""
    pair.nodes["A"].observe_writes(InvalidationPush(pair.nodes["A"], timeout=1.5))
    return pair


def test_the_catalog_push_goes_out_after_the_backups_and_before_the_write_returns(pair):
    pushing(pair).view(1, "A", ["B"])
    pair.view(2, "A", ["B"], to="B")  # B refuses view 1: the write waits for it
    pending = pair.buy("r1")
    pair.reactor.advance(1.0)
    assert not pending.called and pair.heartbeat.invalidate_lines() == []
    when_acknowledged = []
    pending.addCallback(lambda write: when_acknowledged.append(pair.heartbeat.invalidate_lines()))
    pair.view(2, "A", ["B"], to="A")
    pair.reactor.advance(0.25)
    assert when_acknowledged == [[invalidate_line(1, 1, "distributed systems")]]


def test_every_new_write_is_pushed_a_replayed_one_is_not(pair):
    pushing(pair).view(1, "A", [])
    result(pair.buy("r1"))
    result(Catalog(pair.stores["A"], pair.nodes["A"]).update(2, {"stock_delta": 5}, "r2"))
    assert result(pair.buy("r1")).replayed
    assert pair.heartbeat.invalidate_lines() == [
        invalidate_line(1, 1, "distributed systems"),
        invalidate_line(2, 2, "distributed systems"),
    ]


def test_no_push_from_a_node_of_itself_nor_without_a_connection(pair):
    """The generic replica role knows nothing of caches: no observer, no line."""
    pair.view(1, "A", [])
    result(pair.buy("r1"))
    assert pair.nodes["A"].write_observers == () and pair.heartbeat.invalidate_lines() == []
    pushing(pair).nodes["A"].heartbeat_disconnected(pair.heartbeat)
    assert result(pair.buy("r2")).seq == 2 and pair.heartbeat.invalidate_lines() == []


def node_of(service) -> Node:
    """The node inside the twistd service of one replica."""
    (node_service,) = [child for child in service if isinstance(child, NodeService)]
    return node_service.node


def test_the_catalog_service_installs_the_push_the_order_service_does_not(tmp_path):
    path = tmp_path / "config.ini"
    path.write_text(config_text(SECRET, str(tmp_path)))
    config = configuration.load(path, environ={})
    catalog = node_of(catalog_service(config, "A", SyncReactor()))
    (push,) = catalog.write_observers
    assert isinstance(push, InvalidationPush) and push.node is catalog
    assert node_of(order_service(config, "A", SyncReactor())).write_observers == ()
