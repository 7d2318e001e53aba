"""
The C{pygmy} command: the client, load, up/down and chaos (operator tools).

No server module imports this package; it talks to the daemons over HTTP and
starts them as processes.  The entry point is L{main}.
"""

from pygmy.cli.command import build_parser, main

__all__ = ["build_parser", "main"]
