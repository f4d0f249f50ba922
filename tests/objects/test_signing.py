"""Signed URLs: ISTORE_URL_SIGNING_KEYS, sig= last, exp=, key rotation, tokens, manage.py sign_url."""
import base64
import hashlib
import hmac
import io
import os
import time

import pytest
from PIL import Image
from rest_framework.authtoken.models import Token

from tests.conftest import body, url
from tests.servers import manage

KEY = "/signed/a.png"
RESIZE = "apply=resize&w=10"


def signed(target, secret):
    """``target`` with its signature appended, computed here from the documented rule."""
    mac = hmac.new(secret.encode(), target.encode(), hashlib.sha256).digest()
    return f"{target}&sig={base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


@pytest.fixture
def image(api):
    out = io.BytesIO()
    Image.new("RGB", (40, 20), "red").save(out, "PNG")
    assert api.upload(KEY, out.getvalue(), content_type="image/png").status_code == 201
    return KEY


@pytest.fixture
def keys(settings):
    settings.ISTORE_URL_SIGNING_KEYS = ["new-secret", "old-secret"]
    return settings.ISTORE_URL_SIGNING_KEYS


def get(api, target, **extra):
    return api.client.get(target, **extra)


def test_off_by_default(api, image):
    assert get(api, url(image, RESIZE)).status_code == 200


def test_processed_read_without_signature_is_403(api, image, keys):
    response = get(api, url(image, RESIZE))
    assert response.status_code == 403 and body(response)["error"] == "bad_signature"


@pytest.mark.parametrize("secret", ["new-secret", "old-secret"])
def test_every_key_verifies(api, image, keys, secret):
    response = get(api, signed(url(image, RESIZE), secret))
    assert response.status_code == 200, f"signed with {secret}: {response.status_code}"
    assert Image.open(io.BytesIO(b"".join(response.streaming_content))).size == (10, 5)


def test_a_dropped_key_no_longer_verifies(api, image, keys, settings):
    target = signed(url(image, RESIZE), "old-secret")
    settings.ISTORE_URL_SIGNING_KEYS = ["new-secret"]
    assert body(get(api, target))["error"] == "bad_signature"


@pytest.mark.parametrize("tamper", [
    lambda t: t.replace("w=10", "w=11"),  # another size
    lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # another signature
    lambda t: t + "&w=20",  # sig not last
    lambda t: t.replace("&sig=", "&sig=" + "x"),
    lambda t: t.replace("?", "?x=1&"),  # a parameter slipped in
])
def test_anything_else_than_the_signed_url_is_403(api, image, keys, tamper):
    response = get(api, tamper(signed(url(image, RESIZE), "new-secret")))
    assert response.status_code == 403 and body(response)["error"] == "bad_signature"


def test_the_raw_query_is_signed_as_sent(api, image, keys):
    """Percent-escapes and parameter order are part of what is signed."""
    target = url(image, "w=10&apply=resize")
    assert get(api, signed(target, "new-secret")).status_code == 200
    assert get(api, signed(target, "new-secret").replace("w=10&apply=resize", "apply=resize&w=10")).status_code == 403


def test_expiry(api, image, keys):
    future = signed(url(image, f"{RESIZE}&exp={int(time.time()) + 60}"), "new-secret")
    assert get(api, future).status_code == 200
    past = signed(url(image, f"{RESIZE}&exp={int(time.time()) - 1}"), "new-secret")
    response = get(api, past)
    assert response.status_code == 403 and body(response)["error"] == "signature_expired"


def test_expiry_cannot_be_moved(api, image, keys):
    past = signed(url(image, f"{RESIZE}&exp={int(time.time()) - 1}"), "new-secret")
    moved = past.replace(f"exp={int(time.time()) - 1}", f"exp={int(time.time()) + 3600}")
    assert body(get(api, moved))["error"] == "bad_signature"


def test_a_valid_token_needs_no_signature(api, image, keys, django_user_model):
    user = django_user_model.objects.create_user("reader")
    token = Token.objects.create(user=user)
    assert get(api, url(image, RESIZE), HTTP_AUTHORIZATION=f"Token {token.key}").status_code == 200
    assert get(api, url(image, RESIZE), HTTP_AUTHORIZATION="Token wrong").status_code == 401


def test_reads_without_apply_are_not_concerned(api, image, keys):
    assert get(api, url(image)).status_code == 200
    assert get(api, url(image, "meta=1")).status_code == 200
    assert api.head(image, RESIZE).status_code == 403, "HEAD of a processed read is signed too"


def test_checked_before_the_source_is_fetched(api, keys, origin):
    source = origin.add("/never.png", b"x")
    key = f"/signed/{source}"
    assert api.post(key, {}).status_code == 201
    assert get(api, url(key, RESIZE)).status_code == 403
    assert origin.count["/never.png"] == 0, "an unsigned processed read must not reach the origin"


def sign_url(*args, keys="new-secret,old-secret", check=True):
    env = {**os.environ, "DJANGO_DEBUG": "true", "ISTORE_URL_SIGNING_KEYS": keys}
    return manage("sign_url", *args, env=env, check=check)


def test_sign_url_prints_the_signed_path(api, image, keys):
    target = url(image, RESIZE)
    printed = sign_url(target).stdout.strip()
    assert printed == signed(target, "new-secret"), "the first key signs, sig= last"
    assert get(api, printed).status_code == 200


def test_sign_url_expires(api, image, keys):
    before = int(time.time())
    printed = sign_url(url(image, RESIZE), "--expires", "300").stdout.strip()
    exp = int(printed.split("&exp=")[1].split("&")[0])
    assert before + 300 <= exp <= int(time.time()) + 300
    assert get(api, printed).status_code == 200


@pytest.mark.parametrize("args,keys,words", [
    (["/a.png?apply=flipH"], "", "ISTORE_URL_SIGNING_KEYS"),
    (["a.png?apply=flipH"], "k", "must start with '/'"),
    (["/a.png?apply=flipH", "--expires", "0"], "k", "positive"),
])
def test_sign_url_refuses_what_it_cannot_sign(args, keys, words):
    done = sign_url(*args, keys=keys, check=False)
    assert done.returncode != 0 and words in done.stderr, done.stderr


def test_nginx_may_not_keep_a_signed_answer_past_its_expiry(api, image, keys, settings):
    settings.ISTORE_ACCEL_EXPIRES = 60
    response = get(api, signed(url(image, f"{RESIZE}&exp={int(time.time()) + 20}"), "new-secret"))
    assert 0 < int(response["X-Accel-Expires"]) <= 20, "nginx's cache must not outlive exp"
    assert get(api, signed(url(image, RESIZE), "new-secret"))["X-Accel-Expires"] == "60"


def test_nginx_may_not_keep_what_a_token_opened_without_signature(api, image, keys, settings, django_user_model):
    settings.ISTORE_ACCEL_EXPIRES = 60
    token = Token.objects.create(user=django_user_model.objects.create_user("reader"))
    response = get(api, url(image, RESIZE), HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200 and not response.has_header("X-Accel-Expires"), \
        "nginx would hand an unsigned processed read to requests without a token"
