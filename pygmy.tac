"""
The whole Pygmy cluster in one process: C{twistd -ny pygmy.tac}.

The configuration is C{$PYGMY_CONFIG}, or C{config.ini} in the current
directory: one front end (a file with several is refused in one line).
"""

import os

from twisted.application.service import Application
from twisted.internet import reactor

from pygmy.cluster import cluster_service, one_frontend
from pygmy.config import ConfigError, load
from pygmy.process.options import prepare_process

path = os.environ.get("PYGMY_CONFIG", "config.ini")
try:
    config = load(path)
    one_frontend(config)
except ConfigError as e:
    raise SystemExit(f"pygmy.tac: {e}") from None

prepare_process(config)
application = Application("pygmy")
cluster_service(config, reactor).setServiceParent(application)
