"""
HTTP responses for the API: JSON bodies and errors, and content with
ETag / Last-Modified / 304 / Range / HEAD, and headers that keep served bytes
from running script on istore's origin.
"""
import re
from email.utils import format_datetime

from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.utils.cache import get_conditional_response
from django.utils.http import parse_http_date_safe

from .errors import ApiError

from . import listing

RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
# Types a browser would render as a document (and so run script from).
ACTIVE_TYPES = ("text/html", "application/xhtml", "image/svg", "text/xml", "application/xml", "text/javascript",
                "application/javascript")
STREAM_CHUNK = 256 * 1024


def json_response(data, status=200, headers=None):
    body = listing.dumps(data).encode("utf-8")
    response = HttpResponse(body, status=status, content_type="application/json")
    response["Content-Length"] = str(len(body))
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def error_response(error: ApiError):
    return json_response(error.as_dict(), status=error.status, headers=error.headers)


def error(status, code, detail, headers=None):
    return json_response({"error": code, "detail": detail}, status=status, headers=headers)


def quote_etag(etag):
    return etag if etag.startswith(('"', 'W/"')) else f'"{etag}"'


def is_active_type(content_type):
    """True for types a browser may render as a document (and so run script from).

    A header may list several types (``text/plain,text/html``) and browsers
    differ in which one they take, so any active part makes it active.
    """
    for part in content_type.lower().split(","):
        mime = part.split(";", 1)[0].strip()
        if mime.startswith(ACTIVE_TYPES) or mime.endswith(("+xml", "/xsl", "/xslt")):
            return True
    return False


def _safe_headers(response, content_type):
    # Stored bytes never run script on istore's origin: every content response
    # is sandboxed (an image is unaffected), and document types are downloads.
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox"
    if is_active_type(content_type):
        response["Content-Disposition"] = "attachment"


def _parse_range(header, size):
    """``(start, end)`` inclusive for one satisfiable range, ``None`` to serve
    everything (no/other/multiple ranges), or ``"unsatisfiable"``."""
    match = RANGE_RE.match(header.strip())
    if not match:
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":
        length = int(last)
        if length == 0:
            return "unsatisfiable"
        return max(size - length, 0), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or end < start:
        return "unsatisfiable"
    return start, min(end, size - 1)


def _read_span(handle, start, length):
    try:
        handle.seek(start)
        while length > 0:
            chunk = handle.read(min(STREAM_CHUNK, length))
            if not chunk:
                break
            length -= len(chunk)
            yield chunk
    finally:
        handle.close()


def content_response(request, opener, *, size, content_type, etag=None, last_modified=None,
                     cache_control="public, no-cache", allow_range=True):
    """Serve bytes from ``opener()`` (a binary file object) with HTTP semantics.

    ``last_modified`` is a timezone-aware datetime or None. Conditional
    requests give 304 (Django's own rules), one ``bytes=`` range gives 206.
    """
    headers = {"Cache-Control": cache_control}
    if allow_range:
        headers["Accept-Ranges"] = "bytes"
    if etag:
        headers["ETag"] = quote_etag(etag)
    if last_modified is not None:
        headers["Last-Modified"] = format_datetime(last_modified.replace(microsecond=0), usegmt=True)
    probe = HttpResponse()
    for name, value in headers.items():
        probe[name] = value
    conditional = get_conditional_response(
        request,
        etag=headers.get("ETag"),
        last_modified=parse_http_date_safe(headers["Last-Modified"]) if "Last-Modified" in headers else None,
        response=probe,
    )
    if conditional is not probe:
        return conditional

    span = None
    range_header = request.META.get("HTTP_RANGE")
    if allow_range and range_header and _if_range_matches(request, headers):
        span = _parse_range(range_header, size)
        if span == "unsatisfiable":
            return error(416, "range_not_satisfiable",
                         f"The range {range_header!r} is outside the content's {size} bytes.",
                         headers={"Content-Range": f"bytes */{size}"})
    if request.method == "HEAD":
        response = HttpResponse(b"", content_type=content_type)
        length = size if span is None else span[1] - span[0] + 1
    elif span is None:
        response = FileResponse(opener(), content_type=content_type)
        # FileResponse names the blob in Content-Disposition; the blob name is
        # istore's own business.
        del response["Content-Disposition"]
        length = size
    else:
        start, end = span
        length = end - start + 1
        response = StreamingHttpResponse(_read_span(opener(), start, length), content_type=content_type)
    if span is not None:
        response.status_code = 206
        response["Content-Range"] = f"bytes {span[0]}-{span[1]}/{size}"
    response["Content-Length"] = str(length)
    for name, value in headers.items():
        response[name] = value
    _safe_headers(response, content_type)
    return response


def _if_range_matches(request, headers):
    if_range = request.META.get("HTTP_IF_RANGE")
    if not if_range:
        return True
    if if_range.startswith(('"', 'W/"')):
        return if_range == headers.get("ETag")
    return if_range == headers.get("Last-Modified")
