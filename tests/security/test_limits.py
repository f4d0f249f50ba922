"""
Request size limits (issue 9 §5) and errors that show nothing of the server.

- metadata over ``ISTORE_MAX_METADATA_BYTES``: 400 ``metadata_too_large``,
  whatever the body's form, and when a merge grows it past the limit;
- content over ``ISTORE_MAX_UPLOAD_BYTES``: 413 ``upload_too_large``, raw or
  multipart, with the previous content kept and no blob left behind;
- a form or JSON body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (4 MiB; bodies are
  parsed in memory): 413 ``body_too_large``; a verb body: 400; too many
  fields or files: 400; every answer JSON;
- with ``DEBUG`` off, no error body (a 500 included) carries a traceback, a
  local path or the secret key.
"""
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from objects.models import Item
from tests.conftest import body, url
from tests.security import conftest as media
from tests.security.conftest import MiB, content_files


def error_of(response, status):
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"] == "application/json"
    data = json.loads(response.content)
    assert set(data) == {"error", "detail"}
    return data["error"]


# ---------------------------------------------------------------- metadata


@pytest.fixture
def small_metadata(settings):
    settings.ISTORE_MAX_METADATA_BYTES = 1000
    return 1000


def metadata_of(size):
    """A metadata object whose compact JSON is exactly ``size`` bytes."""
    overhead = len(json.dumps({"x": ""}, separators=(",", ":")))
    return {"x": "a" * (size - overhead)}


@pytest.mark.parametrize("form", ["urlencoded", "json", "multipart"])
def test_metadata_over_the_limit_is_400_and_writes_nothing(api, small_metadata, form):
    metadata = json.dumps(metadata_of(small_metadata + 1))
    client = api.client
    if form == "urlencoded":
        response = client.post(url("/lim/m"), {"metadata": metadata})
    elif form == "json":
        response = client.post(url("/lim/m"), f'{{"metadata": {metadata}}}', content_type="application/json")
    else:
        response = client.post(url("/lim/m"), {"metadata": metadata,
                                               "file": SimpleUploadedFile("a.png", media.png(), "image/png")})
    assert error_of(response, 400) == "metadata_too_large"
    assert not Item.objects.exists()


def test_metadata_at_the_limit_is_accepted(api, small_metadata):
    assert api.post("/lim/m", metadata_of(small_metadata)).status_code == 201


def test_a_merge_that_grows_past_the_limit_is_400_and_keeps_the_old_metadata(api, small_metadata):
    assert api.post("/lim/m", {"a": "x" * 600}).status_code == 201
    assert error_of(api.post("/lim/m", {"b": "y" * 600}), 400) == "metadata_too_large"
    assert body(api.meta("/lim/m"))["metadata"] == {"a": "x" * 600}


def test_default_metadata_limit_is_one_mebibyte(settings):
    assert settings.ISTORE_MAX_METADATA_BYTES == 1 * MiB


# ---------------------------------------------------------------- uploads


@pytest.fixture
def small_uploads(settings):
    settings.ISTORE_MAX_UPLOAD_BYTES = 1000
    return 1000


@pytest.fixture
def existing(api):
    """A key with 10 bytes of content, to prove a refused upload keeps it."""
    assert api.upload("/lim/u", b"0123456789", content_type="text/plain").status_code == 201
    return b"0123456789"


def assert_unchanged(api, settings, old, files_before):
    response = api.get("/lim/u")
    assert response.status_code == 200 and b"".join(response.streaming_content) == old
    assert content_files(settings) == files_before, "the refused upload left a blob behind"


def test_raw_upload_over_the_limit_is_413(api, settings, small_uploads, existing):
    before = content_files(settings)
    response = api.upload("/lim/u", b"x" * (small_uploads + 1), content_type="application/octet-stream")
    assert error_of(response, 413) == "upload_too_large"
    assert_unchanged(api, settings, existing, before)


def test_raw_upload_over_the_limit_without_a_type_is_413(api, settings, small_uploads, existing):
    before = content_files(settings)
    response = api.upload("/lim/u", b"x" * (small_uploads * 5))
    assert error_of(response, 413) == "upload_too_large"
    assert_unchanged(api, settings, existing, before)


