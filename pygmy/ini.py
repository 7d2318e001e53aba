"""
Typed access to the sections of an ini file, with errors that name the
file, the section and the key in one line (L{ConfigError}): what
L{pygmy.config} reads C{config.ini} with.
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path
from urllib.parse import urlsplit

_INTEGER = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]*)?|-?\.[0-9]+")


class ConfigError(Exception):
    """
    The configuration file is missing, unreadable or invalid.
    """


def section_of(parser: configparser.ConfigParser, path: Path, name: str) -> Section:
    """The section C{name}, which must be there."""
    if not parser.has_section(name):
        raise ConfigError(f"{path}: section [{name}] is missing")
    return Section(path, name, parser[name])


class Section:
    """
    Typed access to one section, with errors that name the section and key.
    """

    def __init__(self, path: Path, name: str, items: configparser.SectionProxy):
        self.path = path
        self.name = name
        self._items = items

    def error(self, key: str, message: str) -> ConfigError:
        """The error of C{key} in this section: C{file: [section] key: message}."""
        return ConfigError(f"{self.path}: [{self.name}] {key}: {message}")

    def text(self, key: str, default: str | None = None) -> str:
        """The stripped text of C{key} (or C{default}); missing or empty is an error."""
        value = self._items.get(key, default)
        if value is None:
            raise self.error(key, "missing")
        value = value.strip()
        if not value:
            raise self.error(key, "empty")
        return value

    def optional(self, key: str) -> str | None:
        """The text of C{key}, or C{None} if the section does not have it."""
        return self.text(key) if key in self._items else None

    def boolean(self, key: str, default: bool) -> bool:
        """C{key} as true/yes/on/1 or false/no/off/0."""
        raw = self.text(key, "true" if default else "false").lower()
        if raw in ("true", "yes", "on", "1"):
            return True
        if raw in ("false", "no", "off", "0"):
            return False
        raise self.error(key, f"{raw!r} is not true or false")

    def port(self, key: str) -> int:
        """C{key} as a TCP port (required)."""
        value = self.number(key, int, None)
        if not 1 <= value <= 65535:
            raise self.error(key, f"{value} is not a TCP port (1-65535)")
        return value

    def number(self, key, kind, default, minimum=None):
        """C{key} as a plain decimal C{kind} (C{int} or C{float}), at least C{minimum}."""
        raw = self.text(key, None if default is None else str(default))
        pattern = _INTEGER if kind is int else _DECIMAL
        if not pattern.fullmatch(raw):
            noun = "a whole number" if kind is int else "a number"
            raise self.error(key, f"{raw!r} is not {noun}")
        value = kind(raw)
        if minimum is not None and value < minimum:
            raise self.error(key, f"{raw} is below {minimum}")
        return value

    def positive(self, key: str, default: float) -> float:
        """A number of seconds above zero (a C{minimum} would let C{0} through)."""
        value = self.number(key, float, default)
        if value <= 0:
            raise self.error(key, f"{value:g} must be more than 0 seconds")
        return value

    def urls(self, key: str) -> tuple[str, ...]:
        """C{key} as comma-separated C{http(s)://host[:port]} URLs, without a trailing C{/}."""
        urls = tuple(url.strip().rstrip("/") for url in self.text(key).split(","))
        for url in urls:
            why = _bad_url(url)
            if why:
                raise self.error(key, f"{url!r} is not an http(s) URL of a host: {why}")
        return urls


def _bad_url(url: str) -> str | None:
    """Why C{url} is not C{http(s)://host[:port]}, or C{None}."""
    if not url:
        return "empty"
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return "bad port"
    if parts.scheme not in ("http", "https"):
        return "not http:// or https://"
    if not parts.hostname:
        return "no host"
    if parts.path or parts.query or parts.fragment or parts.username or port == 0:
        return "only scheme, host and port (the client adds /v3/...)"
    return None
