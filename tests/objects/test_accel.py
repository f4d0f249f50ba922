"""X-Accel-Redirect (issue 8 §5): cached bytes handed to nginx, with the headers istore would send itself."""
import io
import os
from urllib.parse import unquote

import pytest
from PIL import Image

from objects import cache as shared_cache
from tests.nginx import istore_behind_nginx
from tests.objects.conftest import content

LOCATION = "/_accel/"
SAME = ("Content-Type", "ETag", "Cache-Control", "Last-Modified", "X-Content-Type-Options",
        "Content-Security-Policy", "Content-Disposition")


def png(width=64, height=48):
    out = io.BytesIO()
    Image.effect_noise((width, height), 60).convert("RGB").save(out, "PNG")
    return out.getvalue()


def register(api, key):
    assert api.post(key, {}).status_code in (200, 201)
    return key


def accel_file(response):
    """The bytes of the cache file an X-Accel-Redirect response names."""
    target = response["X-Accel-Redirect"]
    assert target.startswith(LOCATION)
    relative = unquote(target[len(LOCATION):])
    directory = shared_cache.get_cache().directory
    path = (directory / relative).resolve()
    assert path.is_relative_to(directory.resolve()), "the target stays inside the cache directory"
    return path.read_bytes()


def headers(response):
    return {name: response.get(name) for name in SAME}


@pytest.fixture
def accel(settings):
    settings.ISTORE_ACCEL_REDIRECT = LOCATION
    return settings


@pytest.fixture
def source(api, origin):
    data = png()
    url = origin.add("/pic.png", data, headers={"Cache-Control": "max-age=3600", "Content-Type": "image/png",
                                                 "Last-Modified": "Tue, 01 Apr 2025 10:00:00 GMT"})
    return register(api, f"/ax/{url}"), data


def test_cached_source_is_handed_to_nginx(api, source, settings):
    key, data = source
    settings.ISTORE_ACCEL_REDIRECT = ""
    direct = api.get(key)
    settings.ISTORE_ACCEL_REDIRECT = LOCATION
    handed = api.get(key)
    assert handed.status_code == 200
    assert content(handed) == b"" and handed["Content-Length"] == "0"
    assert accel_file(handed) == data
    assert headers(handed) == headers(direct)
    assert handed["Last-Modified"] == "Tue, 01 Apr 2025 10:00:00 GMT"
    assert handed["Accept-Ranges"] == "bytes"


def test_cached_derivative_is_handed_to_nginx(api, source, settings):
    key, _ = source
    settings.ISTORE_ACCEL_REDIRECT = ""
    direct = api.get(key, "apply=resize&w=20")
    settings.ISTORE_ACCEL_REDIRECT = LOCATION
    handed = api.get(key, "apply=resize&w=20")
    assert handed.status_code == 200 and content(handed) == b""
    assert accel_file(handed) == content(direct)
    assert Image.open(io.BytesIO(accel_file(handed))).size == (20, 15)
    assert headers(handed) == headers(direct)
    assert "Accept-Ranges" not in handed


def test_first_computation_is_handed_to_nginx_too(api, source, accel):
    key, _ = source
    handed = api.get(key, "apply=resize&w=12")
    assert Image.open(io.BytesIO(accel_file(handed))).size == (12, 9)


def test_304_is_answered_by_istore(api, source, accel):
    key, _ = source
    etag = api.get(key)["ETag"]
    response = api.get(key, HTTP_IF_NONE_MATCH=etag)
    assert response.status_code == 304 and "X-Accel-Redirect" not in response
    processed_etag = api.get(key, "apply=resize&w=20")["ETag"]
    response = api.get(key, "apply=resize&w=20", HTTP_IF_NONE_MATCH=processed_etag)
    assert response.status_code == 304 and "X-Accel-Redirect" not in response
    since = api.get(key, HTTP_IF_MODIFIED_SINCE="Wed, 02 Apr 2025 10:00:00 GMT")
    assert since.status_code == 304


