"""
Log output of the Pygmy processes.

twistd writes text logs (to stdout with C{-n}, else to C{--logfile});
C{--log-format json} on any Pygmy plugin writes the same events as one
JSON object per line instead (twisted.logger's JSON format), to the same
place, for log shippers.
"""

from __future__ import annotations

import sys

from twisted.logger import Logger, jsonFileLogObserver
from twisted.python.logfile import LogFile

from pygmy.config import DEFAULT_SECRET, Config

FORMATS = ("text", "json")

log = Logger()


_json_target: dict = {}


def use_json(twistd_options) -> str:
    """
    Make twistd log JSON where it would have written text: remember where
    (from twistd's C{--logfile} and C{-n}) and return the dotted name of
    the observer factory, for twistd's C{logger} option.
    """
    _json_target["logfile"] = twistd_options.get("logfile") or ""
    _json_target["nodaemon"] = bool(twistd_options.get("nodaemon"))
    return f"{__name__}.json_observer"


def json_observer():
    """twistd's observer factory for C{--log-format json} (see L{use_json})."""
    name = _json_target.get("logfile", "")
    if name == "-" or (not name and _json_target.get("nodaemon", True)):
        stream = sys.stdout
    else:
        stream = LogFile.fromFullPath(name or "twistd.log")
    return jsonFileLogObserver(stream)


def warn_about_defaults(config: Config) -> None:
    """Say so, at start-up, when the cluster runs with the default secret."""
    if config.cluster.secret == DEFAULT_SECRET:
        log.warn(
            "The cluster secret is the default {secret!r}: anyone who can reach "
            "the internal ports can write. Set [cluster] secret or $PYGMY_SECRET.",
            secret=DEFAULT_SECRET,
        )
