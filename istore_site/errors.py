"""
The one error type of the API.

Anything below the views raises ``ApiError`` (or a subclass) with the HTTP
status, a short machine-readable code and a detail that tells the user what
was wrong and how to fix it; ``objects.views`` turns it into the JSON body of
§9, ``{"error": code, "detail": detail}``.
"""


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