def test_range_is_left_to_nginx_on_unprocessed_bytes(api, source, accel):
    key, data = source
    response = api.get(key, HTTP_RANGE="bytes=0-9")
    assert response.status_code == 200, "nginx answers the Range on the file"
    assert response["Accept-Ranges"] == "bytes" and accel_file(response) == data


def test_range_on_a_processed_result_is_answered_whole_by_istore(api, source, accel):
    key, _ = source
    whole = api.get(key, "apply=resize&w=20", HTTP_RANGE="bytes=0-9")
    assert whole.status_code == 200 and "X-Accel-Redirect" not in whole
    assert Image.open(io.BytesIO(content(whole))).size == (20, 15)


def test_head_is_answered_by_istore(api, source, accel):
    key, data = source
    response = api.head(key)
    assert response.status_code == 200 and "X-Accel-Redirect" not in response
    assert response["Content-Length"] == str(len(data))


def test_bytes_outside_the_cache_are_served_by_istore(api, file_root, accel):
    data = png()
    (file_root / "pic.png").write_bytes(data)
    file_key = register(api, f"/ax/file://{file_root}/pic.png")
    response = api.get(file_key)
    assert "X-Accel-Redirect" not in response and content(response) == data
    assert api.upload("/ax/up.png", data, content_type="image/png").status_code == 201
    response = api.get("/ax/up.png")
    assert "X-Accel-Redirect" not in response and content(response) == data
    # Their processed results are in the cache, though.
    assert Image.open(io.BytesIO(accel_file(api.get(file_key, "apply=resize&w=16")))).size == (16, 12)
    assert Image.open(io.BytesIO(accel_file(api.get("/ax/up.png", "apply=resize&w=16")))).size == (16, 12)


def test_active_content_keeps_its_sandbox(api, origin, accel):
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    url = origin.add("/x.svg", svg, headers={"Cache-Control": "max-age=3600", "Content-Type": "image/svg+xml"})
    key = register(api, f"/ax/{url}")
    response = api.get(key)
    assert accel_file(response) == svg
    assert response["Content-Type"] == "image/svg+xml"
    assert response["Content-Security-Policy"] == "sandbox"
    assert response["Content-Disposition"] == "attachment"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_access_is_checked_before(api, source, accel):
    key, _ = source
    accel.ISTORE_PUBLIC_READ = False
    response = api.get(key)
    assert response.status_code == 401 and "X-Accel-Redirect" not in response


def test_derivative_cache_off_is_served_by_istore(api, source, accel):
    key, _ = source
    accel.ISTORE_CACHE_DERIVATIVES = False
    response = api.get(key, "apply=resize&w=20")
    assert "X-Accel-Redirect" not in response
    assert Image.open(io.BytesIO(content(response))).size == (20, 15)


def test_without_the_setting_nothing_changes(api, source):
    key, data = source
    response = api.get(key)
    assert "X-Accel-Redirect" not in response and content(response) == data


def test_cache_files_are_readable_by_other_users(api, source, accel):
    # nginx's workers run as their own user (www-data): cached values are
    # created like diskcache's own files (0o666 less the umask), not 0o600.
    key, _ = source
    target = api.get(key)["X-Accel-Redirect"]
    mode = os.stat(shared_cache.get_cache().directory / target[len(LOCATION):]).st_mode & 0o777
    assert mode == shared_cache.FILE_MODE and mode & 0o004


def test_target_is_a_plain_relative_path(api, source, accel):
    key, _ = source
    target = api.get(key)["X-Accel-Redirect"]
    relative = target[len(LOCATION):]
    assert relative.startswith("store/") and ".." not in relative.split("/")
    assert os.path.isfile(shared_cache.get_cache().directory / relative)


