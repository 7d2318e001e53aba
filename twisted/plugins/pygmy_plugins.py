"""
twistd plugins of Pygmy: C{pygmy-frontend}, C{pygmy-catalog} and
C{pygmy-order}.  Each only points at its role's C{tap} module.
"""

from twisted.application.service import ServiceMaker

pygmyFrontend = ServiceMaker(
    "Pygmy front end",
    "pygmy.frontend.tap",
    "The Pygmy book store's public HTTP API, cache and replica watcher.",
    "pygmy-frontend",
)

pygmyCatalog = ServiceMaker(
    "Pygmy catalog replica",
    "pygmy.catalog.tap",
    "One replica of the Pygmy catalog service (books and stock).",
    "pygmy-catalog",
)

pygmyOrder = ServiceMaker(
    "Pygmy order replica",
    "pygmy.order.tap",
    "One replica of the Pygmy order service.",
    "pygmy-order",
)
