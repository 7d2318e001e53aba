"""
C{twistd pygmy-catalog --config config.ini --replica NAME}
"""

from pygmy.process.options import ReplicaOptions


class Options(ReplicaOptions):
    """Options of a catalog replica."""

    tapname = "pygmy-catalog"
    service = "catalog"


def makeService(options, reactor=None):
    """
    Catalog replica C{--replica} of the cluster in C{--config}.

    @param reactor: the reactor to run on; the global one by default.
    """
    from pygmy.catalog.service import catalog_service
    from pygmy.process.options import build_service

    return build_service(options, catalog_service, options["replica"], reactor=reactor)
