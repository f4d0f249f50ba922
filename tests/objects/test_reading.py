"""The read pipeline: uploads, processing through the derivative cache, remote storage (§4, §6, §7)."""
import hashlib
import io

import pytest
from PIL import Image

from objects import cache as shared_cache
from objects import content as content_store
from tests.conftest import body
from tests.objects.conftest import content
from tests.objects.test_cache import fake_op, runs  # noqa: F401 - fixtures

PAYLOAD = bytes(range(256)) * 64


def png(width=64, height=32):
    out = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(out, "PNG")
    return out.getvalue()


def test_uploaded_content_is_served_as_before(api):
    api.upload("/r/blob.bin", PAYLOAD, content_type="application/octet-stream")
    response = api.get("/r/blob.bin")
    assert content(response) == PAYLOAD
    assert response["ETag"] == f'"{hashlib.sha256(PAYLOAD).hexdigest()}"'
    assert response["X-Content-Type-Options"] == "nosniff"
    ranged = api.get("/r/blob.bin", HTTP_RANGE="bytes=0-9")
    assert ranged.status_code == 206 and content(ranged) == PAYLOAD[:10]
    assert api.get("/r/blob.bin", HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304


def test_metadata_only_key_is_404_no_content(api):
    api.post("/r/meta-only", {"a": 1})
    response = api.get("/r/meta-only")
    assert response.status_code == 404
    assert body(response)["error"] == "no_content"


def test_derivative_is_computed_once_and_served_with_validators(api, runs):
    api.upload("/r/img.bin", PAYLOAD, content_type="application/octet-stream")
    first = api.get("/r/img.bin", "apply=fake")
    second = api.get("/r/img.bin", "apply=fake")
    assert first.status_code == second.status_code == 200
    assert content(first) == content(second) == b"processed:" + PAYLOAD[:16]
    assert first["Content-Type"] == "text/x-processed"
    assert len(runs) == 1, "the second request must come from the derivative cache"
    etag = first["ETag"]
    assert etag == second["ETag"] and etag.startswith('"'), "a strong, stable ETag"
    assert first["Cache-Control"]
    assert api.get("/r/img.bin", "apply=fake", HTTP_IF_NONE_MATCH=etag).status_code == 304


def test_range_is_not_applied_to_processed_results(api, runs):
    api.upload("/r/img.bin", PAYLOAD, content_type="application/octet-stream")
    response = api.get("/r/img.bin", "apply=fake", HTTP_RANGE="bytes=0-3")
    assert response.status_code == 200
    assert content(response) == b"processed:" + PAYLOAD[:16]


def test_head_of_a_derivative(api, runs):
    api.upload("/r/img.bin", PAYLOAD, content_type="application/octet-stream")
    response = api.head("/r/img.bin", "apply=fake")
    assert response.status_code == 200
    assert response["Content-Length"] == str(len(b"processed:") + 16)


def test_new_upload_gives_a_new_derivative(api, runs):
    api.upload("/r/img.bin", PAYLOAD, content_type="application/octet-stream")
    first = api.get("/r/img.bin", "apply=fake")
    api.upload("/r/img.bin", b"Z" * 100, content_type="application/octet-stream")
    second = api.get("/r/img.bin", "apply=fake")
    assert content(second) == b"processed:" + b"Z" * 16
    assert first["ETag"] != second["ETag"]
    assert len(runs) == 2


def test_changed_http_source_gives_a_new_derivative(api, origin, runs):
    url = origin.add("/v.bin", b"A" * 100, etag='"1"')
    key = f"/r/{url}"
    api.post(key, {})
    assert content(api.get(key, "apply=fake")) == b"processed:" + b"A" * 16
    assert content(api.get(key, "apply=fake")) == b"processed:" + b"A" * 16
    assert len(runs) == 1, "a revalidated (304) source keeps its derivative"
    origin.add("/v.bin", b"B" * 100, etag='"2"')
    assert content(api.get(key, "apply=fake")) == b"processed:" + b"B" * 16
    assert len(runs) == 2


def test_real_resize_on_uploaded_content(api):
    api.upload("/r/pic.png", png(), content_type="image/png")
    response = api.get("/r/pic.png", "apply=resize&w=32")
    assert response.status_code == 200, body(response)
    assert response["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(content(response))).size == (32, 16)


def test_bad_parameter_is_400_before_fetching(api, origin):
    url = origin.add("/p.png", png())
    key = f"/r/{url}"
    api.post(key, {})
    response = api.get(key, "apply=resize&w=-5")
    assert response.status_code == 400
    assert "w" in body(response)["detail"]
    assert origin.count["/p.png"] == 0, "parameters are validated before the source is fetched"


def test_unknown_operation_is_400(api):
    api.upload("/r/pic.png", png(), content_type="image/png")
    assert api.get("/r/pic.png", "apply=explode").status_code == 400


def test_not_an_image_is_415_and_not_cached(api):
    api.upload("/r/text.txt", b"just text", content_type="text/plain")
    assert api.get("/r/text.txt", "apply=resize&w=10").status_code == 415
    assert not [k for k in shared_cache.get_cache().disk.iterkeys() if k.startswith("drv:")]


def test_remote_storage_is_copied_locally_once_before_processing(api, runs, monkeypatch, settings):
    api.upload("/r/remote.bin", PAYLOAD, content_type="application/octet-stream")
    opened = []
    real_open = content_store.open_content

    def remote_open(name):
        opened.append(name)
        return real_open(name)

    monkeypatch.setattr(content_store, "local_path", lambda name: None)  # as with S3
    monkeypatch.setattr(content_store, "open_content", remote_open)
    assert content(api.get("/r/remote.bin", "apply=fake")) == b"processed:" + PAYLOAD[:16]
    assert content(api.get("/r/remote.bin", "apply=fake2")) == b"processed:" + PAYLOAD[:16]
    assert len(opened) == 1, "the remote content is copied into the cache once"
    assert all(path.startswith(str(settings.ISTORE_CACHE_DIR)) for path in runs)
    assert content(api.get("/r/remote.bin")) == PAYLOAD, "unprocessed reads still stream from storage"


def test_forgotten_content_drops_its_local_copy(api, runs, monkeypatch, django_capture_on_commit_callbacks):
    api.upload("/r/remote.bin", PAYLOAD, content_type="application/octet-stream")
    monkeypatch.setattr(content_store, "local_path", lambda name: None)
    api.get("/r/remote.bin", "apply=fake")
    cache = shared_cache.get_cache()
    copies = [k for k in cache.disk.iterkeys() if k.startswith("upload:")]
    assert len(copies) == 1
    with django_capture_on_commit_callbacks(execute=True):
        api.upload("/r/remote.bin", b"new", content_type="application/octet-stream")
    assert copies[0] not in cache


@pytest.mark.parametrize("query", ["apply=fake", ""])
def test_http_derivative_and_plain_read_share_one_fetch(api, origin, runs, query):
    url = origin.add("/s.bin", PAYLOAD, headers={"Cache-Control": "max-age=60"})
    key = f"/r/{url}"
    api.post(key, {})
    api.get(key, query)
    api.get(key, "apply=fake")
    assert origin.count["/s.bin"] == 1
