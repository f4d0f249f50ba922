"""
What can go wrong while processing pixels or video, without HTTP.

``processing`` knows nothing of requests, so its errors carry no status: each
class names a kind of failure, with a ``detail`` that tells the user what was
wrong and a short ``code``. The web layer maps the kinds to statuses in one
place (``objects.errors.translated``): a bad parameter is 400, an input that
is too large 413, an input that is not an image or video 415, a request that
cannot be met for this input (``sec`` past the end) 422, a missing tool 503,
and a run past its deadline 504.
"""


class ProcessingError(Exception):
    code = "processing_failed"

    def __init__(self, detail, *, code=None):
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code


class BadParameter(ProcessingError):
    """A parameter is missing, unparsable or out of its documented range."""

    code = "bad_request"


class TooLarge(ProcessingError):
    """The input (or the output it would make) exceeds a pixel or size limit."""

    code = "too_large"


class UnsupportedInput(ProcessingError):
    """The input is not an image (or video) this server can read or write."""

    code = "unsupported_media"


class Unprocessable(ProcessingError):
    """The input is readable but cannot give what was asked (a frame past the end)."""

    code = "unprocessable"


class ToolUnavailable(ProcessingError):
    """A tool processing needs (ffmpeg, a codec) is missing or broken here."""

    code = "unavailable"


class TimedOut(ProcessingError):
    """The work ran past its deadline and was stopped."""

    code = "gateway_timeout"
