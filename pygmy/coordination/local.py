"""
The views of a lone front end, in one JSON file of its C{data_dir}.

Each store writes the whole file atomically: a temporary file in the same
directory, C{fsync}, C{rename} over the old one, then C{fsync} of the
directory, so that after a crash the file holds either the old views or the
new ones, and a view that was reported stored survives power loss.  The
writes run in the reactor's thread pool, one at a time; stores that arrive
while one is being written are written together by the next.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from pygmy.coordination.store import StoredView, ViewStoreError
from pygmy.files import write_durably

log = Logger()

#: The file's name inside C{data_dir}.
FILENAME = "frontend-views.json"
#: The format of the file, so that a later one can be told apart.
FORMAT = 1


class FileViewStore:
    """
    L{ViewStore<pygmy.coordination.store.ViewStore>} on a local file.

    @param path: the file.
    @param reactor: runs the writes in its thread pool.
    """

    def __init__(self, path: Path, reactor):
        self.path = Path(path)
        self._reactor = reactor
        self._views: dict[str, StoredView] = {}
        self._pending: list[tuple[str, StoredView, Deferred]] = []
        self._writing = False
        self._watchers: list[Callable[[str, StoredView], None]] = []

    def load(self) -> Deferred[dict[str, StoredView]]:
        """The views in the file; none if there is no file yet."""

        def loaded(views):
            self._views = dict(views)
            return views

        return self._in_thread(read_views, self.path).addCallback(loaded)

    def store(self, service: str, view: StoredView) -> Deferred[None]:
        """Store C{view} of C{service}; fires once the file holds it on disk."""
        done = Deferred()
        self._pending.append((service, view, done))
        self._write_next()
        return done

    def watch(self, callback: Callable[[str, StoredView], None]) -> None:
        """A lone front end is the only writer: C{callback} sees its own stores."""
        self._watchers.append(callback)

    def _write_next(self) -> None:
        if self._writing or not self._pending:
            return
        batch, self._pending = self._pending, []
        views = dict(self._views)
        for service, view, _ in batch:
            current = views.get(service)
            if current is None or view.number >= current.number:
                views[service] = view
        self._writing = True
        d = self._in_thread(write_views, self.path, views)
        d.addCallbacks(self._written, self._failed, callbackArgs=(views, batch), errbackArgs=(batch,))
        d.addErrback(lambda f: log.failure("views store: unexpected", f))

    def _written(self, _, views, batch) -> None:
        self._writing = False
        self._views = views
        for service, view, done in batch:
            for watcher in self._watchers:
                try:
                    watcher(service, view)
                except Exception:
                    log.failure("views store: a watcher failed")
            done.callback(None)
        self._write_next()

    def _failed(self, failure, batch) -> None:
        self._writing = False
        error = failure.value if failure.check(ViewStoreError) else ViewStoreError(str(failure.value))
        log.error("views store: {path}: {error}", path=str(self.path), error=str(error))
        for _, _, done in batch:
            done.errback(error)
        self._write_next()

    def _in_thread(self, f, *args) -> Deferred:
        return deferToThreadPool(self._reactor, self._reactor.getThreadPool(), f, *args)


def read_views(path: Path) -> dict[str, StoredView]:
    """
    The views stored in C{path} (blocking: run it in a thread).

    @raise ViewStoreError: if the file cannot be read or is not a views file.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise ViewStoreError(f"{path}: {e.strerror or e}") from e
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ViewStoreError(f"{path}: not JSON ({e})") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("views"), dict):
        raise ViewStoreError(f"{path}: not a views file of format {FORMAT}")
    return {service: StoredView.from_json(view) for service, view in data["views"].items()}


def write_views(path: Path, views: dict[str, StoredView]) -> None:
    """
    Replace C{path} with C{views}, atomically and durably (blocking: run it
    in a thread).

    @raise ViewStoreError: if it could not be written.
    """
    body = json.dumps(
        {"format": FORMAT, "views": {service: view.to_json() for service, view in sorted(views.items())}},
        indent=1,
    ).encode("utf-8")
    try:
        write_durably(path, body)
    except OSError as e:
        raise ViewStoreError(f"{path}: {e.strerror or e}") from e
