"""
The options of C{pygmy evaluate} (L{pygmy.cli.evaluate}): how long each
part runs (C{--quick} or the full budget, any option overriding it), where
the report goes, and their checks.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from pygmy.cli import load
from pygmy.cli.client import UsageError

#: Concurrent clients of question 1.
CLIENTS = (1, 3, 5, 9)
#: The ways question 1 runs each step: the cache, reads that bypass it, no cache.
MODES = ("on", "bypass", "off")
#: Seconds into a fault step when the kill comes.
KILL_AT = {"quick": 0.5, "full": 1.0}
#: Per run length: seconds per step of question 1, requests per measurement
#: of question 2, seconds a killed replica stays down, seconds of load after
#: the restart, concurrent clients during the faults.
BUDGETS = {
    "quick": {"step": 0.6, "requests": 20, "down": 1.0, "tail": 2.5, "fault_clients": 3},
    "full": {"step": 6.0, "requests": 200, "down": 3.0, "tail": 5.0, "fault_clients": 4},
}


@dataclass(frozen=True)
class Settings:
    """One run of C{pygmy evaluate}, checked (see L{settings})."""

    config: str
    out: Path
    json: str | None = None  # a file, "-" for stdout, or None
    quick: bool = False
    clients: tuple = CLIENTS
    step: float = BUDGETS["full"]["step"]
    requests: int = BUDGETS["full"]["requests"]
    down: float = BUDGETS["full"]["down"]
    tail: float = BUDGETS["full"]["tail"]
    fault_clients: int = BUDGETS["full"]["fault_clients"]
    mix: dict = field(default_factory=lambda: load.parse_mix(load.DEFAULT_MIX))
    seed: int = 1
    timeout: float = 10.0
    note: str = ""
    argv: tuple = ()

    @property
    def kill_at(self) -> float:
        """Seconds into a fault step when the kill comes."""
        return KILL_AT["quick" if self.quick else "full"]


def add_arguments(parser) -> None:
    """The options of C{pygmy evaluate} (checked by L{settings})."""
    parser.add_argument("--config", "-c", default="config.ini", help="the cluster's config.ini (default: %(default)s)")
    parser.add_argument("--out", "-o", required=True, metavar="DIR", help="where report.md and its PNGs go")
    parser.add_argument(
        "--json",
        nargs="?",
        const="",
        default=None,
        metavar="FILE",
        help="also write the figures as JSON: to FILE, to DIR/report.json without one, or to stdout with -",
    )
    parser.add_argument("--quick", action="store_true", help="short steps (well under a minute): a smoke test")
    parser.add_argument("--clients", default=None, metavar="N,N,...", help="clients of question 1 (default: 1,3,5,9)")
    parser.add_argument("--step", type=float, default=None, metavar="S", help="seconds per step of question 1")
    parser.add_argument("--requests", type=int, default=None, metavar="N", help="requests per figure of question 2")
    parser.add_argument("--down", type=float, default=None, metavar="S", help="seconds a killed replica stays down")
    parser.add_argument("--mix", default=load.DEFAULT_MIX, metavar="OP=W,...", help="weights (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=None, metavar="N", help="random seed (default: a new one)")
    parser.add_argument("--note", default="", metavar="TEXT", help="a sentence for the report (the machine's state)")


def parse_clients(text: str) -> tuple[int, ...]:
    """C{"1,3,5,9"} -> C{(1, 3, 5, 9)}: distinct whole numbers of 1 or more, sorted."""
    try:
        found = sorted({int(part) for part in text.split(",")})
    except ValueError:
        raise UsageError(f"--clients {text}: not a list of whole numbers such as 1,3,5,9") from None
    if found[0] < 1:
        raise UsageError(f"--clients {text}: every number must be 1 or more")
    return tuple(found)


def settings(args, argv=()) -> Settings:
    """
    The L{Settings} of parsed C{args}: the C{--quick} or full budget, with
    any option given overriding it.

    @raise UsageError: for a value out of range or an unusable C{--out}.
    """
    budget = dict(BUDGETS["quick" if args.quick else "full"])
    for name, minimum in (("step", 0.0), ("down", 0.0)):
        value = getattr(args, name)
        if value is not None:
            if not value > minimum:
                raise UsageError(f"--{name} {value:g}: must be a number of seconds above 0")
            budget[name] = value
    if args.requests is not None:
        if args.requests < 3:
            raise UsageError(f"--requests {args.requests}: must be 3 or more")
        budget["requests"] = args.requests
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {args.out}: exists and is not a directory")
    if args.json not in (None, "", "-") and not Path(args.json).resolve().parent.is_dir():
        raise UsageError(f"--json {args.json}: no such directory")
    try:
        mix = load.parse_mix(args.mix)
    except ValueError as e:
        raise UsageError(f"--mix: {e}") from None
    return Settings(
        config=args.config,
        out=out,
        json=None if args.json is None else args.json or str(out / "report.json"),
        quick=args.quick,
        clients=CLIENTS if args.clients is None else parse_clients(args.clients),
        mix=mix,
        seed=random.randrange(1, 2**31) if args.seed is None else args.seed,
        note=args.note,
        argv=tuple(argv),
        **budget,
    )
