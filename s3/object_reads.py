"""
GetObject and HeadObject: the bytes a native GET serves, with S3's headers.

The bytes come from ``objects.reading.read`` (uploaded content, or what an
embedded source serves, exactly as a native GET), except for an item that
has neither: it is a zero-byte object (a folder, or metadata only), as
listings show it. The ETag is the stored MD5 ETag for uploaded content (the
SHA-256 one for content stored before MD5s were kept, and for sources).
Conditional headers, ``Range`` and ``partNumber`` follow S3's rules.
"""
import base64
import hashlib
import io
import re
from datetime import timezone as dt_timezone
from email.utils import format_datetime

from django.http import FileResponse, StreamingHttpResponse
from django.utils.http import parse_http_date_safe

from objects import reading
from objects.errors import NotFound
from objects.models import Item
from objects.serving import read_span

from . import responses
from .errors import S3Error
from .models import PartLayout

EMPTY_MD5 = hashlib.md5(b"", usedforsecurity=False).hexdigest()
RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
OVERRIDES = {"response-content-type": "Content-Type", "response-content-language": "Content-Language",
             "response-expires": "Expires", "response-cache-control": "Cache-Control",
             "response-content-disposition": "Content-Disposition",
             "response-content-encoding": "Content-Encoding"}
HEADER_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class ObjectBody:
    """What GetObject serves for an item: size, type, ETag, time, and an opener."""

    def __init__(self, item):
        self.item = item
        self.body = None
        if item.has_content or not item.key.endswith("/"):
            try:
                self.body = reading.read(item.key, None, 0, item=item)
            except NotFound:
                if item.has_content:
                    raise
        if self.body is None:
            self.size, self.content_type, self.etag = 0, "application/octet-stream", EMPTY_MD5
            self.last_modified = item.updated
        else:
            self.size = self.body.size
            self.content_type = self.body.content_type
            self.etag = (item.content_md5 or item.content_etag) if item.has_content else self.body.etag.strip('"')
            self.last_modified = item.updated if item.has_content else (self.body.last_modified or item.updated)

    def open(self):
        return self.body.open() if self.body is not None else io.BytesIO(b"")

    def close(self):
        if self.body is not None:
            self.body.close()


def find_item(s3):
    item = Item.objects.by_key(s3.istore_key) if s3.key else None
    if item is None:
        from .names import require_bucket

        require_bucket(s3.bucket)
        raise S3Error("NoSuchKey", "The specified key does not exist.", Key=s3.key)
    return item


def get_object(s3):
    item = find_item(s3)
    body = ObjectBody(item)
    try:
        return _respond(s3, item, body)
    finally:
        body.close()


def _respond(s3, item, body):
    etag = f'"{body.etag}"'
    last_modified = format_datetime(body.last_modified.astimezone(dt_timezone.utc).replace(microsecond=0),
                                    usegmt=True)
    headers = {"ETag": etag, "Last-Modified": last_modified, "Accept-Ranges": "bytes"}
    not_modified = check_conditions(s3.meta, body.etag, body.last_modified)
    if not_modified:
        return responses.empty(304, headers)
    headers.update(metadata_headers(item.metadata))
    headers["Content-Type"] = body.content_type
    headers.update(item.content_headers if item.has_content else {})
    for name, header in OVERRIDES.items():
        if s3.params.get(name):
            headers[header] = s3.params[name]
    span, status = _span(s3, item, body, headers)
    if span is None and s3.meta.get("HTTP_X_AMZ_CHECKSUM_MODE", "").upper() == "ENABLED" and item.has_content:
        for algorithm, value in item.content_checksums.items():
            headers[f"x-amz-checksum-{algorithm}"] = value
    length = body.size if span is None else span[1] - span[0] + 1
    if s3.method == "HEAD":
        response = responses.empty(status)
    elif span is None:
        response = FileResponse(body.open(), status=status)
        if "Content-Disposition" in response and "Content-Disposition" not in headers:
            del response["Content-Disposition"]
    else:
        response = StreamingHttpResponse(read_span(body.open(), span[0], length), status=status)
    for name, value in headers.items():
        response[name] = value
    response["Content-Length"] = str(length)
    # Stored bytes never run script on istore's origin (a browser following a presigned URL).
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox"
    return response


