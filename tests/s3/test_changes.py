"""Writes through the S3 protocol appear in the native change feed (GET {dir}/_changes)."""
import requests


def feed(server, bucket, since):
    response = requests.get(f"{server.base}/{bucket}/_changes?since={since}", timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_put_copy_multipart_and_deletes_appear_once_each(s3_server, s3, bucket):
    since = feed(s3_server, bucket, "now")["last_seq"]
    s3.put_object(Bucket=bucket, Key="a.txt", Body=b"a")
    s3.copy_object(Bucket=bucket, Key="b.txt", CopySource={"Bucket": bucket, "Key": "a.txt"})
    upload = s3.create_multipart_upload(Bucket=bucket, Key="big.bin")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="big.bin", UploadId=upload, PartNumber=1, Body=b"x" * 10)
    s3.complete_multipart_upload(Bucket=bucket, Key="big.bin", UploadId=upload,
                                 MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})
    s3.delete_object(Bucket=bucket, Key="a.txt")
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "b.txt"}, {"Key": "big.bin"}]})
    seen = [(change["op"], change["key"]) for change in feed(s3_server, bucket, since)["changes"]]
    prefix = f"/{bucket}/"
    assert seen == [("create", prefix + "a.txt"), ("create", prefix + "b.txt"), ("create", prefix + "big.bin"),
                    ("delete", prefix + "a.txt"), ("delete", prefix + "b.txt"), ("delete", prefix + "big.bin")], (
        "PutObject, CopyObject, CompleteMultipartUpload, DeleteObject and DeleteObjects each appear once, in order")
