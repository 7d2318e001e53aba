"""
The front end in a browser: the store (C{GET /}), the dashboard of the
cluster (C{GET /dashboard}), their scripts and style (C{GET /static/<name>}),
and the timeline the dashboard polls (C{GET /events}).

The pages are plain HTML, CSS and a little JavaScript shipped as package
data (C{pygmy/frontend/static/}, read through L{importlib.resources}): no
build step, nothing from another origin, so they work on a closed network.
Every page and file is served with its content type, a
C{Content-Security-Policy} that allows only this origin (no inline script,
no other host), and C{Cache-Control: no-cache} with an C{ETag}, so a browser
asks again each time and an unchanged file costs a 304.  The scripts put
every value into the page as text (C{textContent}), never as HTML.

L{install_pages} adds the routes to the front end's class-level Klein app,
as L{install_error_handlers<pygmy.net.web.install_error_handlers>} adds its
handlers.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from importlib.resources import files

from twisted.web.http import CACHED

from pygmy.errors import NotFound
from pygmy.net.validate import parse_page
from pygmy.net.web import json_response

#: Only this origin, for everything; no inline script or style, no frames.
CONTENT_SECURITY_POLICY = (
    b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    b"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

HTML = b"text/html; charset=utf-8"

#: The files of C{static/} that are served, and their content types.
TYPES = {
    "index.html": HTML,
    "dashboard.html": HTML,
    "common.js": b"text/javascript; charset=utf-8",
    "store.js": b"text/javascript; charset=utf-8",
    "dashboard.js": b"text/javascript; charset=utf-8",
    "style.css": b"text/css; charset=utf-8",
    "icon.svg": b"image/svg+xml",
}

#: What C{/static/<name>} serves: the files that are not pages.
ASSETS = frozenset(name for name, kind in TYPES.items() if kind != HTML)


@dataclass(frozen=True)
class StaticFile:
    """One file of C{static/}: its bytes, content type and entity tag."""

    body: bytes
    content_type: bytes
    etag: bytes


@functools.cache
def static_file(name: str) -> StaticFile:
    """
    The file C{name} of the package's C{static/} folder, read once.

    @raise KeyError: for a name not in L{TYPES}.
    """
    kind = TYPES[name]
    body = (files("pygmy.frontend") / "static" / name).read_bytes()
    return StaticFile(body, kind, b'"' + hashlib.sha256(body).hexdigest()[:32].encode("ascii") + b'"')


def serve(request, name: str) -> bytes:
    """
    Answer C{request} with the static file C{name}: its type, the security
    headers, C{no-cache} with an C{ETag}, and 304 without a body when the
    browser's copy is current.
    """
    page = static_file(name)
    request.setHeader(b"content-type", page.content_type)
    request.setHeader(b"content-security-policy", CONTENT_SECURITY_POLICY)
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"referrer-policy", b"no-referrer")
    request.setHeader(b"cache-control", b"no-cache")
    if request.setETag(page.etag) is CACHED:
        return b""
    request.setHeader(b"content-length", b"%d" % len(page.body))
    return page.body


def install_pages(app) -> None:
    """
    Add the routes of the pages, their files and C{/events} to C{app}, the
    class-level Klein app of L{FrontendApp<pygmy.frontend.app.FrontendApp>}
    (whose instance has the C{monitor} and its event ring).
    """

    @app.route("/", methods=["GET"])
    def store_page(self, request):
        """C{GET /}: the store."""
        return serve(request, "index.html")

    @app.route("/dashboard", methods=["GET"])
    def dashboard_page(self, request):
        """C{GET /dashboard}: the cluster, live."""
        return serve(request, "dashboard.html")

    @app.route("/static/<name>", methods=["GET"])
    def asset(self, request, name):
        """C{GET /static/<name>}: a script, the style or the icon of the pages."""
        if name not in ASSETS:
            raise NotFound(f"No file {name!r} here.")
        return serve(request, name)

    @app.route("/events", methods=["GET"])
    def events(self, request):
        """
        C{GET /events?after=N&limit=M}: the timeline's events with an id
        above C{after}, oldest first, at most C{limit}.
        """
        after, limit = parse_page(request.args)
        ring = self.monitor.events
        found, following = ring.after(after, limit)
        request.setHeader(b"cache-control", b"no-store")
        return json_response(request, {"events": found, "next": following, "run": ring.run})