def test_multipart_upload_over_the_limit_is_413(api, settings, small_uploads, existing):
    before = content_files(settings)
    response = api.client.post(url("/lim/u"), {
        "file": SimpleUploadedFile("big.bin", b"x" * (small_uploads + 1), "application/octet-stream"),
        "metadata": '{"a": 1}'})
    assert error_of(response, 413) == "upload_too_large"
    assert_unchanged(api, settings, existing, before)
    assert body(api.meta("/lim/u"))["metadata"] == {}, "the metadata of a refused upload is not written"


def test_upload_at_the_limit_is_accepted(api, small_uploads):
    response = api.upload("/lim/exact", b"x" * small_uploads, content_type="application/octet-stream")
    assert response.status_code == 201
    assert body(response)["_content"]["size"] == small_uploads


def test_upload_declaring_more_than_the_limit_is_refused_before_reading(api, settings, small_uploads, existing):
    """A Content-Length over the limit is refused at once, without reading the body."""
    before = content_files(settings)
    response = api.client.put(url("/lim/u"), b"x" * 10, content_type="application/octet-stream",
                              CONTENT_LENGTH=str(10 * 1024**3))
    assert error_of(response, 413) == "upload_too_large"
    assert_unchanged(api, settings, existing, before)


def test_default_upload_limit_is_five_gibibytes(settings):
    assert settings.ISTORE_MAX_UPLOAD_BYTES == 5 * 1024**3


def chunked_put(api, key, data):
    """A PUT as gunicorn hands over a chunked request: no CONTENT_LENGTH, an input read to its end."""
    import io

    # gunicorn's de-chunked input returns short reads at its end, as BytesIO does.
    return api.client.put(url(key), b"", content_type="application/octet-stream", CONTENT_LENGTH="",
                          HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input": io.BytesIO(data),
                                                                "wsgi.input_terminated": True})


def test_chunked_upload_stores_every_byte(api):
    data = bytes(range(256)) * 40
    response = chunked_put(api, "/lim/chunked", data)
    assert response.status_code == 201
    assert body(response)["_content"]["size"] == len(data)


def test_chunked_upload_over_the_limit_is_413(api, settings, small_uploads):
    response = chunked_put(api, "/lim/chunked", b"x" * (small_uploads + 1))
    assert response.status_code == 413, (response.status_code, response.content[:200])


def test_chunked_upload_without_a_terminated_input_is_411(api):
    response = api.client.put(url("/lim/chunked"), b"", content_type="application/octet-stream",
                              CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked")
    assert error_of(response, 411) == "length_required"
    assert not Item.objects.exists()


# ---------------------------------------------------------------- bodies parsed in memory


def test_form_body_over_the_memory_limit_is_413(api, settings):
    text = json.dumps({"a": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)})
    response = api.client.post(url("/lim/f"), {"metadata": text})
    assert error_of(response, 413) == "body_too_large"
    assert not Item.objects.exists()


def test_json_body_over_the_memory_limit_is_413(api, settings):
    text = json.dumps({"metadata": {"a": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)}})
    response = api.client.post(url("/lim/j"), text, content_type="application/json")
    assert error_of(response, 413) == "body_too_large"
    assert not Item.objects.exists()


def test_verb_body_over_the_memory_limit_is_a_json_4xx(api, settings):
    vector = [1] * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 2)
    text = json.dumps({"similar": {"by": "v", "vector": vector}}, separators=(",", ":"))
    response = api.client.post("/lim/_search", text, content_type="application/json")
    assert response.status_code in (400, 413)
    error_of(response, response.status_code)


