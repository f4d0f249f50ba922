"""ISTORE_ACCEL_EXPIRES (issue 8 §5): how long nginx's proxy_cache may reuse a content response."""
import io
import time

import pytest
import requests
from django.contrib.auth.models import User
from PIL import Image
from rest_framework.authtoken.models import Token

from tests.nginx import istore_behind_nginx

KEY = "/c/blob.txt"


@pytest.fixture
def uploaded(api):
    assert api.upload(KEY, b"one", content_type="text/plain").status_code == 201
    return KEY


def test_content_carries_the_expiry(api, uploaded, settings):
    settings.ISTORE_ACCEL_EXPIRES = 2
    response = api.get(uploaded)
    assert response["X-Accel-Expires"] == "2", "a content response must tell nginx how long it may reuse it"
    revalidated = api.get(uploaded, HTTP_IF_NONE_MATCH=response["ETag"])
    assert revalidated.status_code == 304 and revalidated["X-Accel-Expires"] == "2", \
        "a 304 to nginx's revalidation must renew the expiry"


def test_off_by_default(api, uploaded):
    assert "X-Accel-Expires" not in api.get(uploaded), "nginx may not cache anything unless configured to"


def test_metadata_is_never_cached_by_nginx(api, uploaded, settings):
    settings.ISTORE_ACCEL_EXPIRES = 2
    assert "X-Accel-Expires" not in api.get(uploaded, "meta=1"), "metadata must be read fresh"


def test_listing_is_never_cached_by_nginx(api, uploaded, settings):
    settings.ISTORE_ACCEL_EXPIRES = 2
    assert "X-Accel-Expires" not in api.get("/c/"), "listings must be read fresh"


def test_private_store_is_never_cached_by_nginx(api, uploaded, settings, db):
    settings.ISTORE_ACCEL_EXPIRES = 2
    settings.ISTORE_PUBLIC_READ = False
    token = Token.objects.create(user=User.objects.create_user("reader")).key
    response = api.get(uploaded, HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200 and "X-Accel-Expires" not in response, \
        "nginx must not answer a private store's reads: it would skip the access check"


# -- through a real nginx with proxy_cache -----------------------------------------------------------------

EXPIRES = 1


@pytest.fixture
def cached_front(tmp_path):
    with istore_behind_nginx(tmp_path, {"ISTORE_ACCEL_EXPIRES": str(EXPIRES)}, cache=True) as servers:
        yield servers


def test_nginx_serves_from_its_cache_within_the_expiry(cached_front):
    app, front = cached_front["app"], cached_front["nginx"]
    assert requests.put(app + KEY, data=b"one", timeout=30).status_code == 201
    first = requests.get(front + KEY, timeout=30)
    second = requests.get(front + KEY, timeout=30)
    assert first.content == second.content == b"one"
    assert second.headers["X-Cache-Status"] == "HIT", "the second read must come from nginx's cache"
    assert "X-Accel-Expires" not in second.headers, "nginx keeps X-Accel-Expires to itself"
    assert second.headers["ETag"] == first.headers["ETag"]
    assert requests.get(front + KEY, headers={"If-None-Match": first.headers["ETag"]},
                        timeout=30).status_code == 304


def test_a_write_is_seen_through_nginx_once_the_entry_expires(cached_front):
    app, front = cached_front["app"], cached_front["nginx"]
    requests.put(app + KEY, data=b"one", timeout=30)
    requests.get(front + KEY, timeout=30)
    assert requests.put(app + KEY, data=b"two", timeout=30).status_code == 200
    # nginx keeps time in whole seconds and refreshes in the background, so
    # the bound is a few seconds past the expiry; what matters is that it ends.
    deadline = time.monotonic() + EXPIRES + 15
    while time.monotonic() < deadline:
        if requests.get(front + KEY, timeout=30).content == b"two":
            return
        time.sleep(0.2)
    pytest.fail(f"a write was still not seen through nginx {EXPIRES + 15} s after it")


def test_metadata_through_nginx_is_always_fresh(cached_front):
    app, front = cached_front["app"], cached_front["nginx"]
    requests.post(app + "/c/m", data={"metadata": '{"v": 1}'}, timeout=30)
    requests.get(front + "/c/m?meta=1", timeout=30)
    requests.post(app + "/c/m", data={"metadata": '{"v": 2}'}, timeout=30)
    response = requests.get(front + "/c/m?meta=1", timeout=30)
    assert response.json()["metadata"] == {"v": 2}, "metadata was served from nginx's cache"
    assert response.headers["X-Cache-Status"] != "HIT"


def test_negotiated_answers_are_kept_apart_by_nginx(cached_front):
    app, front = cached_front["app"], cached_front["nginx"]
    out = io.BytesIO()
    Image.new("RGB", (40, 20), "red").save(out, "PNG")
    assert requests.put(app + "/c/a.png", data=out.getvalue(), timeout=30).status_code == 201
    url = front + "/c/a.png?apply=resize&w=10&format=auto"
    webp = [requests.get(url, headers={"Accept": "image/webp,*/*"}, timeout=30) for _ in range(2)]
    assert [r.headers["Content-Type"] for r in webp] == ["image/webp"] * 2
    assert webp[1].headers["X-Cache-Status"] == "HIT"
    for accept in ("*/*", "image/png,image/*;q=0.8", None):
        response = requests.get(url, headers={} if accept is None else {"Accept": accept}, timeout=30)
        assert response.headers["Content-Type"] == "image/png", f"nginx sent a WebP for Accept: {accept}"
