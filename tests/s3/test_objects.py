"""GetObject, HeadObject, PutObject and DeleteObject: ranges, conditions, metadata, content headers, errors."""
import datetime
import hashlib

import botocore.exceptions
import pytest
import requests

from .conftest import error_code, signed_request


@pytest.fixture
def stored(s3, bucket):
    s3.put_object(Bucket=bucket, Key="obj.txt", Body=b"0123456789", ContentType="text/plain",
                  Metadata={"Color": "blue"}, ContentDisposition='attachment; filename="o.txt"',
                  CacheControl="max-age=60", ContentLanguage="fr")
    return bucket


def client_error(call, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        call(**kwargs)
    return raised.value.response["Error"]["Code"], raised.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_head_object_returns_size_type_metadata_and_content_headers(s3, stored):
    head = s3.head_object(Bucket=stored, Key="obj.txt")
    assert head["ContentLength"] == 10 and head["ContentType"] == "text/plain", head
    assert head["Metadata"] == {"color": "blue"}, "x-amz-meta-* names are lower-cased and returned"
    assert (head["ContentDisposition"], head["CacheControl"], head["ContentLanguage"]) == (
        'attachment; filename="o.txt"', "max-age=60", "fr"), "content headers given at upload are not returned"
    assert head["ETag"] == f'"{hashlib.md5(b"0123456789").hexdigest()}"', "ETag is not the MD5"


@pytest.mark.parametrize("header, body, content_range", [
    ("bytes=2-4", b"234", "bytes 2-4/10"),
    ("bytes=7-", b"789", "bytes 7-9/10"),
    ("bytes=-2", b"89", "bytes 8-9/10"),
    ("bytes=5-100", b"56789", "bytes 5-9/10"),
])
def test_range_reads(s3, stored, header, body, content_range):
    answer = s3.get_object(Bucket=stored, Key="obj.txt", Range=header)
    assert answer["Body"].read() == body and answer["ContentRange"] == content_range, header


def test_range_past_the_end_is_invalid_range(s3, stored):
    assert client_error(s3.get_object, Bucket=stored, Key="obj.txt", Range="bytes=10-20") == ("InvalidRange", 416)


def test_part_number_one_of_a_single_part_object_is_the_whole(s3, stored):
    answer = s3.get_object(Bucket=stored, Key="obj.txt", PartNumber=1)
    assert answer["Body"].read() == b"0123456789" and answer["PartsCount"] == 1, "partNumber=1 is the whole object"


def test_conditional_reads(s3, stored):
    etag = s3.head_object(Bucket=stored, Key="obj.txt")["ETag"]
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    earlier = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
    assert s3.get_object(Bucket=stored, Key="obj.txt", IfMatch=etag)["Body"].read() == b"0123456789"
    assert client_error(s3.get_object, Bucket=stored, Key="obj.txt", IfMatch='"nope"') == ("PreconditionFailed", 412)
    assert client_error(s3.get_object, Bucket=stored, Key="obj.txt", IfUnmodifiedSince=earlier)[1] == 412
    assert client_error(s3.get_object, Bucket=stored, Key="obj.txt", IfNoneMatch=etag)[1] == 304
    assert client_error(s3.get_object, Bucket=stored, Key="obj.txt", IfModifiedSince=later)[1] == 304


def test_response_overrides(s3, stored):
    answer = s3.get_object(Bucket=stored, Key="obj.txt", ResponseContentType="application/x-test",
                           ResponseContentDisposition="inline")
    assert (answer["ContentType"], answer["ContentDisposition"]) == ("application/x-test", "inline"), answer


def test_content_md5_mismatch_is_bad_digest_and_stores_nothing(s3_server, bucket):
    answer = signed_request(s3_server, "PUT", f"/{bucket}/m", body=b"abc",
                            headers={"Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg=="})
    assert (answer.status_code, error_code(answer)) == (400, "BadDigest"), answer.content
    assert s3_server.native("GET", f"/{bucket}/m?meta=1").status_code == 404, "a body with a bad MD5 was stored"


def test_put_replaces_metadata_with_its_headers(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"1", Metadata={"a": "1", "b": "2"})
    s3.put_object(Bucket=bucket, Key="k", Body=b"2", Metadata={"c": "3"})
    assert s3.head_object(Bucket=bucket, Key="k")["Metadata"] == {"c": "3"}, "PutObject merged metadata"


def test_put_if_none_match_star_refuses_to_overwrite(s3, bucket):
    s3.put_object(Bucket=bucket, Key="once", Body=b"1")
    assert client_error(s3.put_object, Bucket=bucket, Key="once", Body=b"2", IfNoneMatch="*")[1] == 412
    assert s3.get_object(Bucket=bucket, Key="once")["Body"].read() == b"1", "the refused put overwrote the object"


def test_put_if_none_match_etag_refuses_only_the_current_etag(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="once", Body=b"1")["ETag"]
    assert client_error(s3.put_object, Bucket=bucket, Key="once", Body=b"2", IfNoneMatch=etag)[1] == 412, \
        "If-None-Match with the current ETag did not refuse the write"
    s3.put_object(Bucket=bucket, Key="once", Body=b"3", IfNoneMatch='"another"')
    assert s3.get_object(Bucket=bucket, Key="once")["Body"].read() == b"3", "If-None-Match of another ETag refused"


def test_aws_chunked_in_content_encoding_of_a_plain_signed_put_is_dropped(s3, bucket):
    s3.put_object(Bucket=bucket, Key="gz", Body=b"plain bytes", ContentEncoding="gzip, aws-chunked")
    answer = s3.get_object(Bucket=bucket, Key="gz")
    assert answer["Body"].read() == b"plain bytes", "a plain body was decoded as aws-chunked framing"
    assert answer["ContentEncoding"] == "gzip", f"stored Content-Encoding {answer.get('ContentEncoding')!r}"


def test_utf8_metadata_header_is_signed_as_sent(s3, bucket):
    def raw_utf8_header(params, **kwargs):
        params["headers"]["x-amz-meta-word"] = "caf\u00e9"  # botocore sends and signs it as UTF-8 bytes

    s3.meta.events.register("before-call.s3.PutObject", raw_utf8_header)
    s3.put_object(Bucket=bucket, Key="utf8", Body=b"x")
    s3.meta.events.unregister("before-call.s3.PutObject", raw_utf8_header)
    stored = s3.get_object(Bucket=bucket, Key="utf8")["Metadata"]["word"]
    assert stored == "=?UTF-8?B?Y2Fmw6k=?=", f"UTF-8 metadata came back as {stored!r}"


def test_folder_object_is_zero_bytes(s3, bucket):
    s3.put_object(Bucket=bucket, Key="folder/", Body=b"")
    head = s3.head_object(Bucket=bucket, Key="folder/")
    assert head["ContentLength"] == 0 and head["ETag"] == f'"{hashlib.md5(b"").hexdigest()}"', head


def test_folder_key_with_bytes_is_invalid_argument(s3, bucket):
    assert client_error(s3.put_object, Bucket=bucket, Key="folder/", Body=b"bytes")[0] == "InvalidArgument"


def test_delete_object_is_idempotent(s3, bucket):
    s3.put_object(Bucket=bucket, Key="d", Body=b"1")
    for _ in range(2):
        assert s3.delete_object(Bucket=bucket, Key="d")["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert client_error(s3.head_object, Bucket=bucket, Key="d")[1] == 404


def test_reserved_and_source_keys_cannot_hold_content(s3, bucket):
    assert client_error(s3.put_object, Bucket=bucket, Key="dir/_search", Body=b"x")[0] == "InvalidArgument"
    assert client_error(s3.put_object, Bucket=bucket, Key="d/http://example.com/a.jpg", Body=b"x")[0] == \
        "InvalidArgument"


def test_key_past_istores_limit_is_key_too_long(s3, bucket):
    assert client_error(s3.put_object, Bucket=bucket, Key="k" * 5000, Body=b"x")[0] == "KeyTooLongError"


def test_unsupported_subresource_is_not_implemented(s3_server, bucket):
    answer = signed_request(s3_server, "GET", f"/{bucket}?acl")
    assert (answer.status_code, error_code(answer)) == (501, "NotImplemented"), answer.content


def test_get_object_answers_s3_headers_and_a_sandbox(s3_server, stored):
    answer = requests.get(f"{s3_server.endpoint}/{stored}/obj.txt", timeout=30)
    assert answer.headers["Content-Security-Policy"] == "sandbox", "served bytes may run script"
    assert answer.headers["x-amz-request-id"], "no request id"