def test_too_many_form_fields_is_400(api, settings):
    fields = "&".join(f"f{index}=1" for index in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    response = api.client.post(url("/lim/f"), fields + "&metadata=%7B%7D",
                               content_type="application/x-www-form-urlencoded")
    assert error_of(response, 400) == "bad_form"
    assert not Item.objects.exists()


def test_too_many_files_is_400(api, settings):
    files = {f"f{index}": SimpleUploadedFile(f"{index}.txt", b"x") for index in
             range(settings.DATA_UPLOAD_MAX_NUMBER_FILES + 1)}
    response = api.client.post(url("/lim/f"), files)
    assert error_of(response, 400) == "bad_form"
    assert not Item.objects.exists()


def test_listing_page_size_is_bounded(api):
    assert error_of(api.get("/lim/", "limit=10001"), 400) == "invalid_listing"
    assert api.get("/lim/", "limit=10000").status_code == 200


def test_processing_output_size_is_bounded_before_any_work(api, settings):
    assert api.upload("/lim/a.png", media.png(), content_type="image/png").status_code == 201
    response = api.get("/lim/a.png", "apply=resize&w=10000&h=10000")
    assert error_of(response, 400) == "bad_request"
    assert "pixels" in json.loads(response.content)["detail"]


@pytest.mark.parametrize("depth", [900, 5000])
def test_deeply_nested_json_is_400(api, depth):
    client = api.client._client
    client.raise_request_exception = False
    nested = "[" * depth + "]" * depth
    for response in (client.post("/lim/deep", {"metadata": f'{{"a": {nested}}}'}),
                     client.post("/lim/deep", f'{{"metadata": {{"a": {nested}}}}}', content_type="application/json"),
                     client.post("/lim/_search", f'{{"similar": {{"by": "v", "vector": {nested}}}}}',
                                 content_type="application/json")):
        assert response.status_code == 400, (response.status_code, response.content[:200])
    assert not Item.objects.exists()


def test_nul_in_metadata_is_not_a_500(api):
    client = api.client._client
    client.raise_request_exception = False
    for text in ('{"a": "x\\u0000y"}', '{"\\u0000": 1}'):
        response = client.post("/lim/nul", {"metadata": text})
        assert response.status_code in (200, 201, 400), (response.status_code, response.content[:200])


def test_encoded_nul_in_a_file_source_is_400(api, settings, tmp_path):
    """``%00`` in the request is a NUL in the key (400); ``%2500`` is a NUL in the file path (400 too)."""
    settings.ISTORE_FILE_ROOTS = [str(tmp_path)]
    (tmp_path / "a.png").write_bytes(media.png())
    response = api.client.post(f"/lim/f/file://{tmp_path}/a.png%00.jpg", {"metadata": "{}"},
                               RAW_URI=f"/lim/f/file://{tmp_path}/a.png%00.jpg")
    assert error_of(response, 400) == "invalid_key"
    key = f"/lim/f/file://{tmp_path}/a.png%00.jpg"  # the key holds "%00": the file URL decodes it to NUL
    assert api.post(key, {}).status_code == 201
    assert error_of(api.get(key), 400) == "invalid_source_url"


# ---------------------------------------------------------------- nothing of the server in errors


def test_a_500_shows_no_traceback_path_or_secret(api, settings, monkeypatch):
    """Any unexpected exception is a bare JSON 500: nothing of the message, the stack or the settings."""
    from objects import views

    assert settings.DEBUG is False

    def explode(request, key):
        raise RuntimeError(f"boom {settings.SECRET_KEY} {settings.ISTORE_DATA_DIR} {__file__}")

    monkeypatch.setitem(views.HANDLERS, "GET", explode)
    client = api.client._client
    client.raise_request_exception = False
    response = client.get("/lim/anything")
    assert error_of(response, 500) == "server_error"
    text = response.content.decode()
    for secret in media.forbidden_texts(settings) + ["boom", "RuntimeError", ".py"]:
        assert secret not in text, secret


def test_errors_show_no_local_paths(api, settings, tmp_path):
    """Errors from the layers that touch files (processing, ffmpeg, file sources) name no local path."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    settings.ISTORE_FILE_ROOTS = [str(root)]
    assert api.upload("/lim/bad.png", b"\x89PNG\r\n\x1a\n garbage", content_type="image/png").status_code == 201
    assert api.post(f"/lim/f/file://{root}/bad.png", {}).status_code == 201
    assert api.post(f"/lim/f/file://{root}/missing.png", {}).status_code == 201
    responses = [api.get("/lim/bad.png", query) for query in ("apply=resize&w=5", "apply=info", "apply=frame&sec=1")]
    responses += [api.get(f"/lim/f/file://{root}/bad.png", "apply=resize&w=5"),
                  api.get(f"/lim/f/file://{root}/missing.png")]
    # The keys name the file root themselves, so echoing a key is fine: the storage,
    # the cache and the data directory are what must not show.
    forbidden = media.forbidden_texts(settings, strict=False)
    for response in responses:
        assert 400 <= response.status_code < 500, response.content[:200]
        detail = json.loads(response.content)["detail"]
        for text in forbidden:
            assert text not in detail, (text, detail)


@pytest.mark.parametrize("path", ["/_admin/nothing/here/", "/_nothing", "/lim/missing"])
def test_404s_are_json_without_debug_pages(client, db, path):
    response = client.get(path)
    assert response.status_code in (302, 404)
    if response.status_code == 404:
        assert response["Content-Type"] == "application/json"
        assert b"Traceback" not in response.content and b"urlpatterns" not in response.content.lower()
