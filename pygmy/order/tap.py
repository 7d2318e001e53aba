"""
C{twistd pygmy-order --config config.ini --replica NAME}
"""

from pygmy.process.options import ReplicaOptions


class Options(ReplicaOptions):
    """Options of an order replica."""

    tapname = "pygmy-order"
    service = "order"


def makeService(options, reactor=None):
    """
    Order replica C{--replica} of the cluster in C{--config}.

    @param reactor: the reactor to run on; the global one by default.
    """
    from pygmy.order.service import order_service
    from pygmy.process.options import build_service

    return build_service(options, order_service, options["replica"], reactor=reactor)
