"""
Server endpoint strings in C{config.ini}'s C{listen} keys: checked without
listening, with their relative paths made absolute.
"""

from __future__ import annotations

import re
from pathlib import Path

from twisted.internet.endpoints import serverFromString

#: The arguments of a listen string that name files, by endpoint type
#: (C{None}: the first positional argument); a relative one is taken from
#: the config file's directory.
_PATH_ARGUMENTS = {
    "unix": (None, "address"),
    "ssl": ("privateKey", "certKey", "extraCertChain", "dhParameters"),
}


class _NoReactor:
    """
    Stands in for the reactor while a listen string is checked: the
    endpoint built from it is never listened on.
    """


def check_endpoint(description: str) -> str | None:
    """
    Why C{description} is not a Twisted server endpoint string, or C{None}
    if it is, as far as this process can tell: a file it names (a TLS key)
    or a descriptor systemd passes need only be there for the process that
    listens, which reports them when it starts (L{pygmy.net.listener.Listener}).
    """
    try:
        serverFromString(_NoReactor(), description)
    except (OSError, IndexError, KeyError):
        return None
    except Exception as e:
        return (str(e) or type(e).__name__).splitlines()[0]
    return None


_KEYWORD = re.compile(r"((?:[^\\=]|\\.)*)=(.*)", re.DOTALL)


def absolute_paths(description: str, directory: Path) -> str:
    """
    C{description} with each relative path it names (a UNIX socket, TLS key
    and certificate files) taken from C{directory}, so a listen string means
    the same whatever directory the process runs in.
    """
    parts = _split(description)
    names = _PATH_ARGUMENTS.get(_unescape(parts[0]), ())
    positional = 0
    for i, part in enumerate(parts[1:], 1):
        keyword = _KEYWORD.fullmatch(part)
        if keyword is None:
            name, prefix, value = (None if positional == 0 else "", "", part)
            positional += 1
        else:
            name, prefix, value = _unescape(keyword[1]), keyword[1] + "=", keyword[2]
        if name in names and value and not Path(_unescape(value)).is_absolute():
            parts[i] = prefix + _escape(str(directory / _unescape(value)))
    return ":".join(parts)


def _split(description: str) -> list[str]:
    """The arguments of C{description} between unescaped colons, still escaped."""
    parts, current, chars = [], "", iter(description)
    for char in chars:
        if char == "\\":
            current += char + next(chars, "")
        elif char == ":":
            parts.append(current)
            current = ""
        else:
            current += char
    return parts + [current]


def _unescape(text: str) -> str:
    """Undo the backslash escapes of an endpoint string's argument."""
    return re.sub(r"\\(.)", r"\1", text, flags=re.DOTALL)


def _escape(text: str) -> str:
    """Escape C{text} as one argument of an endpoint string."""
    return re.sub(r"([\\:=])", r"\\\1", text)
