"""Multipart uploads through the low-level calls: parts, listing, order, sizes, abort, copy, partNumber reads."""
import hashlib
import os

import botocore.exceptions
import pytest

MiB = 1024 * 1024


def code_of(call, **kwargs):
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        call(**kwargs)
    return raised.value.response["Error"]["Code"]


@pytest.fixture
def upload(s3, bucket):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp.bin", Metadata={"m": "1"},
                                           ContentType="application/x-mp")["UploadId"]
    return bucket, upload_id


def put_part(s3, bucket, upload_id, number, data):
    return s3.upload_part(Bucket=bucket, Key="mp.bin", UploadId=upload_id, PartNumber=number, Body=data)["ETag"]


def test_complete_assembles_parts_in_order_with_s3s_etag(s3_server, s3, upload):
    bucket, upload_id = upload
    parts = [os.urandom(5 * MiB), os.urandom(MiB)]
    etags = [put_part(s3, bucket, upload_id, n + 1, data) for n, data in enumerate(parts)]
    listed = s3.list_parts(Bucket=bucket, Key="mp.bin", UploadId=upload_id)["Parts"]
    assert [part["Size"] for part in listed] == [5 * MiB, MiB], "ListParts does not show the parts"
    done = s3.complete_multipart_upload(Bucket=bucket, Key="mp.bin", UploadId=upload_id, MultipartUpload={
        "Parts": [{"PartNumber": n + 1, "ETag": etag} for n, etag in enumerate(etags)]})
    expected = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + "-2"
    assert done["ETag"] == f'"{expected}"', "the multipart ETag is not MD5 of the part MD5s, then -2"
    answer = s3.get_object(Bucket=bucket, Key="mp.bin")
    assert answer["Body"].read() == b"".join(parts), "the assembled object differs from its parts"
    assert answer["Metadata"] == {"m": "1"} and answer["ContentType"] == "application/x-mp", answer
    second = s3.get_object(Bucket=bucket, Key="mp.bin", PartNumber=2)
    assert second["Body"].read() == parts[1] and second["PartsCount"] == 2, "partNumber=2 is not the second part"
    assert s3_server.blobs("multipart") == [], "parts were left in storage after completion"


def test_parts_out_of_order_are_invalid_part_order(s3, upload):
    bucket, upload_id = upload
    etag = put_part(s3, bucket, upload_id, 1, b"x")
    assert code_of(s3.complete_multipart_upload, Bucket=bucket, Key="mp.bin", UploadId=upload_id,
                   MultipartUpload={"Parts": [{"PartNumber": 2, "ETag": etag}, {"PartNumber": 1, "ETag": etag}]}
                   ) == "InvalidPartOrder"


def test_small_part_before_the_last_is_entity_too_small(s3, upload):
    bucket, upload_id = upload
    etags = [put_part(s3, bucket, upload_id, n, b"small") for n in (1, 2)]
    assert code_of(s3.complete_multipart_upload, Bucket=bucket, Key="mp.bin", UploadId=upload_id,
                   MultipartUpload={"Parts": [{"PartNumber": n + 1, "ETag": e} for n, e in enumerate(etags)]}
                   ) == "EntityTooSmall"


