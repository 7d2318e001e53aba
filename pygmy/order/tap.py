"""
C{twistd pygmy-order --config config.ini --replica NAME}
"""

from pygmy.process.options import ReplicaOptions


class Options(ReplicaOptions):
    """Options of an order replica."""

    tapname = "pygmy-order"
    service = "order"


def makeService(options):
    """Order replica C{--replica} of the cluster in C{--config}."""
    from twisted.internet import reactor

    from pygmy.order.service import order_service
    from pygmy.process.options import prepare_process

    prepare_process(options.config)
    return order_service(options.config, options["replica"], reactor)
