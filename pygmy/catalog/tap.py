"""
C{twistd pygmy-catalog --config config.ini --replica NAME}
"""

from pygmy.process.options import ReplicaOptions


class Options(ReplicaOptions):
    """Options of a catalog replica."""

    tapname = "pygmy-catalog"
    service = "catalog"


def makeService(options):
    """Catalog replica C{--replica} of the cluster in C{--config}."""
    from twisted.internet import reactor

    from pygmy.catalog.service import catalog_service
    from pygmy.process.options import prepare_process

    prepare_process(options.config)
    return catalog_service(options.config, options["replica"], reactor)