def test_unknown_part_is_invalid_part(s3, upload):
    bucket, upload_id = upload
    put_part(s3, bucket, upload_id, 1, b"x")
    assert code_of(s3.complete_multipart_upload, Bucket=bucket, Key="mp.bin", UploadId=upload_id,
                   MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"0000"'}]}) == "InvalidPart"


def test_abort_deletes_the_upload_and_its_parts(s3_server, s3, upload):
    bucket, upload_id = upload
    put_part(s3, bucket, upload_id, 1, b"x" * 1000)
    s3.abort_multipart_upload(Bucket=bucket, Key="mp.bin", UploadId=upload_id)
    assert code_of(s3.list_parts, Bucket=bucket, Key="mp.bin", UploadId=upload_id) == "NoSuchUpload"
    listed = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert upload_id not in [entry["UploadId"] for entry in listed], "an aborted upload is still listed"


def test_list_multipart_uploads_shows_uploads_in_progress(s3, upload):
    bucket, upload_id = upload
    listed = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [(entry["Key"], entry["UploadId"]) for entry in listed] == [("mp.bin", upload_id)], listed


def test_upload_part_copy_copies_a_range(s3, upload):
    bucket, upload_id = upload
    s3.put_object(Bucket=bucket, Key="src", Body=b"0123456789")
    copied = s3.upload_part_copy(Bucket=bucket, Key="mp.bin", UploadId=upload_id, PartNumber=1,
                                 CopySource={"Bucket": bucket, "Key": "src"}, CopySourceRange="bytes=2-5")
    s3.complete_multipart_upload(Bucket=bucket, Key="mp.bin", UploadId=upload_id, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": copied["CopyPartResult"]["ETag"]}]})
    assert s3.get_object(Bucket=bucket, Key="mp.bin")["Body"].read() == b"2345", "the copied range is wrong"


def test_part_checksums_become_a_composite_checksum(s3, bucket):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp.bin", ChecksumAlgorithm="CRC32C")["UploadId"]
    answer = s3.upload_part(Bucket=bucket, Key="mp.bin", UploadId=upload_id, PartNumber=1, Body=b"abc",
                            ChecksumAlgorithm="CRC32C")
    s3.complete_multipart_upload(Bucket=bucket, Key="mp.bin", UploadId=upload_id, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": answer["ETag"], "ChecksumCRC32C": answer["ChecksumCRC32C"]}]})
    head = s3.head_object(Bucket=bucket, Key="mp.bin", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32C"].endswith("-1"), f"no composite CRC32C: {head.get('ChecksumCRC32C')}"


def test_a_repeated_complete_gets_the_same_answer(s3, upload):
    bucket, upload_id = upload
    etag = put_part(s3, bucket, upload_id, 1, b"once")
    parts = {"Parts": [{"PartNumber": 1, "ETag": etag}]}
    first = s3.complete_multipart_upload(Bucket=bucket, Key="mp.bin", UploadId=upload_id, MultipartUpload=parts)
    again = s3.complete_multipart_upload(Bucket=bucket, Key="mp.bin", UploadId=upload_id, MultipartUpload=parts)
    assert again["ETag"] == first["ETag"], "a retried completion did not answer as the first"
    assert code_of(s3.list_parts, Bucket=bucket, Key="mp.bin", UploadId=upload_id) == "NoSuchUpload"


def test_a_repeated_complete_repeats_the_checksum(s3, bucket):
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="mp.bin", ChecksumAlgorithm="SHA256")["UploadId"]
    answer = s3.upload_part(Bucket=bucket, Key="mp.bin", UploadId=upload_id, PartNumber=1, Body=b"abc",
                            ChecksumAlgorithm="SHA256")
    parts = {"Parts": [{"PartNumber": 1, "ETag": answer["ETag"], "ChecksumSHA256": answer["ChecksumSHA256"]}]}
    first = s3.complete_multipart_upload(Bucket=bucket, Key="mp.bin", UploadId=upload_id, MultipartUpload=parts)
    again = s3.complete_multipart_upload(Bucket=bucket, Key="mp.bin", UploadId=upload_id, MultipartUpload=parts)
    assert again.get("ChecksumSHA256") == first["ChecksumSHA256"], "a retried completion lost the checksum"


def test_complete_honours_if_none_match(s3, bucket, upload):
    s3.put_object(Bucket=bucket, Key="mp.bin", Body=b"before")
    _, upload_id = upload
    parts = {"Parts": [{"PartNumber": 1, "ETag": put_part(s3, bucket, upload_id, 1, b"after")}]}
    assert code_of(s3.complete_multipart_upload, Bucket=bucket, Key="mp.bin", UploadId=upload_id,
                   MultipartUpload=parts, IfNoneMatch="*") == "PreconditionFailed"
    assert s3.get_object(Bucket=bucket, Key="mp.bin")["Body"].read() == b"before", "a refused completion wrote"


def test_complete_honours_if_match(s3, bucket, upload):
    _, upload_id = upload
    parts = {"Parts": [{"PartNumber": 1, "ETag": put_part(s3, bucket, upload_id, 1, b"after")}]}
    assert code_of(s3.complete_multipart_upload, Bucket=bucket, Key="mp.bin", UploadId=upload_id,
                   MultipartUpload=parts, IfMatch="*") == "NoSuchKey", "If-Match on a missing key did not refuse"


def test_copy_range_past_the_source_is_invalid_range(s3, upload):
    bucket, upload_id = upload
    s3.put_object(Bucket=bucket, Key="src", Body=b"01234")
    assert code_of(s3.upload_part_copy, Bucket=bucket, Key="mp.bin", UploadId=upload_id, PartNumber=1,
                   CopySource={"Bucket": bucket, "Key": "src"}, CopySourceRange="bytes=0-21") == "InvalidRange"
