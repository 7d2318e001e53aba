"""
The C{pygmy} command: use a book store, load it, run a cluster and test it.

    pygmy search TOPIC | lookup ID | buy ID [--key K] | order ID | list [--limit N] | status
                 | update ID [--cost C] [--stock-delta N] [--key K] [--secret S]
                 [--url URL ... | --config config.ini] [--json] [--timeout S]
    pygmy load   [--url URL ... | --config config.ini] [--clients N] [--duration S]
                 [--count N] [--mix lookup=6,search=3,buy=1] [--no-cache]
                 [--plot FILE.png] [--json [FILE]] [--crash catalog|order]
    pygmy import FILE [--url URL ... | --config config.ini] [--format csv|jsonl] [--secret S]
                 [--concurrency N] [--retries N] [--timeout S] [--json]
    pygmy up     [--config config.ini] [--only NAME ...]      (NAME: catalog:A, order, frontend, frontend:2, etcd)
    pygmy down   [--config config.ini] [--only NAME ...]
    pygmy chaos  [--config config.ini] [--duration S] [--clients N] [--seed N] [--frontend]
    pygmy evaluate --out DIR [--config config.ini] [--json [FILE]] [--quick] [--clients 1,3,5,9]

The client commands talk to the front ends at C{--url} (repeatable), or
to every front end of the config file (C{./config.ini} if it exists), or
to http://127.0.0.1:8080; a request that cannot reach one front end goes
to the next (L{pygmy.cli.frontends}, L{pygmy.cli.client}); C{load} runs
concurrent clients and reports latency per operation (L{pygmy.cli.load}).
C{up} starts a local etcd if the C{[coordinator]} needs one, every replica
and then every front end as daemonised processes (pid file and log of each
in C{data_dir}); C{down} stops them; C{chaos} kills replicas (and front
ends) of a running cluster under load, restarts them and checks the
invariants of DESIGN.md section 6 (the run is L{pygmy.cli.chaos}, the
checks and the report L{pygmy.cli.invariants}).
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


def _page_size(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{text} is not a whole number from 1 to 1000")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a number above 0")
    return value


def _mix(text: str) -> dict:
    from pygmy.cli.load import parse_mix

    try:
        return parse_mix(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", default="config.ini", help="the cluster's config.ini (default: %(default)s)")


def _add_only(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="only this process: catalog:A, order (a whole service), frontend (every front end), frontend:2, "
        "etcd...; repeatable",
    )


def _add_frontend(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        "-u",
        action="append",
        default=None,
        metavar="URL",
        help="a front end's base URL; repeat it for several, tried in turn when one cannot be reached "
        "(default: every front end of the config file, else http://127.0.0.1:8080)",
    )
    parser.add_argument(
        "--config",
        "-c",
        default=None,
        help="config.ini whose front ends ([frontend] or each [frontend:NAME]) to use "
        "(default: ./config.ini if it exists)",
    )


def _add_client_commands(commands) -> None:
    """search, lookup, buy, order, list, update, status: one request each (L{pygmy.cli.client})."""
    from pygmy.cli.client import DEFAULT_TIMEOUT

    def command(name: str, help: str) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=help)
        _add_frontend(parser)
        parser.add_argument("--json", action="store_true", help="print the front end's JSON reply")
        parser.add_argument(
            "--timeout",
            type=_positive_float,
            default=DEFAULT_TIMEOUT,
            metavar="S",
            help="seconds to wait for the answer (default: %(default)s)",
        )
        return parser

    command("search", "the books of a topic").add_argument("topic", nargs="+", help="the topic (words are joined)")
    command("lookup", "one book: title, topic, cost, stock").add_argument("id", help="the book's id")
    buy = command("buy", "buy one copy of a book")
    buy.add_argument("id", help="the book's id")
    buy.add_argument("--key", "-k", default=None, help="Idempotency-Key: the same key again buys only once")
    command("order", "one order").add_argument("id", help="the order's id")
    update = command("update", "change a book's cost and/or stock (needs the cluster's secret)")
    update.add_argument("id", help="the book's id")
    update.add_argument("--cost", default=None, metavar="C", help='the new cost, a decimal such as "12.50"')
    update.add_argument(
        "--stock-delta", type=int, default=None, metavar="N", help="copies to add (or, below 0, to take away)"
    )
    update.add_argument("--key", "-k", default=None, help="Idempotency-Key: the same key again changes it only once")
    update.add_argument(
        "--secret",
        default=None,
        help="the cluster's secret (default: $PYGMY_SECRET, else [cluster] secret of the config file)",
    )
    command("list", "every book, page by page").add_argument(
        "--limit", type=_page_size, default=None, metavar="N", help="books per request, 1 to 1000 (default: 1000)"
    )
    command("status", "the cluster as the front end sees it: views, replicas, cache")


def _add_load(commands) -> None:
    """The C{load} sub-command (L{pygmy.cli.load})."""
    # Over 50 lines for a reason: one flat add_argument per option, nothing else.
    from pygmy.cli.load import DEFAULT_MIX

    load = commands.add_parser(
        "load", help="concurrent clients: a progress bar, then latency per operation (needs pygmy[load])"
    )
    _add_frontend(load)
    load.add_argument(
        "--clients", "-n", type=_positive_int, default=10, metavar="N", help="concurrent clients (default: %(default)s)"
    )
    load.add_argument(
        "--duration",
        "-d",
        type=_positive_float,
        default=None,
        metavar="S",
        help="seconds of load (default: 10, unless --count is given)",
    )
    load.add_argument(
        "--count",
        type=_positive_int,
        default=None,
        metavar="N",
        help="stop after N requests (with --duration, whichever comes first)",
    )
    load.add_argument(
        "--mix",
        type=_mix,
        default=DEFAULT_MIX,
        metavar="OP=W,...",
        help="weights of search, lookup, buy, list (default: %(default)s)",
    )
    load.add_argument(
        "--no-cache",
        action="store_true",
        help="send Cache-Control: no-cache with every read (compare with a run without it)",
    )
    load.add_argument("--seed", type=int, default=None, metavar="N", help="random seed (default: a new one, printed)")
    load.add_argument(
        "--timeout",
        type=_positive_float,
        default=10.0,
        metavar="S",
        help="seconds a request may take before it counts as 'no answer' (default: %(default)s)",
    )
    load.add_argument(
        "--plot",
        default=None,
        metavar="FILE.png",
        help="draw the latency distributions (and the --crash timeline) into this PNG",
    )
    load.add_argument(
        "--json",
        nargs="?",
        const="-",
        default=None,
        metavar="FILE",
        help="write the raw summary as JSON to FILE, or to stdout instead of the table",
    )
    load.add_argument(
        "--crash",
        choices=("catalog", "order"),
        default=None,
        help="kill -9 this service's primary during the run and restart it (a cluster of `pygmy up --config`)",
    )
    load.add_argument(
        "--crash-at",
        type=_positive_float,
        default=None,
        metavar="S",
        help="when to kill, in seconds from the start (default: a third of --duration)",
    )
    load.add_argument(
        "--down",
        type=_positive_float,
        default=2.0,
        metavar="S",
        help="seconds the killed primary stays down before its restart (default: %(default)s)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the C{pygmy} command and its sub-commands."""
    parser = argparse.ArgumentParser(prog="pygmy", description="Use, load, run and test a Pygmy book store cluster.")
    parser.add_argument("--version", action="version", version=f"pygmy {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_client_commands(commands)
    _add_load(commands)
    from pygmy.cli.importer import add_arguments as add_import

    imports = commands.add_parser("import", help="add the books of a CSV or JSON lines file (POST /books)")
    _add_frontend(imports)
    add_import(imports)
    from pygmy.cli.evaluate_options import add_arguments as add_evaluate

    add_evaluate(commands.add_parser("evaluate", help="measure a running cluster: cache, consistency, faults"))

    up = commands.add_parser(
        "up", help="start a local etcd if the config needs one, every replica, then every front end, as daemons"
    )
    _add_config(up)
    _add_only(up)

    down = commands.add_parser("down", help="stop the processes started by `pygmy up`")
    _add_config(down)
    _add_only(down)

    chaos = commands.add_parser("chaos", help="kill -9 and restart replicas under load, then check the invariants")
    _add_config(chaos)
    chaos.add_argument(
        "--duration",
        type=_positive_float,
        default=30.0,
        metavar="S",
        help="seconds of load, spread over the kills (default: %(default)s)",
    )
    chaos.add_argument(
        "--clients",
        type=_positive_int,
        default=8,
        metavar="N",
        help="concurrent clients buying and reading (default: %(default)s)",
    )
    chaos.add_argument(
        "--seed",
        type=int,
        default=None,
        metavar="N",
        help="random seed, to repeat a run (default: a new one, printed)",
    )
    chaos.add_argument(
        "--frontend",
        action="store_true",
        help="kill -9 and restart the front end too, and check invariant 9 (every decrement has one order)",
    )
    return parser


#: The sub-commands that are one request to the front end.
CLIENT_COMMANDS = ("search", "lookup", "buy", "order", "list", "update", "status")


def _say(line: str) -> None:
    print(line, flush=True)


def main(argv=None) -> int:
    """Run the C{pygmy} command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command in CLIENT_COMMANDS:
        from pygmy.cli import client

        return client.main(args)
    if args.command == "load":
        from pygmy.cli import load

        return load.main(args)
    if args.command == "import":
        from pygmy.cli import importer

        return importer.main(args)
    if args.command == "evaluate":
        from pygmy.cli import evaluate

        return evaluate.main(args, (sys.argv[1:] if argv is None else list(argv))[1:])
    try:
        config = configuration.load(args.config)
    except configuration.ConfigError as e:
        print(f"pygmy {args.command}: {e}", file=sys.stderr)
        return 2
    if args.command == "chaos":
        from pygmy.cli import chaos

        return chaos.main(config, args.duration, args.clients, args.seed, echo=_say, frontend=args.frontend)

    from pygmy.cli import launcher

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
