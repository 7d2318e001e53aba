"""
``twistd pygmy-order --config config.ini --replica NAME``
"""

from pygmy.options import ReplicaOptions


class Options(ReplicaOptions):
    """Options of an order replica."""

    tapname = "pygmy-order"
    service = "order"


def makeService(options):
    """Order replica ``--replica`` of the cluster in ``--config``."""
    from twisted.internet import reactor

    from pygmy.options import tune_process

    from pygmy.order.service import order_service

    tune_process()
    return order_service(options.config, options["replica"], reactor)
