"""
Command-line options shared by the three twistd plugins.

A broken C{config.ini} ends start-up with one line on stderr naming the
file, section and key.  (Raising C{UsageError} instead would make twistd
print its whole usage text before that line.)
"""

from __future__ import annotations

import sys

from twisted.python import usage

from pygmy import config as configuration
from pygmy.process.logs import FORMATS, use_json, warn_about_defaults


class ConfigOptions(usage.Options):
    """
    C{--config PATH}: load and validate C{config.ini} into C{self.config}.
    """

    tapname = "pygmy"
    optParameters = [
        ["config", "c", "config.ini", "Path of the cluster's config.ini."],
        ["log-format", None, "text", "Log as 'text' or 'json' (one JSON object per line)."],
    ]

    def postOptions(self):
        if self["log-format"] not in FORMATS:
            raise usage.UsageError(f"--log-format must be one of {', '.join(FORMATS)}.")
        try:
            self.config = configuration.load(self["config"])
        except configuration.ConfigError as e:
            raise SystemExit(f"{self.tapname}: {e}")
        twistd = getattr(self, "parent", None)
        if self["log-format"] == "json" and twistd is not None:
            twistd["logger"] = use_json(twistd)


class ReplicaOptions(ConfigOptions):
    """
    C{--config PATH --replica NAME} for a replica of L{service}.
    """

    service = ""
    optParameters = [
        ["replica", "r", None, "The replica to run: NAME of a [service:NAME] section."],
    ]

    def postOptions(self):
        if not self["replica"]:
            raise usage.UsageError("--replica NAME is required.")
        super().postOptions()
        try:
            self.config.replica(self.service, self["replica"])
        except configuration.ConfigError as e:
            raise SystemExit(f"{self.tapname}: {e}")


def prepare_process(config) -> None:
    """
    What every Pygmy server does before it builds its services: process
    settings, and warnings about the configuration.
    """
    tune_process()
    warn_about_defaults(config)


def tune_process() -> None:
    """
    Process-wide settings for a Pygmy server.

    Each database call hands work to a thread and back; with Python's
    default 5 ms GIL switch interval a busy reactor can keep that thread
    waiting 5 ms per call.  0.5 ms keeps writes fast under load.
    """
    sys.setswitchinterval(0.0005)
