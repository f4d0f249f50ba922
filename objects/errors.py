"""
The one error type of the API, at the bottom of the web layer: it imports
nothing of istore but ``processing.errors``, and everything above may raise it.

Anything below the views raises ``ApiError`` (or a subclass) with the HTTP
status, a short machine-readable code and a detail that tells the user what
was wrong and how to fix it; ``objects.responses.error_response`` turns it
into the JSON body ``{"error": code, "detail": detail}``.

``processing`` knows nothing of HTTP and raises its own kinds of error
(``processing.errors``); ``translated`` maps them to statuses where the web
layer calls into it.
"""
from contextlib import contextmanager

from processing import errors as processing


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, detail, *, status=None, code=None, headers=None):
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def as_dict(self):
        return {"error": self.code, "detail": self.detail}


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class PayloadTooLarge(ApiError):
    status, code = 413, "too_large"


class UnsupportedMedia(ApiError):
    status, code = 415, "unsupported_media"


class Unprocessable(ApiError):
    status, code = 422, "unprocessable"


class BadGateway(ApiError):
    status, code = 502, "bad_gateway"


class ServiceUnavailable(ApiError):
    status, code = 503, "unavailable"


class GatewayTimeout(ApiError):
    status, code = 504, "gateway_timeout"


class LoopDetected(ApiError):
    status, code = 508, "loop_detected"


# The status of each kind of processing failure (processing.errors).
PROCESSING_STATUS = {
    processing.BadParameter: 400,
    processing.TooLarge: 413,
    processing.UnsupportedInput: 415,
    processing.Unprocessable: 422,
    processing.ToolUnavailable: 503,
    processing.TimedOut: 504,
    processing.ProcessingError: 422,
}


@contextmanager
def translated():
    """Raise a ``processing.errors.ProcessingError`` from the block as the
    ``ApiError`` of its status, keeping its code and detail."""
    try:
        yield
    except processing.ProcessingError as exc:
        status = next(code for kind, code in PROCESSING_STATUS.items() if isinstance(exc, kind))
        raise ApiError(exc.detail, status=status, code=exc.code) from exc
