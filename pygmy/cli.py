"""
The ``pygmy`` command.  For now only ``pygmy --version``; the client
commands (search, lookup, buy, load, up, down, chaos) build on this entry
point.
"""

from __future__ import annotations

import argparse
import sys

from pygmy import __version__


def main(argv=None) -> int:
    """Run the ``pygmy`` command line; return the exit status."""
    parser = argparse.ArgumentParser(prog="pygmy", description=__doc__.strip().splitlines()[0])
    parser.add_argument("--version", action="version", version=f"pygmy {__version__}")
    parser.parse_args(argv)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
