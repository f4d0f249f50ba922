"""boto3, the AWS SDK for Python, against the S3 listener of a real server."""
import hashlib
import os

import pytest
import requests
from boto3.s3.transfer import TransferConfig

MiB = 1024 * 1024


def test_upload_file_in_parts_downloads_byte_identical(s3, bucket, tmp_path):
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(11 * MiB))
    config = TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB)
    s3.upload_file(str(source), bucket, "dir/big.bin", Config=config)
    head = s3.head_object(Bucket=bucket, Key="dir/big.bin")
    assert head["ETag"].strip('"').endswith("-3"), f"a three-part upload has a multipart ETag, not {head['ETag']}"
    target = tmp_path / "back.bin"
    s3.download_file(bucket, "dir/big.bin", str(target), Config=config)
    assert target.read_bytes() == source.read_bytes(), "the object read back differs from the file uploaded"


def test_put_object_etag_is_the_md5_of_the_bytes(s3, bucket):
    answer = s3.put_object(Bucket=bucket, Key="a.txt", Body=b"hello")
    assert answer["ETag"] == f'"{hashlib.md5(b"hello").hexdigest()}"', "single-part ETag is not the quoted MD5"


def test_list_objects_v2_paginator_walks_more_than_a_thousand_keys(s3_server, s3, bucket):
    from tests.servers import manage

    manage("shell", "-c", "from objects import writing; writing.upsert_many("
           f"[(f'/{bucket}/k/{{i:05d}}', {{}}) for i in range(1105)])", env=s3_server.env)
    pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="k/"))
    listed = [entry["Key"] for page in pages for entry in page.get("Contents", [])]
    assert len(pages) == 2, f"1105 keys are two pages of at most 1000, not {len(pages)}"
    assert listed == [f"k/{i:05d}" for i in range(1105)], "the paginator did not see every key once, in order"


def test_copy_object_within_and_across_buckets(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src.txt", Body=b"copied bytes", Metadata={"color": "red"})
    other = bucket + "-2"
    s3.create_bucket(Bucket=other)
    s3.copy({"Bucket": bucket, "Key": "src.txt"}, other, "dst.txt")
    s3.copy_object(Bucket=bucket, Key="same.txt", CopySource={"Bucket": bucket, "Key": "src.txt"})
    for name, key in ((other, "dst.txt"), (bucket, "same.txt")):
        answer = s3.get_object(Bucket=name, Key=key)
        assert answer["Body"].read() == b"copied bytes", f"{name}/{key} does not hold the copied bytes"
        assert answer["Metadata"] == {"color": "red"}, "COPY directive did not copy the metadata"


def test_delete_objects_removes_every_named_key(s3, bucket):
    for key in ("a", "b", "c"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a"}, {"Key": "b"}, {"Key": "none"}]})
    assert sorted(entry["Key"] for entry in answer["Deleted"]) == ["a", "b", "none"], "not every key was deleted"
    left = [entry["Key"] for entry in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert left == ["c"], f"only c should remain, not {left}"


def test_presigned_get_and_put(s3, bucket):
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "p.bin"}, ExpiresIn=300)
    assert requests.put(put_url, data=b"presigned body", timeout=30).status_code == 200, "presigned PUT refused"
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p.bin"}, ExpiresIn=300)
    answer = requests.get(get_url, timeout=30)
    assert answer.content == b"presigned body", f"presigned GET answered {answer.status_code}"


def test_presigned_url_with_a_wrong_signature_is_refused(s3, bucket):
    s3.put_object(Bucket=bucket, Key="p", Body=b"x")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p"})
    answer = requests.get(url[:-4] + "0000", timeout=30)
    assert answer.status_code == 403 and b"SignatureDoesNotMatch" in answer.content, "a forged URL was served"


def test_missing_key_raises_no_such_key(s3, bucket):
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket=bucket, Key="missing")


def test_writing_into_a_missing_bucket_is_no_such_bucket(s3):
    with pytest.raises(s3.exceptions.NoSuchBucket):
        s3.put_object(Bucket="no-such-bucket-here", Key="a", Body=b"x")
