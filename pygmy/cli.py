"""
The ``pygmy`` command: run a cluster of twistd processes and test it.

    pygmy up     [--config config.ini] [--only NAME ...]
    pygmy down   [--config config.ini] [--only NAME ...]
    pygmy chaos  [--config config.ini] [--duration S] [--clients N] [--seed N]

``up`` starts every replica and then the front end as daemonised twistd
processes (pid file and log of each in ``data_dir``); ``down`` stops them;
``chaos`` kills replicas of a running cluster under load, restarts them and
checks the invariants of DESIGN.md section 6 (the run is :mod:`pygmy.chaos`,
the checks and the report :mod:`pygmy.invariants`).
"""

from __future__ import annotations

import argparse
import sys

from pygmy import __version__
from pygmy import config as configuration


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a whole number of 1 or more")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a number above 0")
    return value


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", "-c", default="config.ini", help="the cluster's config.ini (default: %(default)s)"
    )


def _add_only(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="only this process: frontend, catalog:A, order (a whole service)...; repeatable",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``pygmy`` command and its sub-commands."""
    parser = argparse.ArgumentParser(
        prog="pygmy", description="Run and test a Pygmy book store cluster."
    )
    parser.add_argument("--version", action="version", version=f"pygmy {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    up = commands.add_parser("up", help="start every replica, then the front end, as twistd daemons")
    _add_config(up)
    _add_only(up)

    down = commands.add_parser("down", help="stop the processes started by `pygmy up`")
    _add_config(down)
    _add_only(down)

    chaos = commands.add_parser(
        "chaos", help="kill -9 and restart replicas under load, then check the invariants"
    )
    _add_config(chaos)
    chaos.add_argument(
        "--duration", type=_positive_float, default=30.0, metavar="S",
        help="seconds of load, spread over the kills (default: %(default)s)",
    )
    chaos.add_argument(
        "--clients", type=_positive_int, default=8, metavar="N",
        help="concurrent clients buying and reading (default: %(default)s)",
    )
    chaos.add_argument(
        "--seed", type=int, default=None, metavar="N",
        help="random seed, to repeat a run (default: a new one, printed)",
    )
    return parser


def _say(line: str) -> None:
    print(line, flush=True)


def main(argv=None) -> int:
    """Run the ``pygmy`` command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        config = configuration.load(args.config)
    except configuration.ConfigError as e:
        print(f"pygmy {args.command}: {e}", file=sys.stderr)
        return 2
    if args.command == "chaos":
        from pygmy import chaos

        return chaos.main(config, args.duration, args.clients, args.seed, echo=_say)

    from pygmy import launcher

    action = launcher.up if args.command == "up" else launcher.down
    try:
        return action(config, tuple(args.only), echo=_say)
    except launcher.LaunchError as e:
        print(f"pygmy {args.command}: {e}", file=sys.stderr)
        if e.details:
            print(e.details, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