def _span(s3, item, body, headers):
    """``(span or None, status)``: the inclusive byte span to serve, from ``partNumber`` or ``Range``."""
    part = s3.params.get("partNumber")
    if part is not None:
        return _part_span(part, item, body, headers), 206
    header = s3.meta.get("HTTP_RANGE")
    if not header:
        return None, 200
    span = parse_range(header, body.size)
    if span is None:
        return None, 200
    headers["Content-Range"] = f"bytes {span[0]}-{span[1]}/{body.size}"
    return span, 206


def _part_span(text, item, body, headers):
    try:
        number = int(text)
    except ValueError:
        number = 0
    if not 1 <= number <= 10000:
        raise S3Error("InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive.")
    layout = PartLayout.objects.filter(blob=item.content_name).first() if item.has_content else None
    sizes = layout.sizes if layout else [body.size]
    if number > len(sizes):
        raise S3Error("InvalidPart", f"The object has {len(sizes)} part(s); part {number} does not exist.")
    headers["x-amz-mp-parts-count"] = str(len(sizes))
    start = sum(sizes[: number - 1])
    end = start + sizes[number - 1] - 1
    if sizes[number - 1] == 0:
        return None
    headers["Content-Range"] = f"bytes {start}-{end}/{body.size}"
    return start, end


def parse_range(header, size):
    """The inclusive span of one ``bytes=`` range, None to serve everything
    (several ranges, or another unit, as S3 does), InvalidRange when unsatisfiable."""
    match = RANGE_RE.match(header.strip())
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":
        length = int(last)
        if length == 0 or size == 0:
            raise _invalid_range(size)
        return max(size - length, 0), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if last and int(last) < start:
        return None
    if start >= size:
        raise _invalid_range(size)
    return start, end


def _invalid_range(size):
    return S3Error("InvalidRange", "The requested range is not satisfiable",
                   headers={"Content-Range": f"bytes */{size}"}, ActualObjectSize=str(size))


def _etag_matches(header, etag):
    candidates = [value.strip().strip('"') for value in header.split(",")]
    return "*" in candidates or etag in [value[2:] if value.startswith("W/") else value for value in candidates]


def check_conditions(meta, etag, last_modified, prefix="HTTP_IF_"):
    """Raise PreconditionFailed or return True (304) by S3's rules for the
    conditional headers (``prefix`` reads ``x-amz-copy-source-if-*`` for copies)."""
    modified = int(last_modified.timestamp())
    if_match = meta.get(prefix + "MATCH")
    if if_match is not None:
        if not _etag_matches(if_match, etag):
            raise S3Error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold",
                          Condition="If-Match")
    else:
        since = parse_http_date_safe(meta.get(prefix + "UNMODIFIED_SINCE", "") or "")
        if since is not None and modified > since:
            raise S3Error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold",
                          Condition="If-Unmodified-Since")
    if_none_match = meta.get(prefix + "NONE_MATCH")
    if if_none_match is not None:
        return _etag_matches(if_none_match, etag)
    since = parse_http_date_safe(meta.get(prefix + "MODIFIED_SINCE", "") or "")
    return since is not None and modified <= since


def metadata_headers(metadata):
    """``x-amz-meta-*`` for every top-level string member of the metadata.

    Values that are not plain ASCII are RFC 2047 encoded, as S3 returns them;
    names that cannot be a header are left out and counted in ``x-amz-missing-meta``.
    """
    headers, missing = {}, 0
    for name, value in metadata.items():
        if not isinstance(value, str):
            continue
        if not HEADER_TOKEN.match(name):
            missing += 1
            continue
        if not value.isascii() or any(ord(char) < 32 or ord(char) == 127 for char in value):
            value = "=?UTF-8?B?" + base64.b64encode(value.encode("utf-8")).decode("ascii") + "?="
        headers[f"x-amz-meta-{name.lower()}"] = value
    if missing:
        headers["x-amz-missing-meta"] = str(missing)
    return headers
