"""
No write without a valid token, on every write path (issue 9 §5), when
anonymous writes are off (the default).

The matrix: every way to write (POST/PUT/DELETE on a key, a directory, a key
embedding a source, a 4 KB key; form, JSON, multipart and raw bodies; the three
verbs, also on the root) crossed with every bad credential (none, unknown key,
wrong scheme, malformed header, an inactive user's token, a staff user's admin
session cookie). Each must be 401 with ``WWW-Authenticate: Token`` and leave
the database and the content storage untouched.

The admin: login required for every page and action, CSRF enforced on the
login form and on every admin POST (checked with a client that enforces CSRF,
as browsers are), staff status and model permissions required.
"""
import json

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from rest_framework.authtoken.models import Token

from objects.models import Item
from tests.conftest import url
from tests.security import conftest as media
from tests.security.conftest import content_files

WRITES = {
    "POST form on a key": lambda c, h: c.post(url("/w/k"), {"metadata": '{"a": 1}'}, **h),
    "PUT form on a key": lambda c, h: c.put(url("/w/k"), "metadata=%7B%7D",
                                            content_type="application/x-www-form-urlencoded", **h),
    "POST JSON on a key": lambda c, h: c.post(url("/w/k"), '{"metadata": {"a": 1}}',
                                              content_type="application/json", **h),
    "POST without a body": lambda c, h: c.post(url("/w/k"), **h),
    "POST on a directory": lambda c, h: c.post(url("/w/"), {"metadata": '{"a": 1}'}, **h),
    "POST on the root": lambda c, h: c.post("/", {"metadata": '{"a": 1}'}, **h),
    "POST on a key with a source": lambda c, h: c.post(url("/w/http://example.com/a.jpg"),
                                                       {"metadata": "{}"}, **h),
    "POST on a self source": lambda c, h: c.post(url("/w/self:///w/k%3Fapply=resize&w=1"),
                                                 {"metadata": "{}"}, **h),
    "POST on a 4096-byte key": lambda c, h: c.post(url("/" + "k" * 4095), {"metadata": "{}"}, **h),
    "POST on an escaped key": lambda c, h: c.post(url("/w/a?b#c"), {"metadata": "{}"}, **h),
    "PUT raw upload": lambda c, h: c.put(url("/w/cat.png"), media.png(), content_type="image/png", **h),
    "PUT raw upload, no type": lambda c, h: c.put(url("/w/cat.png"), media.png(), content_type="", **h),
    "POST multipart upload": lambda c, h: c.post(url("/w/cat.png"), {
        "file": SimpleUploadedFile("cat.png", media.png(), "image/png"), "metadata": "{}"}, **h),
    "PUT chunked upload": lambda c, h: c.put(url("/w/cat.png"), media.png(), content_type="image/png",
                                             HTTP_TRANSFER_ENCODING="chunked", **h),
    "DELETE a key": lambda c, h: c.delete(url("/seed/a"), **h),
    "DELETE a directory": lambda c, h: c.delete(url("/seed/"), **h),
    "DELETE the root": lambda c, h: c.delete("/", **h),
    "_expand": lambda c, h: c.post("/w/_expand", '{"video": "/seed/a"}', content_type="application/json", **h),
    "_search": lambda c, h: c.post("/seed/_search", '{"similar": {"by": "v", "vector": [1, 0]}}',
                                   content_type="application/x-www-form-urlencoded", **h),
    "_create_index": lambda c, h: c.post("/seed/_create_index", '{"similar": {"by": "v"}}',
                                         content_type="application/json", **h),
    "_search on the root": lambda c, h: c.post("/_search", '{"similar": {"by": "v", "vector": [1, 0]}}',
                                               content_type="application/json", **h),
    "_expand on the root": lambda c, h: c.post("/_expand", '{"video": "/seed/a"}',
                                               content_type="application/x-www-form-urlencoded", **h),
}


@pytest.fixture
def seeded(secured_api, token):
    """Two items written with a valid token, so deletes have something to refuse to delete."""
    auth = {"HTTP_AUTHORIZATION": f"Token {token}"}
    assert secured_api.post("/seed/a", {"v": [1, 0]}, **auth).status_code == 201
    assert secured_api.upload("/seed/b.png", media.png(), content_type="image/png", **auth).status_code == 201
    return auth


@pytest.fixture
def inactive_token(db):
    user = User.objects.create_user("gone", is_active=False)
    return Token.objects.create(user=user).key


@pytest.fixture
def staff_session(client, db):
    """A logged-in admin's session cookie, as a browser holding one would send it."""
    user = User.objects.create_superuser("boss", password="pw-boss-123")
    client.force_login(user)
    return {"HTTP_COOKIE": f"sessionid={client.cookies['sessionid'].value}"}


