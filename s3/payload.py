"""
From an upload's request body to stored content (PutObject, UploadPart).

The body may come plain, or in S3's ``aws-chunked`` framing (s3/chunked.py),
with or without HTTP chunking under it. Whatever the form, its decoded bytes
stream through ``objects.content.store_stream`` (the same code that stores a
native upload: temporary file, SHA-256 and MD5, storage, limits), while the
checksums the request names are computed on the way. Then everything the
request promised is checked against what arrived: ``Content-MD5``, the
signed ``x-amz-content-sha256``, ``x-amz-checksum-*`` from headers or
trailers. A mismatch deletes the new blob before any item names it.
"""
import dataclasses
import re

from objects import content, payloads

from . import auth, checksums
from .chunked import ChunkedReader
from .errors import S3Error

# Headers S3 keeps with an object and returns with it.
CONTENT_HEADERS = ("Cache-Control", "Content-Disposition", "Content-Encoding", "Content-Language", "Expires")
CHECKSUM_HEADER = re.compile(r"^HTTP_X_AMZ_CHECKSUM_(CRC32|CRC32C|CRC64NVME|SHA1|SHA256)$")


def content_headers(meta):
    """The content headers given with an upload (``aws-chunked`` is framing, not an encoding to keep)."""
    found = {}
    for name in CONTENT_HEADERS:
        value = meta.get("HTTP_" + name.upper().replace("-", "_"))
        if name == "Content-Encoding" and value and "aws-chunked" in value.lower():
            value = ", ".join(part.strip() for part in value.split(",") if part.strip().lower() != "aws-chunked")
        if value:
            found[name] = value
    return found


def requested_checksums(meta, default_algorithm=""):
    """``{algorithm: expected base64 value or None}`` for what the request asks to be checked or computed."""
    wanted = {}
    for name, value in meta.items():
        match = CHECKSUM_HEADER.match(name)
        if match:
            algorithm = match.group(1).lower()
            wanted[algorithm] = checksums.check_value(algorithm, value.strip())
    trailer = meta.get("HTTP_X_AMZ_TRAILER", "")
    for name in filter(None, (part.strip().lower() for part in trailer.split(","))):
        if not name.startswith("x-amz-checksum-"):
            raise S3Error("InvalidRequest", f"The trailer {name!r} is not supported.")
        wanted.setdefault(checksums.algorithm_name(name[len("x-amz-checksum-"):]), None)
    sdk = meta.get("HTTP_X_AMZ_SDK_CHECKSUM_ALGORITHM") or default_algorithm
    if sdk:
        wanted.setdefault(checksums.algorithm_name(sdk), None)
    return wanted


def store_body(request, identity, key, content_type, *, folder="content", limit=None, default_algorithm=""):
    """Store the request body; return its ``StoredContent`` with its
    ``checksums``. Raises S3Error (nothing stored) when the body is not what
    the request says it is."""
    meta = request.META
    wanted = requested_checksums(meta, default_algorithm)
    read, length, chunked = _decoded_reader(request, identity)
    tracker = checksums.Tracker(wanted)

    def tracked(size):
        data = read(size)
        tracker.update(data)
        return data

    stored = content.store_stream(tracked, key, content_type, expected_length=length, folder=folder, limit=limit)
    try:
        computed = tracker.values()
        _verify(meta, identity, stored, wanted, computed, chunked.trailers if chunked else {})
    except BaseException:
        content.delete_content(stored.name)
        raise
    return dataclasses.replace(stored, checksums=computed)


def _decoded_reader(request, identity):
    """``(read, decoded length or None, the ChunkedReader or None)`` for the request body."""
    meta = request.META
    raw_read, raw_length = payloads.raw_body_reader(request)
    encoding = meta.get("HTTP_CONTENT_ENCODING", "").lower()
    mode = identity.payload_hash
    # A body whose SHA-256 was signed is that body, whatever Content-Encoding says
    # (S3 keeps "gzip, aws-chunked" of a plain signed PUT as "gzip").
    framed = "aws-chunked" in encoding and len(mode) != 64
    if mode in auth.STREAMING_MODES or framed:
        decoded = meta.get("HTTP_X_AMZ_DECODED_CONTENT_LENGTH")
        try:
            length = int(decoded) if decoded else None
        except ValueError:
            raise S3Error("InvalidArgument", "x-amz-decoded-content-length is not a number.") from None
        signed = mode in (auth.STREAMING_SIGNED, auth.STREAMING_SIGNED_TRAILER)
        if signed and identity.user is None:
            raise S3Error("AccessDenied", "A signed aws-chunked body needs a signed request.")
        reader = ChunkedReader(raw_read, identity, signed=signed,
                               trailer=mode in (auth.STREAMING_SIGNED_TRAILER, auth.STREAMING_UNSIGNED_TRAILER))
        return reader.read, length, reader
    if raw_length is None and not payloads.is_chunked(request):
        return (lambda size: b""), 0, None
    return raw_read, raw_length, None


def _verify(meta, identity, stored, wanted, computed, trailers):
    md5_header = meta.get("HTTP_CONTENT_MD5")
    if md5_header is not None and checksums.content_md5_hex(md5_header) != stored.md5:
        raise S3Error("BadDigest", "The Content-MD5 you specified did not match what we received.")
    declared = identity.payload_hash
    if identity.user is not None and len(declared) == 64 and declared != stored.etag:
        raise S3Error("XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what "
                      "was computed.", ClientComputedContentSHA256=declared, S3ComputedContentSHA256=stored.etag)
    for algorithm, expected in wanted.items():
        expected = expected or trailers.get(f"x-amz-checksum-{algorithm}")
        if expected is None:
            continue
        checksums.check_value(algorithm, expected)
        if expected != computed[algorithm]:
            raise S3Error("BadDigest", f"The {algorithm.upper()} you specified did not match the calculated "
                          "checksum.")
