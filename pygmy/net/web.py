"""
HTTP pieces shared by the Klein apps of every role.

- L{json_response} writes a JSON body with its content type;
- L{install_error_handlers} maps every exception to a JSON error, in one
  place, most specific first, so no request ever sees a traceback;
- L{JSONRequest} refuses bodies over the site's limit (the public
  API's L{MAX_BODY} unless the site says otherwise) with 413 before
  buffering them;
- L{read_json_body} and L{require_secret} validate what a route gets.
"""

from __future__ import annotations

import hmac
import json
import time
from urllib.parse import unquote_to_bytes

from twisted.logger import Logger
from twisted.web import server
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import RequestRedirect

from pygmy.errors import BadRequest, PayloadTooLarge, PygmyError, Unauthorized, Unavailable

MAX_BODY = 64 * 1024
MAX_JSON_DEPTH = 8

log = Logger()


def json_bytes(obj) -> bytes:
    """Serialise C{obj} compactly as UTF-8 JSON."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def json_response(request, obj, code: int = 200) -> bytes:
    """
    Set status and headers on C{request}; return C{obj} as JSON bytes.
    """
    request.setResponseCode(code)
    return json_body(request, json_bytes(obj))


def json_body(request, body: bytes) -> bytes:
    """
    Set the content type and length of an already serialised JSON C{body}
    and return it.  With a length, the reply goes out in one write instead
    of chunks (whose last one would wait on Nagle's algorithm).
    """
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"content-length", b"%d" % len(body))
    return body


def error_response(request, error: PygmyError) -> bytes:
    """Render a domain error as its status and JSON body."""
    if isinstance(error, Unavailable):
        request.setHeader(b"retry-after", str(error.retry_after).encode("ascii"))
    return json_response(request, error.as_json(), error.status)


def _on_pygmy_error(instance, request, failure):
    return error_response(request, failure.value)


def _on_http_exception(instance, request, failure):
    error: HTTPException = failure.value
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        request.setHeader(b"allow", ", ".join(sorted(error.valid_methods)).encode())
    message = error.description or error.name
    if isinstance(error, RequestRedirect):
        request.setHeader(b"location", error.new_url.encode("utf-8"))
        message = f"This resource is at {error.new_url}."
    codes = {404: "not_found", 405: "method_not_allowed"}
    body = {
        "error": {
            "code": codes.get(error.code, error.name.lower().replace(" ", "_")),
            "message": message,
        }
    }
    return json_response(request, body, error.code or 500)


def _on_anything_else(instance, request, failure):
    log.failure(
        "Unhandled error on {method} {uri}",
        failure,
        method=request.method.decode("ascii", "replace"),
        uri=request.uri.decode("ascii", "replace"),
    )
    body = {"error": {"code": "internal", "message": "Internal server error."}}
    return json_response(request, body, 500)


def install_error_handlers(app) -> None:
    """
    Register the JSON error handlers on a Klein C{app}.

    Call once, after the app's routes, in the class body.
    """
    app.handle_errors(PygmyError)(_on_pygmy_error)
    app.handle_errors(HTTPException)(_on_http_exception)
    app.handle_errors(Exception)(_on_anything_else)


def read_json_body(request) -> dict:
    """
    Parse the request body as a JSON object.

    @raise BadRequest: if it is not valid UTF-8 JSON of a single object, or
        nests deeper than L{MAX_JSON_DEPTH}.
    """
    raw = request.content.read() if request.content is not None else b""
    limit = body_limit(request)
    if len(raw) > limit:
        raise PayloadTooLarge(f"Request body is over {limit} bytes.")
    if not raw.strip():
        raise BadRequest("Request body must be a JSON object.")
    try:
        body = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise BadRequest("Request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object.")
    if _depth(body) > MAX_JSON_DEPTH:
        raise BadRequest("Request body nests too deeply.")
    return body


def body_limit(request) -> int:
    """The most bytes of body the site of C{request} takes."""
    site = getattr(getattr(request, "channel", None), "site", None)
    return getattr(site, "max_body", MAX_BODY)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _depth(value, level: int = 1) -> int:
    if level > MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level)
    return level


def bearer_matches(request, secret: str) -> bool:
    """
    Whether C{request} carries C{Authorization: Bearer <secret>}.

    The comparison takes the same time whatever the mismatch.
    """
    header = request.getHeader(b"authorization") or b""
    scheme, _, token = header.partition(b" ")
    expected = secret.encode("utf-8")
    return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), expected)


def require_secret(request, secret: str) -> None:
    """
    @raise Unauthorized: unless C{request} carries the shared secret.
    """
    if not bearer_matches(request, secret):
        request.setHeader(b"www-authenticate", b'Bearer realm="pygmy"')
        raise Unauthorized("This route needs 'Authorization: Bearer <secret>'.")


class JSONRequest(server.Request):
    """
    A request that answers 413 to bodies over its site's limit without
    buffering them, and whose default content type is JSON.
    """

    defaultContentType = b"application/json"
    _too_large = False
    _started = None

    def __init__(self, channel, *args, **kwargs):
        super().__init__(channel, *args, **kwargs)
        transport = getattr(channel, "transport", None)
        if transport is not None and not getattr(channel, "_pygmy_nodelay", False):
            # Replies are single writes; no reason to wait for ACKs.
            channel._pygmy_nodelay = True
            try:
                transport.setTcpNoDelay(True)
            except (AttributeError, OSError):
                pass

    def gotLength(self, length):
        """Note a declared body over the limit, and buffer none of it."""
        if length is not None and length > body_limit(self):
            self._too_large = True
            length = 0
        super().gotLength(length)

    def handleContentChunk(self, data):
        """Buffer C{data}, unless the body has grown over the limit."""
        if self._too_large:
            return
        if self.content.tell() + len(data) > body_limit(self):
            self._too_large = True
            self.content.seek(0)
            self.content.truncate()
            return
        super().handleContentChunk(data)

    def process(self):
        """Answer 413 or 400 before routing where the request calls for it; else route it."""
        self._started = time.perf_counter()
        if self._too_large:
            self.setHeader(b"connection", b"close")
            return self._answer_early(PayloadTooLarge(f"Request body is over {body_limit(self)} bytes."))
        try:
            unquote_to_bytes(self.path).decode("utf-8")
        except UnicodeDecodeError:
            # Klein would answer this in plain text and log an error.
            return self._answer_early(BadRequest("The URL is not valid UTF-8."))
        super().process()

    def _answer_early(self, error: PygmyError) -> None:
        """Answer C{error} without routing the request."""
        self.site = self.channel.site
        self.write(error_response(self, error))
        self.finish()

    def finish(self):
        """Count the answer in the metrics, then finish as usual."""
        metrics = getattr(self.channel.site, "metrics", None) if self.channel else None
        if metrics is not None and not self.finished and self._started is not None:
            metrics.observe(self.path, self.method, self.code, time.perf_counter() - self._started)
        return super().finish()


def make_site(
    resource, access_log: bool = False, metrics=None, idle_timeout: float = 60.0, max_body: int = MAX_BODY
) -> server.Site:
    """
    A L{Site<twisted.web.server.Site>} for C{resource} that makes
    L{JSONRequest} requests and never shows a traceback to a client.

    @param access_log: log a line per request.  Off by default: on a busy
        server it costs more than answering a cached read; request counts
        per route and status are in C{metrics} either way.
    @param metrics: a L{pygmy.process.metrics.HTTPMetrics} counting every answer.
    @param idle_timeout: seconds after which an idle connection is closed.
    @param max_body: the largest request body taken; larger ones get 413.
    """
    # Every route speaks JSON: no form parsing (Twisted would parse the
    # Content-Type of every POST with the email package to look for forms).
    site = server.Site(resource, requestFactory=JSONRequest, timeout=idle_timeout, parsePOSTFormSubmission=False)
    site.displayTracebacks = False
    site.metrics = metrics
    site.max_body = max_body
    if not access_log:
        site.log = _no_access_log
    return site


def _no_access_log(request) -> None:
    """Stand-in for C{Site.log} when access logging is off."""
