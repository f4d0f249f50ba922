"""Uploaded content: the object-store half (§3, §4)."""
import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from objects.models import Item
from tests.conftest import body

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000185d4b3b10000000049454e44ae426082")
PAYLOAD = bytes(range(256)) * 64


def content(response):
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_raw_put_round_trips_bytes(api):
    created = api.upload("/files/blob.bin", PAYLOAD, content_type="application/octet-stream")
    assert created.status_code == 201
    fetched = api.get("/files/blob.bin")
    assert fetched.status_code == 200
    assert content(fetched) == PAYLOAD, "uploaded bytes must come back byte for byte"
    assert fetched["Content-Length"] == str(len(PAYLOAD))
    assert fetched["ETag"] == f'"{hashlib.sha256(PAYLOAD).hexdigest()}"'


def test_raw_upload_without_type_is_sniffed(api):
    api.upload("/files/pixel", PNG)
    assert api.get("/files/pixel")["Content-Type"] == "image/png", "type must be sniffed from the bytes"


def test_raw_upload_without_type_uses_extension_when_bytes_say_nothing(api):
    api.upload("/files/notes.txt", b"just words\n")
    assert api.get("/files/notes.txt")["Content-Type"].startswith("text/plain")


def test_raw_put_sets_metadata_to_empty(api):
    api.post("/files/doc", {"a": 1})
    assert body(api.upload("/files/doc", b"data", content_type="text/plain"))["metadata"] == {}


def test_multipart_post_replaces_content_and_merges_metadata(api, client):
    api.post("/files/mp", {"a": 1})
    upload = SimpleUploadedFile("cat.png", PNG, content_type="image/png")
    response = client.post("/files/mp", {"file": upload, "metadata": '{"b": 2}'})
    assert response.status_code == 200
    assert body(response)["metadata"] == {"a": 1, "b": 2}
    assert content(api.get("/files/mp")) == PNG


def test_metadata_only_write_keeps_content(api):
    api.upload("/files/keep", b"payload", content_type="text/plain")
    api.put("/files/keep", {"x": 1})
    assert content(api.get("/files/keep")) == b"payload"


def test_new_upload_replaces_the_blob(api, tmp_path, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        api.upload("/files/v", b"one", content_type="text/plain")
        api.upload("/files/v", b"two", content_type="text/plain")
    assert content(api.get("/files/v")) == b"two"
    blobs = [p for p in (tmp_path / "content").rglob("*") if p.is_file()]
    assert len(blobs) == 1, "the previous version's blob must be deleted"


def test_upload_to_a_source_key_is_refused(api):
    response = api.upload("/files/http://example.com/x.jpg", PNG, content_type="image/png")
    assert response.status_code == 400
    assert body(response)["error"] == "key_has_source"
    assert not Item.objects.exists()


def test_upload_to_a_directory_is_refused(api):
    assert api.upload("/files/dir/", PNG, content_type="image/png").status_code == 400


def test_upload_over_the_limit_is_413_and_keeps_previous(api, settings):
    api.upload("/files/limited", b"small", content_type="text/plain")
    settings.ISTORE_MAX_UPLOAD_BYTES = 10
    response = api.upload("/files/limited", b"x" * 100, content_type="text/plain")
    assert response.status_code == 413
    settings.ISTORE_MAX_UPLOAD_BYTES = 1000
    assert content(api.get("/files/limited")) == b"small", "a refused upload must leave the old content"


def test_multipart_upload_over_the_limit_is_413(api, client, settings):
    settings.ISTORE_MAX_UPLOAD_BYTES = 10
    response = client.post("/files/mp-big", {"file": SimpleUploadedFile("b", b"x" * 100)})
    assert response.status_code == 413
    assert not Item.objects.exists()


def test_key_without_content_is_404(api):
    api.post("/files/meta-only", {"a": 1})
    response = api.get("/files/meta-only")
    assert response.status_code == 404
    assert body(response)["error"] == "no_content"


def test_if_none_match_gives_304(api):
    api.upload("/files/c", PAYLOAD, content_type="application/octet-stream")
    etag = api.get("/files/c")["ETag"]
    assert api.get("/files/c", HTTP_IF_NONE_MATCH=etag).status_code == 304


def test_if_modified_since_gives_304(api):
    api.upload("/files/c", PAYLOAD, content_type="application/octet-stream")
    modified = api.get("/files/c")["Last-Modified"]
    assert api.get("/files/c", HTTP_IF_MODIFIED_SINCE=modified).status_code == 304


@pytest.mark.parametrize("header, span", [("bytes=0-9", (0, 9)), ("bytes=100-", (100, len(PAYLOAD) - 1)),
                                          ("bytes=-5", (len(PAYLOAD) - 5, len(PAYLOAD) - 1))])
def test_range_gives_206(api, header, span):
    api.upload("/files/r", PAYLOAD, content_type="application/octet-stream")
    response = api.get("/files/r", HTTP_RANGE=header)
    assert response.status_code == 206
    assert content(response) == PAYLOAD[span[0]: span[1] + 1]
    assert response["Content-Range"] == f"bytes {span[0]}-{span[1]}/{len(PAYLOAD)}"


def test_unsatisfiable_range_is_416(api):
    api.upload("/files/r", b"abc", content_type="application/octet-stream")
    response = api.get("/files/r", HTTP_RANGE="bytes=10-20")
    assert response.status_code == 416
    assert response["Content-Range"] == "bytes */3"


def test_head_has_headers_and_no_body(api):
    api.upload("/files/h", PAYLOAD, content_type="application/octet-stream")
    response = api.head("/files/h")
    assert response.status_code == 200
    assert response["Content-Length"] == str(len(PAYLOAD))
    assert content(response) == b""


def test_html_content_is_sandboxed(api):
    api.upload("/files/page.html", b"<script>alert(1)</script>", content_type="text/html")
    response = api.get("/files/page.html")
    assert response["Content-Security-Policy"] == "sandbox"
    assert response["Content-Disposition"] == "attachment"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_delete_removes_the_blob(api, tmp_path, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        api.upload("/files/gone", b"bytes", content_type="text/plain")
        api.delete("/files/gone")
    assert not [p for p in (tmp_path / "content").rglob("*") if p.is_file()], "blob must be deleted with its key"
