"""
Files replaced atomically and durably.

After a crash a file replaced by L{replace_durably} holds either its old
contents or the new ones, and once the call returns the new contents
survive a power loss: the new file is synced, renamed over the old one,
and the rename itself is synced (by syncing the directory).  Blocking: call
it in a thread, never on the reactor thread.
"""

from __future__ import annotations

import os
from pathlib import Path


def replace_durably(source: Path, target: Path) -> None:
    """Sync C{source}, rename it over C{target}, and sync the rename."""
    with open(source, "rb") as file:
        os.fsync(file.fileno())
    os.replace(source, target)
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_durably(path: Path, body: bytes) -> None:
    """
    Replace C{path} with C{body} through a temporary file beside it (removed
    again if anything fails).

    @raise OSError: if it could not be written; C{path} is then unchanged.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as f:
            f.write(body)
        replace_durably(temporary, path)
    except OSError:
        try:
            temporary.unlink()
        except OSError:
            pass
        raise
