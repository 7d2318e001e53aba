"""
Command-line options shared by the three twistd plugins: C{--config} for
all, C{--name} for a front end of several, C{--replica} for a replica.

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
        """Check C{--log-format}; load C{--config}, or exit with its one-line error."""
        if self["log-format"] not in FORMATS:
            raise usage.UsageError(f"--log-format must be one of {', '.join(FORMATS)}.")
        try:
            self.config = configuration.load(self["config"])
        except configuration.ConfigError as e:
            raise SystemExit(f"{self.tapname}: {e}") from None
        twistd = getattr(self, "parent", None)
        if self["log-format"] == "json" and twistd is not None:
            twistd["logger"] = use_json(twistd)


class FrontendOptions(ConfigOptions):
    """
    C{--config PATH [--name NAME]}: with several C{[frontend:NAME]}
    sections, C{--name} says which one this process is; C{self.config} is
    then that front end's view of the file (its C{frontend} is the named one).
    """

    optParameters = [
        ["name", "n", None, "The front end to run: NAME of a [frontend:NAME] section (needed with several)."],
    ]

    def postOptions(self):
        """Load the config, then pick the front end C{--name} names, or exit with a line listing the names."""
        super().postOptions()
        try:
            self.config = self.config.named(self["name"])
        except configuration.ConfigError as e:
            raise SystemExit(f"{self.tapname}: {e}") from None


class ReplicaOptions(ConfigOptions):
    """
    C{--config PATH --replica NAME} for a replica of L{service}.
    """

    service = ""
    optParameters = [
        ["replica", "r", None, "The replica to run: NAME of a [service:NAME] section."],
    ]

    def postOptions(self):
        """Require C{--replica}, load the config, and check the replica has a section."""
        if not self["replica"]:
            raise usage.UsageError("--replica NAME is required.")
        super().postOptions()
        try:
            self.config.replica(self.service, self["replica"])
        except configuration.ConfigError as e:
            raise SystemExit(f"{self.tapname}: {e}") from None


def build_service(options: ConfigOptions, build, *args, reactor=None):
    """
    What every plugin's C{makeService} does: prepare the process, then
    C{build(options.config, *args, reactor)}.

    @param build: a role's service factory (L{pygmy.frontend.service.frontend_service}, ...).
    @param args: its arguments between the config and the reactor (the replica's name).
    @param reactor: the reactor to build on; C{None} for the global one,
        which twistd has installed by the time it calls C{makeService}.
        Tests pass a memory reactor.
    @return: the role's C{MultiService}, not started.
    """
    if reactor is None:
        from twisted.internet import reactor
    prepare_process(options.config)
    return build(options.config, *args, reactor)


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
