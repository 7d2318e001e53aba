"""
C{twistd pygmy-frontend --config config.ini}
"""

from pygmy.process.options import ConfigOptions


class Options(ConfigOptions):
    """Options of the front end."""

    tapname = "pygmy-frontend"


def makeService(options):
    """The front end of the cluster in C{--config}."""
    from twisted.internet import reactor

    from pygmy.frontend.service import frontend_service
    from pygmy.process.options import prepare_process

    prepare_process(options.config)
    return frontend_service(options.config, reactor)
