"""Signature Version 4 as the S3 listener checks it: headers, presigned URLs, time, keys, access."""
import datetime

import requests
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from .conftest import ACCESS_KEY, REGION, SECRET_KEY, error_code, signed_request


def test_signed_request_is_answered(s3_server, bucket):
    answer = signed_request(s3_server, "GET", f"/{bucket}?list-type=2")
    assert answer.status_code == 200, f"a correctly signed listing answered {answer.status_code}"
    assert answer.headers.get("x-amz-request-id"), "every answer carries x-amz-request-id"


def test_wrong_secret_is_signature_does_not_match(s3_server, bucket):
    answer = signed_request(s3_server, "GET", f"/{bucket}?list-type=2", secret="not-the-secret")
    assert (answer.status_code, error_code(answer)) == (403, "SignatureDoesNotMatch"), answer.content


def test_unknown_access_key_is_invalid_access_key_id(s3_server, bucket):
    answer = signed_request(s3_server, "GET", f"/{bucket}", access_key="NOSUCHKEY000")
    assert (answer.status_code, error_code(answer)) == (403, "InvalidAccessKeyId"), answer.content


def test_tampered_header_breaks_the_signature(s3_server, bucket):
    request = AWSRequest(method="PUT", url=f"{s3_server.endpoint}/{bucket}/t", data=b"abc",
                         headers={"x-amz-meta-a": "1"})
    from .conftest import _FixedPayload

    _FixedPayload(Credentials(ACCESS_KEY, SECRET_KEY), None).add_auth(request)
    headers = dict(request.headers.items())
    headers["x-amz-meta-a"] = "2"
    answer = requests.put(request.url, data=b"abc", headers=headers, timeout=30)
    assert error_code(answer) == "SignatureDoesNotMatch", "a signed header changed in transit went unnoticed"
    assert s3_server.native("GET", f"/{bucket}/t?meta=1").status_code == 404, "the refused write stored an item"


def test_body_not_matching_its_signed_hash_stores_nothing(s3_server, bucket):
    answer = signed_request(s3_server, "PUT", f"/{bucket}/h", body=b"real body",
                            payload_hash="0" * 64)
    assert (answer.status_code, error_code(answer)) == (403, "SignatureDoesNotMatch") or \
        error_code(answer) == "XAmzContentSHA256Mismatch", answer.content
    assert s3_server.native("GET", f"/{bucket}/h?meta=1").status_code == 404, "a body that failed its hash was stored"


def test_request_time_far_off_is_request_time_too_skewed(s3_server, bucket, monkeypatch):
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=20)
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: past)
    answer = signed_request(s3_server, "GET", f"/{bucket}")
    assert (answer.status_code, error_code(answer)) == (403, "RequestTimeTooSkewed"), answer.content


def _presigned(server, path, expires, when=None):
    request = AWSRequest(method="GET", url=server.endpoint + path)
    if when is not None:
        import botocore.auth

        original = botocore.auth.get_current_datetime
        botocore.auth.get_current_datetime = lambda: when
    try:
        S3SigV4QueryAuth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", REGION, expires=expires).add_auth(request)
    finally:
        if when is not None:
            botocore.auth.get_current_datetime = original
    return request.url


def test_expired_presigned_url_is_access_denied(s3_server, bucket):
    two_hours_ago = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=2)
    answer = requests.get(_presigned(s3_server, f"/{bucket}", 3600, two_hours_ago), timeout=30)
    assert (answer.status_code, error_code(answer)) == (403, "AccessDenied"), answer.content
    assert b"expired" in answer.content, "the error does not say the URL expired"


def test_presigned_url_longer_than_a_week_is_refused(s3_server, bucket):
    answer = requests.get(_presigned(s3_server, f"/{bucket}", 8 * 24 * 3600), timeout=30)
    assert (answer.status_code, error_code(answer)) == (400, "AuthorizationQueryParametersError"), answer.content


def test_signature_version_2_is_refused_with_a_clear_error(s3_server, bucket):
    answer = requests.get(f"{s3_server.endpoint}/{bucket}", headers={"Authorization": "AWS key:signature"},
                          timeout=30)
    assert answer.status_code == 400 and b"Version 2" in answer.content, answer.content


def test_anonymous_write_is_access_denied(s3_server, bucket):
    answer = requests.put(f"{s3_server.endpoint}/{bucket}/anon", data=b"x", timeout=30)
    assert (answer.status_code, error_code(answer)) == (403, "AccessDenied"), answer.content


def test_anonymous_read_follows_public_read(s3_server, bucket, s3):
    s3.put_object(Bucket=bucket, Key="public.txt", Body=b"for everyone")
    answer = requests.get(f"{s3_server.endpoint}/{bucket}/public.txt", timeout=30)
    assert answer.content == b"for everyone", "an anonymous read of a public store was refused"


def test_garbage_authorization_header_is_a_client_error(s3_server, bucket):
    for header in ("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA256 Credential=a/b", "Bearer x", "AWS4-HMAC-SHA256 " + "=" * 5000):
        answer = requests.get(f"{s3_server.endpoint}/{bucket}", headers={"Authorization": header}, timeout=30)
        assert 400 <= answer.status_code < 500, f"{header[:40]!r} answered {answer.status_code}"
