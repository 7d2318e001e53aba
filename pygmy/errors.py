"""
Domain errors shared by every Pygmy process.

Logic raises these; the HTTP layer (L{pygmy.net.web}) maps each to its status
code and the JSON body C{{"error": {"code": ..., "message": ...}}}.  The
client side (L{pygmy.net.remote}) turns such a body back into the same
exception, so an error keeps its meaning as it crosses processes.
"""


class PygmyError(Exception):
    """
    A failure with a machine-readable code, an HTTP status and a message.
    """

    code = "internal"
    status = 500

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def as_json(self) -> dict:
        """The JSON error body for this error."""
        return {"error": {"code": self.code, "message": self.message}}


class BadRequest(PygmyError):
    """The request is malformed: a bad id, body or parameter."""

    code = "bad_request"
    status = 400


class Unauthorized(PygmyError):
    """The request lacks the shared secret."""

    code = "unauthorized"
    status = 401


class NotFound(PygmyError):
    """No such item, order or path."""

    code = "not_found"
    status = 404


class OutOfStock(PygmyError):
    """The item exists but no copy is left."""

    code = "out_of_stock"
    status = 409


class Conflict(PygmyError):
    """The request contradicts an earlier one (e.g. a reused idempotency key)."""

    code = "conflict"
    status = 409


class PayloadTooLarge(PygmyError):
    """The request body is larger than the server accepts."""

    code = "payload_too_large"
    status = 413


class Unavailable(PygmyError):
    """
    The service cannot answer now (no live replica, a replica not ready).

    @ivar retry_after: seconds the client should wait before trying again.
    """

    code = "unavailable"
    status = 503

    def __init__(self, message: str, retry_after: int = 1):
        super().__init__(message)
        self.retry_after = retry_after


class NotPrimary(Unavailable):
    """A write reached a replica that is not its service's primary (any more)."""

    code = "not_primary"


class StaleView(Conflict):
    """A replication request carries an older view than the receiver's."""

    code = "stale_view"


class Diverged(Conflict):
    """A backup's log holds entries the primary never acknowledged."""

    code = "diverged"


ERRORS_BY_CODE = {
    cls.code: cls
    for cls in (
        BadRequest,
        Unauthorized,
        NotFound,
        OutOfStock,
        Conflict,
        PayloadTooLarge,
        Unavailable,
        NotPrimary,
        StaleView,
        Diverged,
    )
}
