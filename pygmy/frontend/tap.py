"""
C{twistd pygmy-frontend --config config.ini [--name NAME]}
"""

from pygmy.process.options import FrontendOptions


class Options(FrontendOptions):
    """Options of the front end."""

    tapname = "pygmy-frontend"


def makeService(options, reactor=None):
    """
    The front end of the cluster in C{--config}.

    @param reactor: the reactor to run on; the global one by default.
    """
    from pygmy.frontend.service import frontend_service
    from pygmy.process.options import build_service

    return build_service(options, frontend_service, reactor=reactor)
