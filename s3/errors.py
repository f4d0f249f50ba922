"""
S3's errors: every failure is answered with S3's XML error document
(``Code``, ``Message``, ``Resource``, ``RequestId``) and the status S3 gives
that code, so SDKs raise the exception their users already catch
(``NoSuchKey``, ``PreconditionFailed``, ...).

The S3 layer raises ``S3Error``; what the shared ``objects`` functions raise
(``objects.errors.ApiError``: a bad key, metadata over the limit, an upload
over the limit, a source that failed) is translated once, by ``from_api_error``.
"""
from objects.errors import ApiError

# S3's status for each code this server answers with.
STATUS = {
    "AccessDenied": 403,
    "AuthorizationHeaderMalformed": 400,
    "AuthorizationQueryParametersError": 400,
    "BadDigest": 400,
    "BucketAlreadyExists": 409,
    "BucketAlreadyOwnedByYou": 409,
    "BucketNotEmpty": 409,
    "EntityTooLarge": 400,
    "EntityTooSmall": 400,
    "IncompleteBody": 400,
    "InternalError": 500,
    "InvalidAccessKeyId": 403,
    "InvalidArgument": 400,
    "InvalidBucketName": 400,
    "InvalidDigest": 400,
    "InvalidPart": 400,
    "InvalidPartNumber": 416,
    "InvalidPartOrder": 400,
    "InvalidRange": 416,
    "InvalidRequest": 400,
    "InvalidURI": 400,
    "KeyTooLongError": 400,
    "MalformedTrailerError": 400,
    "MalformedXML": 400,
    "MetadataTooLarge": 400,
    "MethodNotAllowed": 405,
    "MissingContentLength": 411,
    "NoSuchBucket": 404,
    "NoSuchKey": 404,
    "NoSuchUpload": 404,
    "NotImplemented": 501,
    "PreconditionFailed": 412,
    "RequestTimeTooSkewed": 403,
    "ServiceUnavailable": 503,
    "SignatureDoesNotMatch": 403,
    "SlowDown": 503,
    "XAmzContentSHA256Mismatch": 400,
    "InvalidObjectState": 403,
    "GatewayTimeout": 504,
    "BadGateway": 502,
}


class S3Error(Exception):
    """An S3 error: ``code`` (one of STATUS), a message, and extra elements
    of the error document (``Key``, ``BucketName``, ``UploadId``, ...)."""

    def __init__(self, code, message, *, status=None, headers=None, **fields):
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or STATUS.get(code, 400)
        self.headers = headers or {}
        self.fields = fields


def not_implemented(what):
    return S3Error("NotImplemented", f"{what} is not implemented by istore's S3 protocol (see docs/s3.md).")


# objects' error codes that have an S3 code of their own.
_API_CODES = {
    "metadata_too_large": "MetadataTooLarge",
    "invalid_metadata": "InvalidArgument",
    "upload_too_large": "EntityTooLarge",
    "incomplete_upload": "IncompleteBody",
    "no_such_key": "NoSuchKey",
    "no_content": "NoSuchKey",
}
_API_STATUS = {400: "InvalidArgument", 403: "AccessDenied", 404: "NoSuchKey", 413: "EntityTooLarge",
               415: "InvalidArgument", 422: "InvalidArgument", 502: "BadGateway", 503: "ServiceUnavailable",
               504: "GatewayTimeout", 508: "InvalidRequest"}


def from_api_error(exc: ApiError):
    """The S3Error for an error raised by the shared ``objects`` functions."""
    if exc.code == "invalid_key" and "bytes long" in exc.detail:
        return S3Error("KeyTooLongError", exc.detail)
    code = _API_CODES.get(exc.code) or _API_STATUS.get(exc.status, "InvalidRequest")
    status = exc.status if code in ("BadGateway", "GatewayTimeout", "ServiceUnavailable") else None
    return S3Error(code, exc.detail, status=status)
