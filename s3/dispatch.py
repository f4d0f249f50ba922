"""
The S3 listener's one entry point: from a request to an S3 answer.

``handle(request)`` finds the bucket and key (path-style, or virtual-host
style under ``ISTORE_S3_DOMAIN``), authenticates (s3/auth.py), checks access
as the native API does (``ISTORE_PUBLIC_READ``, anonymous writes), routes by
method and sub-resource to the operation, and turns every failure into S3's
XML error document. Every answer carries ``x-amz-request-id``.

The operations live in modules named for what they act on (buckets,
object_reads, object_writes, listings, multipart); each takes an
``S3Request`` and returns a Django response.
"""
import logging
import uuid
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes, urlsplit

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.db import InterfaceError, OperationalError

from objects import access
from objects.errors import ApiError

from . import auth, responses
from .errors import S3Error, from_api_error, not_implemented

logger = logging.getLogger(__name__)
READ_METHODS = ("GET", "HEAD")
# Sub-resources istore does not have (ACLs, policies, versions, tagging, ...): 501.
UNSUPPORTED = frozenset((
    "acl", "policy", "policyStatus", "cors", "lifecycle", "tagging", "website", "logging", "notification",
    "replication", "encryption", "object-lock", "retention", "legal-hold", "torrent", "restore", "select",
    "accelerate", "analytics", "inventory", "metrics", "intelligent-tiering", "ownershipControls",
    "publicAccessBlock", "requestPayment", "attributes", "renameObject", "session",
))


@dataclass
class S3Request:
    request: object
    bucket: str
    key: str  # the object key; "" for bucket operations
    params: dict
    identity: auth.Identity = field(default_factory=auth.Identity)
    request_id: str = ""

    @property
    def method(self):
        return self.request.method

    @property
    def meta(self):
        return self.request.META

    @property
    def user(self):
        return self.identity.user

    @property
    def istore_key(self):
        return f"/{self.bucket}/{self.key}"


def handle(request):
    request_id = uuid.uuid4().hex[:16].upper()
    resource = request.path
    try:
        request.get_host()
        s3 = _parse(request)
        resource = f"/{s3.bucket}/{s3.key}" if s3.bucket else "/"
        s3.request_id = request_id
        if request.method == "OPTIONS":
            _preflight(request)
        s3.identity = auth.authenticate(request, _raw_path(request), auth.query_pairs(request.META.get(
            "QUERY_STRING", "")))
        operation = route(s3)
        _check_access(s3)
        response = operation(s3)
    except DisallowedHost:
        response = responses.error(S3Error("InvalidRequest", "The Host header names no host this istore answers "
                                           "for (ALLOWED_HOSTS, ISTORE_S3_DOMAIN)."), resource, request_id,
                                   request.method)
    except S3Error as exc:
        response = responses.error(exc, resource, request_id, request.method)
    except ApiError as exc:
        response = responses.error(from_api_error(exc), resource, request_id, request.method)
    except (OperationalError, InterfaceError) as exc:
        logger.warning("database error on S3 %s %s: %s", request.method, request.path, exc)
        response = responses.error(S3Error("ServiceUnavailable", "The database is unavailable; retry in a moment.",
                                           headers={"Retry-After": "5"}), resource, request_id, request.method)
    response["x-amz-request-id"] = request_id
    response["x-amz-id-2"] = request_id
    return response


def _preflight(request):
    """A CORS preflight: istore's S3 listener has no CORS configuration, as a bucket without one on S3."""
    if not request.META.get("HTTP_ORIGIN"):
        raise S3Error("InvalidRequest", "Insufficient information. Origin request header needed.")
    raise S3Error("AccessForbidden", "CORSResponse: CORS is not enabled for this bucket.", status=403)


def _raw_path(request):
    target = request.META.get("RAW_URI") or request.META.get("REQUEST_URI") or request.path
    if not target.startswith("/"):
        target = urlsplit(target).path or "/"
    return target.split("?", 1)[0]


def _parse(request):
    """The bucket, key and query of a request, virtual-host style when its host is under ISTORE_S3_DOMAIN."""
    try:
        path = unquote_to_bytes(_raw_path(request)).decode("utf-8")
    except UnicodeDecodeError:
        raise S3Error("InvalidURI", "Couldn't parse the specified URI: it is not UTF-8.") from None
    params = dict(auth.query_pairs(request.META.get("QUERY_STRING", "")))
    host = request.get_host().rsplit(":", 1)[0].lower() if request.get_host() else ""
    domain = settings.ISTORE_S3_DOMAIN
    if domain and host.endswith("." + domain):
        return S3Request(request, host[: -len(domain) - 1], path[1:], params)
    bucket, _, key = path[1:].partition("/")
    return S3Request(request, bucket, key, params)


def route(s3):
    """The operation for a request (NotImplemented for what istore does not have)."""
    from . import buckets, listings, multipart, object_reads, object_writes

    params, method = s3.params, s3.method
    unsupported = UNSUPPORTED.intersection(params)
    if unsupported:
        raise not_implemented(f"The {sorted(unsupported)[0]!r} sub-resource")
    version = params.get("versionId")
    if version not in (None, "", "null"):
        raise not_implemented("Object versions")
    if not s3.bucket:
        if method in READ_METHODS:
            return buckets.list_buckets
        raise S3Error("MethodNotAllowed", f"{method} is not allowed on the service.", Method=method,
                      ResourceType="SERVICE")
    if not s3.key:
        if method != "GET" and "versioning" in params:
            raise not_implemented("Versioning")
        table = {
            ("GET", "location"): buckets.get_location,
            ("GET", "versioning"): buckets.get_versioning,
            ("GET", "uploads"): multipart.list_uploads,
            ("GET", "versions"): listings.list_versions,
            ("POST", "delete"): object_writes.delete_objects,
        }
        for (verb, name), operation in table.items():
            if method == verb and name in params:
                return operation
        simple = {"GET": listings.list_objects, "HEAD": buckets.head_bucket, "PUT": buckets.create_bucket,
                  "DELETE": buckets.delete_bucket}
        if method in simple:
            return simple[method]
    else:
        if "uploadId" in params:
            operation = {"PUT": multipart.upload_part, "GET": multipart.list_parts,
                         "DELETE": multipart.abort_upload, "POST": multipart.complete_upload}.get(method)
            if operation:
                return operation
        elif method == "POST" and "uploads" in params:
            return multipart.create_upload
        else:
            simple = {"GET": object_reads.get_object, "HEAD": object_reads.get_object,
                      "PUT": object_writes.put_object, "DELETE": object_writes.delete_object}
            if method in simple:
                return simple[method]
    raise S3Error("MethodNotAllowed", f"The specified method {method} is not allowed against this resource.",
                  Method=method, ResourceType="OBJECT" if s3.key else "BUCKET")


def _check_access(s3):
    """Reads follow ISTORE_PUBLIC_READ and writes need credentials unless
    anonymous writes are allowed, exactly as on the native API."""
    if s3.user is not None:
        return
    write = s3.method not in READ_METHODS
    if write and not access.anonymous_write_allowed(s3.request):
        raise S3Error("AccessDenied", "Writes need S3 credentials: create a key with `python manage.py "
                      "create_s3_key USERNAME` or in the admin.")
    if not write and not settings.ISTORE_PUBLIC_READ:
        raise S3Error("AccessDenied", "Reads need S3 credentials here (ISTORE_PUBLIC_READ=false).")