def test_bytes_the_cache_refused_are_served_by_istore(api, origin, accel, monkeypatch):
    # The file was moved into the store, then the index refused the row (disk
    # full): the file is not a cache value, is served from here, and goes.
    import sqlite3

    import diskcache

    def refuse(*args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    data = png()
    url = origin.add("/refused.png", data, headers={"Cache-Control": "max-age=3600"})
    key = register(api, f"/ax/{url}")
    monkeypatch.setattr(diskcache.Cache, "_row_insert", refuse)
    response = api.get(key)
    assert "X-Accel-Redirect" not in response and content(response) == data
    store = shared_cache.get_cache().directory / "store"
    assert not [p for p in store.rglob("*.val")], "no orphan file is left in the store"


# -- through a real nginx ------------------------------------------------------------------------------------

@pytest.fixture
def behind_nginx(tmp_path, origin):
    """istore under gunicorn (SQLite) behind a real nginx with ISTORE_ACCEL_REDIRECT=/_accel/."""
    import requests

    with istore_behind_nginx(tmp_path, {"ISTORE_ACCEL_REDIRECT": "/_accel/"}) as servers:
        yield {**servers, "origin": origin, "requests": requests}


def test_through_a_real_nginx(behind_nginx):
    app, front, origin, requests = (behind_nginx[k] for k in ("app", "nginx", "origin", "requests"))
    data = png(320, 240)
    url = origin.add("/n.png", data, headers={"Cache-Control": "max-age=3600", "Content-Type": "image/png",
                                               "Last-Modified": "Tue, 01 Apr 2025 10:00:00 GMT"})
    key = f"/nx/{url}"
    assert requests.post(f"{app}{key}", data={"metadata": "{}"}, timeout=30).status_code == 201
    upstream = requests.get(f"{app}{key}", timeout=30)  # fetches and caches; istore answers with the redirect
    assert upstream.headers["X-Accel-Redirect"].startswith("/_accel/store/") and upstream.content == b""

    served = requests.get(f"{front}{key}", timeout=30)
    assert served.status_code == 200 and served.content == data
    assert "X-Accel-Redirect" not in served.headers
    for name in ("Content-Type", "ETag", "Last-Modified", "Cache-Control", "X-Content-Type-Options"):
        assert served.headers.get(name) == upstream.headers.get(name), name
    assert served.headers["Content-Length"] == str(len(data))

    ranged = requests.get(f"{front}{key}", headers={"Range": "bytes=100-199"}, timeout=30)
    assert ranged.status_code == 206 and ranged.content == data[100:200]
    assert ranged.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    stale_if_range = requests.get(f"{front}{key}", headers={"Range": "bytes=0-9", "If-Range": '"other"'}, timeout=30)
    assert stale_if_range.status_code == 200 and stale_if_range.content == data
    assert requests.get(f"{front}{key}", headers={"If-None-Match": served.headers["ETag"]},
                        timeout=30).status_code == 304

    processed = requests.get(f"{front}{key}?apply=resize&w=100", timeout=30)
    assert processed.status_code == 200 and Image.open(io.BytesIO(processed.content)).size == (100, 75)
    direct = requests.get(f"{app}{key}?apply=resize&w=100", timeout=30)
    for name in ("Content-Type", "ETag", "Last-Modified", "Cache-Control"):
        assert processed.headers.get(name) == direct.headers.get(name), name
    whole = requests.get(f"{front}{key}?apply=resize&w=100", headers={"Range": "bytes=0-9"}, timeout=30)
    assert whole.status_code == 200 and whole.content == processed.content, "processed results are not ranged"
    assert requests.get(f"{front}{key}?apply=resize&w=100", headers={"If-None-Match": processed.headers["ETag"]},
                        timeout=30).status_code == 304

    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    svg_url = origin.add("/s.svg", svg, headers={"Cache-Control": "max-age=3600", "Content-Type": "image/svg+xml"})
    requests.post(f"{app}/nx/{svg_url}", data={"metadata": "{}"}, timeout=30)
    sandboxed = requests.get(f"{front}/nx/{svg_url}", timeout=30)
    assert sandboxed.content == svg and sandboxed.headers["Content-Type"] == "image/svg+xml"
    assert sandboxed.headers["Content-Security-Policy"] == "sandbox"
    assert sandboxed.headers["Content-Disposition"] == "attachment"

    target = upstream.headers["X-Accel-Redirect"]
    assert requests.get(f"{front}{target}", timeout=30).status_code == 404, "the internal location is not public"
