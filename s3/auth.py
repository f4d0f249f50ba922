"""
Who is asking: AWS Signature Version 4, in the ``Authorization`` header and
in presigned URLs (``X-Amz-Algorithm`` and the other query parameters).

The expected signature is computed by botocore's own signer
(``botocore.auth.S3SigV4Auth``: canonical request, string to sign, key
derivation, HMAC) over a request rebuilt from what was received: the method,
the path, the query and exactly the headers the client says it signed. Only
the choice of those headers is ours (botocore would pick its own), and the
path is tried as sent and in AWS's canonical encoding, since clients differ
in how they escape a key on the wire but all sign one of the two.

The result is an ``Identity``: the user, and what the payload verifiers
need to check ``aws-chunked`` chunk and trailer signatures (s3/chunked.py).
"""
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from hashlib import sha256
from urllib.parse import quote, unquote, unquote_plus

from botocore.auth import EMPTY_SHA256_HASH, S3SigV4Auth
from botocore.awsrequest import AWSRequest, HTTPHeaders
from botocore.credentials import Credentials
from django.utils.http import parse_http_date_safe

from .errors import S3Error
from .models import Credential

ALGORITHM = "AWS4-HMAC-SHA256"
SKEW = timedelta(minutes=15)
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
TIMESTAMP = "%Y%m%dT%H%M%SZ"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
# x-amz-content-sha256 values that say how the body is sent.
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING_MODES = (STREAMING_SIGNED, STREAMING_SIGNED_TRAILER, STREAMING_UNSIGNED_TRAILER)


class _Signer(S3SigV4Auth):
    """botocore's S3 signer, signing exactly the headers the client named."""

    def __init__(self, credentials, region, signed_headers):
        super().__init__(credentials, "s3", region)
        self._signed = signed_headers

    def headers_to_sign(self, request):
        headers = HTTPHeaders()
        for name, value in self._signed:
            headers[name] = value
        return headers


@dataclass
class Identity:
    """The requester: ``user`` (None when anonymous) and, for a signed
    request, what chunk and trailer signatures are chained from."""

    user: object = None
    payload_hash: str = UNSIGNED_PAYLOAD
    signer: _Signer = None
    request: AWSRequest = None
    seed_signature: str = ""
    scope: str = ""

    @property
    def timestamp(self):
        return self.request.context["timestamp"]

    def chunk_signature(self, previous, chunk_hash):
        """The signature of one ``aws-chunked`` chunk, whose SHA-256 is ``chunk_hash`` (hex)."""
        return self._sign_chained("AWS4-HMAC-SHA256-PAYLOAD", previous, EMPTY_SHA256_HASH + "\n" + chunk_hash)

    def trailer_signature(self, previous, trailer_text):
        """The signature of the trailing headers (``name:value\\n`` each)."""
        return self._sign_chained("AWS4-HMAC-SHA256-TRAILER", previous, sha256(trailer_text.encode()).hexdigest())

    def _sign_chained(self, kind, previous, tail):
        string_to_sign = "\n".join((kind, self.timestamp, self.scope, previous, tail))
        return self.signer.signature(string_to_sign, self.request)


def header_text(value):
    """A header value as the client wrote it: WSGI hands bytes over as Latin-1."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


def _header(meta, name):
    """The value of a signed header as the client signed it (botocore signs UTF-8 text as UTF-8)."""
    if name == "content-type":
        return header_text(meta.get("CONTENT_TYPE", ""))
    if name == "content-length":
        return meta.get("CONTENT_LENGTH", "")
    return header_text(meta.get("HTTP_" + name.upper().replace("-", "_"), ""))


def query_pairs(query_string):
    """The query's (name, value) pairs, percent-decoded, in order."""
    pairs = []
    for part in query_string.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((unquote_plus(name), unquote_plus(value)))
    return pairs


def authenticate(request, raw_path, pairs):
    """The Identity of ``request``; raises S3Error when its signature is wrong.

    ``raw_path`` is the path as sent (still percent-encoded), ``pairs`` the
    decoded query.
    """
    meta = request.META
    header = meta.get("HTTP_AUTHORIZATION", "")
    params = dict(pairs)
    if header:
        return _header_auth(request, header, raw_path, pairs)
    if "X-Amz-Algorithm" in params or "X-Amz-Credential" in params:
        return _presigned_auth(request, params, raw_path, pairs)
    if "AWSAccessKeyId" in params:
        raise S3Error("InvalidRequest", "Signature Version 2 is not supported; sign with AWS4-HMAC-SHA256.")
    return Identity()


