"""
Content responses: what the read pipeline returned (a ``sources.Body``, bytes
with their validators) turned into HTTP, in this one place.

- Conditional requests (``If-None-Match``, ``If-Modified-Since``) give 304 by
  Django's own rules (``get_conditional_response``); one ``bytes=`` range
  gives 206 on unprocessed bytes (a processed result is always sent whole),
  ``If-Range`` honoured, a range past the end 416; HEAD sends the headers only.
- Every content response carries ``nosniff`` and ``Content-Security-Policy:
  sandbox``, and types a browser would render as a document are downloads
  (``Content-Disposition: attachment``): stored bytes never run script on
  istore's origin.
- Behind nginx (``ISTORE_ACCEL_REDIRECT``), bytes that are a file of the cache
  are handed to nginx with ``X-Accel-Redirect`` and an empty body, and with
  ``ISTORE_ACCEL_EXPIRES`` nginx's own cache may keep public answers that long.
"""
import io
import re
from email.utils import format_datetime
from urllib.parse import quote

from django.conf import settings
from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.utils.cache import get_conditional_response, patch_vary_headers
from django.utils.http import parse_http_date_safe

from . import cache as shared_cache
from . import signing
from .responses import error

RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
# Types a browser would render as a document (and so run script from).
ACTIVE_TYPES = ("text/html", "application/xhtml", "image/svg", "text/xml", "application/xml", "text/javascript",
                "application/javascript")
STREAM_CHUNK = 256 * 1024


def respond(request, body):
    """The response to a GET or HEAD whose pipeline read ``body``.

    The caller closes ``body`` afterwards; a handle the response streams from
    is the response's to close.
    """
    accel = _accel_location(request, body)
    response = _content_response(
        request,
        _empty if accel else body.open,
        size=body.size,
        content_type=body.content_type,
        etag=body.etag,
        last_modified=body.last_modified,
        cache_control=body.cache_control,
        # Behind nginx, Range is nginx's to answer, on the file itself.
        allow_range=not body.processed and not accel,
    )
    if body.vary:
        patch_vary_headers(response, (body.vary,))  # on 304s too
    if body.cache_status:
        response["Cache-Status"] = body.cache_status
    if accel and response.status_code == 200:
        response["X-Accel-Redirect"] = accel
        response["Content-Length"] = "0"
        if not body.processed:
            response["Accept-Ranges"] = "bytes"
    # nginx's proxy_cache may reuse it for that long (docs/deploy.md); never a private store's, nor a
    # signed URL past its exp, nor what a token opened without a signature.
    expires = signing.shared_cache_seconds(request, settings.ISTORE_ACCEL_EXPIRES)
    if expires > 0 and settings.ISTORE_PUBLIC_READ and response.status_code in (200, 304):
        response["X-Accel-Expires"] = str(expires)
    return response


def _empty():
    return io.BytesIO(b"")


def _accel_location(request, body):
    """The ``X-Accel-Redirect`` target for ``body``, or None to serve it from here.

    Only for a GET of bytes that are a file of the cache (a fetched source, a
    processed result), named by their path relative to the cache directory
    under the internal nginx location ``ISTORE_ACCEL_REDIRECT`` (an ``alias``
    of ``ISTORE_CACHE_DIR``). istore has already checked access and answered
    304 by then; the headers it sends (type, ETag, Last-Modified,
    Cache-Control, nosniff/sandbox) are those of a direct answer, with an
    empty body. A Range request for a processed result is answered here,
    whole, as without nginx (Range applies to unprocessed bytes only).
    """
    location = settings.ISTORE_ACCEL_REDIRECT
    if not location or request.method != "GET" or body.path is None:
        return None
    if body.processed and request.META.get("HTTP_RANGE"):
        return None
    relative = shared_cache.get_cache().file_path(body.path, body.handle)
    if relative is None:
        return None
    return location.rstrip("/") + "/" + quote(relative.as_posix())


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


def read_span(handle, start, length):
    """Yield ``length`` bytes of ``handle`` from ``start`` in chunks, then close it."""
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


def _content_response(request, opener, *, size, content_type, etag=None, last_modified=None,
                      cache_control="public, no-cache", allow_range=True):
    """Serve bytes from ``opener()`` (a binary file object) with HTTP semantics.

    ``last_modified`` is a timezone-aware datetime or None.
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
        response = StreamingHttpResponse(read_span(opener(), start, length), content_type=content_type)
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