BAD_CREDENTIALS = {
    "none": lambda tokens: {},
    "unknown key": lambda tokens: {"HTTP_AUTHORIZATION": "Token 0123456789abcdef0123456789abcdef01234567"},
    "empty Token": lambda tokens: {"HTTP_AUTHORIZATION": "Token"},
    "two words": lambda tokens: {"HTTP_AUTHORIZATION": f"Token {tokens['valid']} extra"},
    "Bearer scheme": lambda tokens: {"HTTP_AUTHORIZATION": f"Bearer {tokens['valid']}"},
    "Basic scheme": lambda tokens: {"HTTP_AUTHORIZATION": "Basic Ym9zczpwdy1ib3NzLTEyMw=="},
    "inactive user": lambda tokens: {"HTTP_AUTHORIZATION": f"Token {tokens['inactive']}"},
    "token in the query": lambda tokens: {"QUERY_STRING": f"token={tokens['valid']}"},
    "admin session cookie": lambda tokens: tokens["session"],
}


@pytest.mark.parametrize("credential", BAD_CREDENTIALS)
@pytest.mark.parametrize("write", WRITES)
def test_every_write_path_needs_a_valid_token(secured_api, seeded, settings, token, inactive_token, staff_session,
                                              write, credential):
    client = Client()  # no cookies unless the credential sends one
    items_before = sorted(Item.objects.values_list("key", "metadata", "content_etag"))
    files_before = sorted(content_files(settings))
    headers = BAD_CREDENTIALS[credential]({"valid": token, "inactive": inactive_token, "session": staff_session})
    response = WRITES[write](client, headers)
    assert response.status_code == 401, (response.status_code, response.content[:200])
    assert json.loads(response.content)["error"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Token")
    assert sorted(Item.objects.values_list("key", "metadata", "content_etag")) == items_before
    assert sorted(content_files(settings)) == files_before, "a refused upload left a blob behind"


@pytest.mark.parametrize("write", ["POST form on a key", "PUT raw upload", "POST multipart upload", "DELETE a key",
                                   "_search"])
def test_the_same_writes_pass_with_a_valid_token(secured_api, seeded, write):
    """The matrix above fails for the credential, not for the request."""
    response = WRITES[write](Client(), seeded)
    assert response.status_code in (200, 201), response.content[:300]


def test_anonymous_writes_switch_is_for_loopback_clients_only(secured_api, settings):
    settings.ISTORE_ALLOW_ANONYMOUS_WRITES = True
    for remote in ("10.0.0.7", "192.168.1.2", "2001:db8::1", "::ffff:127.0.0.1", "", "localhost"):
        response = Client(REMOTE_ADDR=remote).post(url("/w/k"), {"metadata": "{}"})
        assert response.status_code == 401, remote
    assert not Item.objects.exists()


def test_forwarded_headers_do_not_make_a_client_local(secured_api, settings):
    """X-Forwarded-For and X-Real-IP are client-controlled: only REMOTE_ADDR counts."""
    settings.ISTORE_ALLOW_ANONYMOUS_WRITES = True
    client = Client(REMOTE_ADDR="203.0.113.9")
    for header in ("HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP", "HTTP_FORWARDED"):
        response = client.post(url("/w/k"), {"metadata": "{}"}, **{header: "127.0.0.1"})
        assert response.status_code == 401, header
    assert not Item.objects.exists()


def test_method_override_headers_are_ignored(secured_api, seeded):
    """A GET with X-HTTP-Method-Override: DELETE is a read: nothing is deleted."""
    for header in ("HTTP_X_HTTP_METHOD_OVERRIDE", "HTTP_X_HTTP_METHOD", "HTTP_X_METHOD_OVERRIDE"):
        response = Client().get(url("/seed/a"), **{header: "DELETE"})
        assert response.status_code in (200, 404)
    assert Item.objects.filter(key="/seed/a").exists()


def test_reads_do_not_write(secured_api, seeded):
    """GET/HEAD never create an item, not even for a source URL or a processed variant."""
    count = Item.objects.count()
    client = Client()
    for path in ("/r/new", "/r/http://example.com/x.jpg", "/seed/b.png?apply=resize&w=5", "/r/", "/r/_search"):
        client.get(path)
        if not path.endswith("/"):  # HEAD on a directory: test_head_on_a_directory_sends_request_finished_once
            client.head(path)
    assert Item.objects.count() == count


def test_private_reads_accept_a_staff_session_but_writes_never_do(secured_api, seeded, settings, staff_session):
    settings.ISTORE_PUBLIC_READ = False
    client = Client()
    assert client.get(url("/seed/a"), {"meta": "1"}).status_code == 401
    assert client.get(url("/seed/a"), {"meta": "1"}, **staff_session).status_code == 200
    assert client.post(url("/seed/a"), {"metadata": '{"x": 1}'}, **staff_session).status_code == 401
    assert "x" not in Item.objects.get(key="/seed/a").metadata


# ---------------------------------------------------------------- the admin


ADMIN_ITEMS = "/_admin/objects/item/"


@pytest.fixture
def item(seeded):
    return Item.objects.get(key="/seed/a")


def admin_requests(item):
    return [
        ("get", "/_admin/", {}),
        ("get", ADMIN_ITEMS, {}),
        ("get", f"{ADMIN_ITEMS}{item.pk}/change/", {}),
        ("post", f"{ADMIN_ITEMS}{item.pk}/change/", {"metadata": '{"hacked": true}', "mode": "replace"}),
        ("post", f"{ADMIN_ITEMS}add/", {"key": "/w/admin-made", "metadata": "{}"}),
        ("post", f"{ADMIN_ITEMS}{item.pk}/delete/", {"post": "yes"}),
        ("post", f"{ADMIN_ITEMS}delete-folder/", {"dir": "/seed/"}),
        ("post", "/_admin/authtoken/tokenproxy/add/", {"user": "1"}),
        ("post", "/_admin/auth/user/add/", {"username": "intruder", "password1": "x-Long-pass-1",
                                            "password2": "x-Long-pass-1"}),
    ]


def assert_nothing_changed(before):
    assert sorted(Item.objects.values_list("key", "metadata")) == before
    assert not User.objects.filter(username="intruder").exists()


def test_admin_requires_login_for_every_page_and_action(client, item):
    before = sorted(Item.objects.values_list("key", "metadata"))
    tokens = Token.objects.count()
    for method, path, data in admin_requests(item):
        response = getattr(client, method)(path, data)
        assert response.status_code == 302, (method, path, response.status_code)
        assert response["Location"].startswith("/_admin/login/"), (path, response["Location"])
    assert_nothing_changed(before)
    assert Token.objects.count() == tokens


def test_admin_refuses_users_who_are_not_staff(client, item):
    client.force_login(User.objects.create_user("plain", password="pw-plain-123"))
    before = sorted(Item.objects.values_list("key", "metadata"))
    for method, path, data in admin_requests(item):
        response = getattr(client, method)(path, data)
        assert response.status_code == 302 and response["Location"].startswith("/_admin/login/"), path
    assert_nothing_changed(before)


def test_admin_staff_without_permissions_cannot_change_items(client, item):
    client.force_login(User.objects.create_user("clerk", password="pw-clerk-123", is_staff=True))
    before = sorted(Item.objects.values_list("key", "metadata"))
    for method, path, data in admin_requests(item)[3:]:
        response = getattr(client, method)(path, data)
        assert response.status_code in (302, 403), (path, response.status_code)
    assert_nothing_changed(before)


def test_admin_login_without_csrf_token_is_refused(db):
    User.objects.create_superuser("boss", password="pw-boss-123")
    browser = Client(enforce_csrf_checks=True)
    response = browser.post("/_admin/login/", {"username": "boss", "password": "pw-boss-123",
                                               "next": "/_admin/"})
    assert response.status_code == 403
    assert "_auth_user_id" not in browser.session


def test_admin_login_with_csrf_token_works(db):
    """The refusal above is CSRF's: the same login with the form's token succeeds."""
    User.objects.create_superuser("boss", password="pw-boss-123")
    browser = Client(enforce_csrf_checks=True)
    browser.get("/_admin/login/")
    token = browser.cookies["csrftoken"].value
    response = browser.post("/_admin/login/", {"username": "boss", "password": "pw-boss-123", "next": "/_admin/",
                                               "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and response["Location"] == "/_admin/"


def test_admin_posts_without_csrf_token_are_refused(item):
    before = sorted(Item.objects.values_list("key", "metadata"))
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(User.objects.create_superuser("boss", password="pw-boss-123"))
    for method, path, data in admin_requests(item):
        if method != "post":
            continue
        response = browser.post(path, data)
        assert response.status_code == 403, (path, response.status_code)
    assert_nothing_changed(before)


def test_admin_post_with_csrf_token_is_accepted(item):
    """The refusals above are CSRF's: the same edit with the token goes through."""
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(User.objects.create_superuser("boss", password="pw-boss-123"))
    browser.get(f"{ADMIN_ITEMS}{item.pk}/change/")
    response = browser.post(f"{ADMIN_ITEMS}{item.pk}/change/", {
        "metadata": '{"edited": true}', "mode": "replace", "csrfmiddlewaretoken": browser.cookies["csrftoken"].value})
    assert response.status_code == 302
    assert Item.objects.get(pk=item.pk).metadata == {"edited": True}


def test_api_token_is_not_an_admin_login(client, item, token):
    """A token authenticates API writes, never the admin."""
    response = client.get("/_admin/", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 302 and response["Location"].startswith("/_admin/login/")