def _header_auth(request, header, raw_path, pairs):
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != ALGORITHM:
        if algorithm == "AWS":
            raise S3Error("InvalidRequest", "Signature Version 2 is not supported; sign with AWS4-HMAC-SHA256.")
        raise S3Error("AuthorizationHeaderMalformed", f"The authorization header algorithm {algorithm!r} is not "
                      f"supported; use {ALGORITHM}.")
    fields = {}
    for part in rest.split(","):
        name, _, value = part.strip().partition("=")
        fields[name] = value
    if not all(fields.get(name) for name in ("Credential", "SignedHeaders", "Signature")):
        raise S3Error("AuthorizationHeaderMalformed", "The authorization header is malformed: it needs "
                      "Credential, SignedHeaders and Signature.")
    meta = request.META
    timestamp = meta.get("HTTP_X_AMZ_DATE") or _date_header(meta.get("HTTP_DATE", ""))
    moment = _parse_timestamp(timestamp, "AuthorizationHeaderMalformed")
    if abs(datetime.now(timezone.utc) - moment) > SKEW:
        raise S3Error("RequestTimeTooSkewed", "The difference between the request time and the server's time "
                      "is too large.", RequestTime=timestamp, ServerTime=_now_timestamp())
    payload_hash = meta.get("HTTP_X_AMZ_CONTENT_SHA256") or (
        EMPTY_SHA256_HASH if not _has_body(meta) else "")
    if not payload_hash:
        raise S3Error("InvalidRequest", "Missing required header for this request: x-amz-content-sha256.")
    if payload_hash.startswith("STREAMING-") and payload_hash not in STREAMING_MODES:
        raise S3Error("NotImplemented", f"The payload form {payload_hash} is not supported.")
    return _verify(request, fields["Credential"], fields["SignedHeaders"], fields["Signature"], timestamp,
                   payload_hash, raw_path, pairs, "AuthorizationHeaderMalformed")


def _presigned_auth(request, params, raw_path, pairs):
    code = "AuthorizationQueryParametersError"
    if params.get("X-Amz-Algorithm") != ALGORITHM:
        raise S3Error(code, f"X-Amz-Algorithm must be {ALGORITHM}.")
    for name in ("X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"):
        if not params.get(name):
            raise S3Error(code, f"Query-string authentication requires the {name} parameter.")
    moment = _parse_timestamp(params["X-Amz-Date"], code)
    try:
        expires = int(params["X-Amz-Expires"])
    except ValueError:
        raise S3Error(code, "X-Amz-Expires should be a number.") from None
    if expires > MAX_PRESIGN_SECONDS:  # a negative one is simply expired, as on S3
        raise S3Error(code, "X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires "
                      "must be less than 604800 seconds.")
    now = datetime.now(timezone.utc)
    if moment - now > SKEW:
        raise S3Error("AccessDenied", "Request is not valid yet.")
    if now > moment + timedelta(seconds=expires):
        raise S3Error("AccessDenied", "Request has expired.", Expires=(moment + timedelta(seconds=expires)).strftime(
            "%Y-%m-%dT%H:%M:%SZ"), ServerTime=_now_timestamp())
    signed_pairs = [(name, value) for name, value in pairs if name != "X-Amz-Signature"]
    payload_hash = params.get("X-Amz-Content-Sha256") or request.META.get("HTTP_X_AMZ_CONTENT_SHA256") \
        or UNSIGNED_PAYLOAD
    return _verify(request, params["X-Amz-Credential"], params["X-Amz-SignedHeaders"], params["X-Amz-Signature"],
                   params["X-Amz-Date"], payload_hash, raw_path, signed_pairs, code, presigned=True)


def _verify(request, credential, signed_headers, signature, timestamp, payload_hash, raw_path, pairs, code,
            presigned=False):
    parts = credential.split("/")
    if len(parts) != 5 or parts[3] != "s3" or parts[4] != "aws4_request":
        raise S3Error(code, f"The credential {credential!r} is malformed; expected "
                      "'<key>/<YYYYMMDD>/<region>/s3/aws4_request'.")
    access_key, date, region = parts[0], parts[1], parts[2]
    if date != timestamp[:8]:
        raise S3Error(code, f"The credential's date {date!r} is not the request's date {timestamp[:8]!r}.")
    found = Credential.objects.select_related("user").filter(access_key=access_key).first()
    if found is None or not found.user.is_active:
        raise S3Error("InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.",
                      AWSAccessKeyId=access_key)
    names = [name.strip().lower() for name in signed_headers.split(";") if name.strip()]
    if "host" not in names:
        raise S3Error(code, "The host header must be signed.")
    headers = [(name, _header(request.META, name)) for name in names]
    signer = _Signer(Credentials(access_key, found.secret_key), region, headers)
    scope = "/".join((date, region, "s3", "aws4_request"))
    for path in _path_forms(raw_path):
        aws_request = AWSRequest(method=request.method, url="http://istore" + path,
                                 headers={"X-Amz-Content-SHA256": payload_hash})
        aws_request.params = pairs
        aws_request.context["timestamp"] = timestamp
        canonical = signer.canonical_request(aws_request)
        expected = signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
        if hmac.compare_digest(expected, signature):
            return Identity(found.user, payload_hash, signer, aws_request, signature, scope)
    raise S3Error("SignatureDoesNotMatch", "The request signature we calculated does not match the signature you "
                  "provided. Check your key and signing method.", AWSAccessKeyId=access_key)


def _path_forms(raw_path):
    """The path as sent, then in AWS's canonical encoding if that differs."""
    yield raw_path
    canonical = quote(unquote(raw_path), safe="/~")
    if canonical != raw_path:
        yield canonical


def _has_body(meta):
    return bool(meta.get("CONTENT_LENGTH") not in (None, "", "0") or meta.get("HTTP_TRANSFER_ENCODING"))


def _parse_timestamp(value, code):
    try:
        return datetime.strptime(value, TIMESTAMP).replace(tzinfo=timezone.utc)
    except (TypeError, ValueError):
        raise S3Error(code, f"The request time {value!r} is not in the form YYYYMMDDTHHMMSSZ.") from None


def _date_header(value):
    seconds = parse_http_date_safe(value) if value else None
    return datetime.fromtimestamp(seconds, timezone.utc).strftime(TIMESTAMP) if seconds else ""


def _now_timestamp():
    return datetime.now(timezone.utc).strftime(TIMESTAMP)
