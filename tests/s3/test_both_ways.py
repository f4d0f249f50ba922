"""One namespace, two doors: S3 writes read back natively, native uploads read back through S3."""
import hashlib
import io
import os

from PIL import Image


def png_bytes():
    out = io.BytesIO()
    Image.new("RGB", (40, 20), (200, 10, 10)).save(out, "PNG")
    return out.getvalue()


def test_s3_put_reads_back_natively(s3_server, s3, bucket):
    data = png_bytes()
    s3.put_object(Bucket=bucket, Key="img/red.png", Body=data, ContentType="image/png", Metadata={"tag": "red"})
    assert s3_server.native("GET", f"/{bucket}/img/red.png").content == data, "native GET differs from the S3 put"
    item = s3_server.native("GET", f"/{bucket}/img/red.png?meta=1").json()
    assert item["metadata"] == {"tag": "red"}, "x-amz-meta-* are not the item's metadata"
    assert item["_content"]["size"] == len(data) and item["_content"]["type"] == "image/png", item
    info = s3_server.native("GET", f"/{bucket}/img/red.png?apply=info").json()
    assert (info["width"], info["height"]) == (40, 20), "?apply= does not see the S3 upload"


def test_native_upload_reads_back_through_s3(s3_server, s3, bucket):
    data = b"uploaded natively" * 100
    answer = s3_server.native("PUT", f"/{bucket}/native.bin", data=data,
                              headers={"Content-Type": "application/x-native"})
    assert answer.status_code == 201, answer.content
    s3_server.native("POST", f"/{bucket}/native.bin", data={"metadata": '{"label": "n", "count": 3}'})
    head = s3.head_object(Bucket=bucket, Key="native.bin")
    assert head["ETag"] == f'"{hashlib.md5(data).hexdigest()}"', "a native upload has no MD5 ETag through S3"
    assert (head["ContentLength"], head["ContentType"]) == (len(data), "application/x-native"), head
    assert head["Metadata"] == {"label": "n"}, "string members are x-amz-meta-*, other JSON values are not"
    assert s3.get_object(Bucket=bucket, Key="native.bin")["Body"].read() == data, "S3 GET differs"


def test_s3_writes_record_their_owner(s3_server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="owned", Body=b"x")
    listing = s3.list_objects_v2(Bucket=bucket, FetchOwner=True)
    assert listing["Contents"][0]["Owner"] == {"ID": "alice", "DisplayName": "alice"}, listing["Contents"][0]


def test_native_token_writes_record_their_owner(s3_server, s3, bucket):
    s3_server.native("PUT", f"/{bucket}/by-token", data=b"x", headers={"Content-Type": "application/x-a"})
    owner = s3.list_objects(Bucket=bucket)["Contents"][0]["Owner"]
    assert owner["DisplayName"] == "alice", "a token write does not record its user"


def test_item_without_content_is_a_zero_byte_object(s3_server, s3, bucket):
    s3_server.native("POST", f"/{bucket}/only-meta", data={"metadata": '{"k": "v"}'})
    answer = s3.get_object(Bucket=bucket, Key="only-meta")
    assert answer["Body"].read() == b"" and answer["Metadata"] == {"k": "v"}, answer


def test_large_native_uploads_read_back_through_s3_with_their_md5(s3_server, s3, bucket):
    """Raw and multipart uploads past the in-memory limit, in several 1 MiB blocks and an odd tail:
    the digests computed as the bytes arrive (the MD5 on a helper thread) are those of the bytes."""
    data = os.urandom(5 * 1024 * 1024 + 12345)
    raw = s3_server.native("PUT", f"/{bucket}/big/raw.bin", data=data,
                           headers={"Content-Type": "application/octet-stream"})
    form = s3_server.native("POST", f"/{bucket}/big/form.bin", files={"file": ("form.bin", data)})
    assert (raw.status_code, form.status_code) == (201, 201), (raw.content, form.content)
    for key, answer in (("big/raw.bin", raw), ("big/form.bin", form)):
        assert answer.json()["_content"]["etag"] == hashlib.sha256(data).hexdigest(), f"{key}: wrong SHA-256"
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ETag"] == f'"{hashlib.md5(data).hexdigest()}"', f"{key}: S3 ETag is not the bytes' MD5"
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data, f"{key}: S3 GET differs"
