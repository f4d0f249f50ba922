"""
Reading a write request's payload (§3): metadata and optional content.

- ``application/json``: ``{"metadata": {...}}``.
- form (urlencoded or multipart): the field ``metadata`` (JSON text) and,
  multipart only, the file field ``file``.
- anything else with a body (``curl -T``): the body is the content.
"""
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.files.uploadhandler import FileUploadHandler, TemporaryFileUploadHandler
from django.http import QueryDict
from django.http.multipartparser import MultiPartParserError

from . import content, durable, jsontext
from .errors import ApiError, BadRequest, PayloadTooLarge
from .writing import InvalidMetadata

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
JSON_TYPES = ("application/json",)


@dataclass
class Payload:
    metadata: dict | None = None
    upload: object = None  # a Django UploadedFile (multipart) or None
    raw_body: bool = False  # the body itself is the content


class UploadLimitHandler(FileUploadHandler):
    """Stops a multipart upload as soon as it passes ISTORE_MAX_UPLOAD_BYTES."""

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > settings.ISTORE_MAX_UPLOAD_BYTES:
            raise content.too_large(self.received)
        return raw_data

    def file_complete(self, file_size):
        return None


class SpoolingUploadHandler(TemporaryFileUploadHandler):
    """Django's spooling of large multipart files, handing them to the disk while they arrive
    (objects.durable.Writeback), so the fsync before the commit finds little left to write, and
    computing their digests in the same pass (``file.digests``, which
    ``objects.content.store_uploaded_file`` uses rather than reading the file again).

    Django parses the body in pieces of its handlers' ``chunk_size`` (64 KiB): 1 MiB pieces made
    100 MiB multipart uploads slower, 131 against 180 MB/s (benchmarks/README.md, "Durability"),
    so the default stays."""

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.writeback = durable.Writeback(self.file.fileno())
        self.file.digests = content.Digests()

    def receive_data_chunk(self, raw_data, start):
        super().receive_data_chunk(raw_data, start)
        self.file.digests.update(raw_data)
        self.writeback.wrote(start + len(raw_data))


def parse_metadata(text):
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8", errors="replace")
    try:
        value = jsontext.loads(text, "metadata")
    except jsontext.InvalidJson as exc:
        raise InvalidMetadata(f"{exc.detail} Send a JSON object such as {{\"name\": \"x\"}}.") from None
    if not isinstance(value, dict):
        raise InvalidMetadata(f"metadata must be a JSON object, not {type(value).__name__}.")
    return value


def content_length(request):
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise BadRequest("Content-Length is not a number.", code="bad_content_length") from None


def is_chunked(request):
    return "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()


def raw_body_reader(request):
    """``(read, expected_length)`` for the raw body of a request.

    Django caps ``request.read`` at CONTENT_LENGTH, which a chunked request
    (``curl -T -``) has none of, so it would read nothing. A server that
    de-chunks the body and says so (``wsgi.input_terminated``, as gunicorn
    does) lets istore read the input to its end; otherwise a chunked body is
    refused with 411.
    """
    if is_chunked(request) and not request.META.get("CONTENT_LENGTH"):
        if not request.META.get("wsgi.input_terminated"):
            raise ApiError("This server cannot read a chunked body: send Content-Length.", status=411,
                           code="length_required")
        return request.META["wsgi.input"].read, None
    return request.read, content_length(request) or None


def read_payload(request):
    """Parse metadata and content out of a POST or PUT request."""
    content_type = request.content_type or ""
    length = content_length(request)
    try:
        if content_type in JSON_TYPES:
            return _json_payload(request)
        if content_type in FORM_TYPES:
            return _form_payload(request, content_type, length)
    except RequestDataTooBig:
        raise PayloadTooLarge(
            f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes; "
            "send large content as a file or raw body.", code="body_too_large") from None
    except (MultiPartParserError, SuspiciousOperation, UnicodeDecodeError) as exc:
        raise BadRequest(f"The form body could not be parsed: {exc}.", code="bad_form") from None
    return Payload(raw_body=length > 0 or is_chunked(request))


def _json_payload(request):
    body = jsontext.loads(request.body or b"{}")
    if not isinstance(body, dict):
        raise BadRequest('A JSON body must be an object: {"metadata": {...}}.', code="invalid_json")
    unknown = sorted(set(body) - {"metadata"})
    if unknown:
        raise BadRequest(f'Unknown field(s) {", ".join(unknown)}: a JSON body is {{"metadata": {{...}}}}.',
                         code="invalid_json")
    if "metadata" not in body:
        return Payload()
    metadata = body["metadata"]
    if not isinstance(metadata, dict):
        raise InvalidMetadata(f"metadata must be a JSON object, not {type(metadata).__name__}.")
    return Payload(metadata=metadata)


def _form_payload(request, content_type, length):
    if content_type == "multipart/form-data":
        if length > settings.ISTORE_MAX_UPLOAD_BYTES + 1024 * 1024:
            raise content.too_large(length)
        request.upload_handlers.insert(0, UploadLimitHandler(request))
        if request.method == "POST":
            fields, files = request.POST, request.FILES
        else:
            fields, files = request.parse_file_upload(request.META, request)
    else:
        fields = request.POST if request.method == "POST" else QueryDict(request.body, encoding=request.encoding)
        files = {}
    metadata = fields.get("metadata")
    return Payload(
        metadata=parse_metadata(metadata) if metadata is not None else None,
        upload=files.get("file"),
    )
