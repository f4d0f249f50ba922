"""Tokens for writes, public reads (§10)."""
import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token

from objects.models import Item
from tests.conftest import body


@pytest.fixture
def token(db):
    user = User.objects.create_user("writer")
    return Token.objects.create(user=user).key


@pytest.mark.parametrize("call", [
    lambda api: api.post("/w/k", {"a": 1}),
    lambda api: api.put("/w/k", {"a": 1}),
    lambda api: api.upload("/w/k", b"data", content_type="text/plain"),
    lambda api: api.delete("/w/k"),
    lambda api: api.delete("/w/"),
    lambda api: api.verb("/w/", "_search", {"similar": {"by": "v", "vector": [1]}}),
    lambda api: api.verb("/w/", "_expand", {"video": "/v"}),
])
def test_writes_without_token_are_401(secured_api, call):
    response = call(secured_api)
    assert response.status_code == 401, response.content
    assert body(response)["error"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Token")
    assert not Item.objects.exists()


def test_write_with_token_is_accepted(secured_api, token):
    response = secured_api.post("/w/k", {"a": 1}, HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 201


def test_bad_token_is_401(secured_api):
    response = secured_api.post("/w/k", {"a": 1}, HTTP_AUTHORIZATION="Token nope")
    assert response.status_code == 401
    assert not Item.objects.exists()


def test_reads_are_public_by_default(secured_api, token):
    secured_api.post("/w/k", {"a": 1}, HTTP_AUTHORIZATION=f"Token {token}")
    assert secured_api.meta("/w/k").status_code == 200


def test_private_reads_need_a_token(secured_api, token, settings):
    settings.ISTORE_PUBLIC_READ = False
    secured_api.post("/w/k", {"a": 1}, HTTP_AUTHORIZATION=f"Token {token}")
    assert secured_api.meta("/w/k").status_code == 401
    assert secured_api.get("/w/").status_code == 401
    assert secured_api.meta("/w/k", ).status_code == 401
    assert secured_api.get("/w/k", "meta=1", HTTP_AUTHORIZATION=f"Token {token}").status_code == 200


def test_anonymous_writes_only_from_loopback(api):
    response = api.post("/w/remote", {"a": 1}, REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 401, "anonymous writes are for local development only"
    assert api.post("/w/local", {"a": 1}).status_code == 201


def test_private_reads_accept_a_staff_admin_session(secured_api, token, settings, client, django_user_model):
    settings.ISTORE_PUBLIC_READ = False
    secured_api.post("/w/k", {"a": 1}, HTTP_AUTHORIZATION=f"Token {token}")
    staff = django_user_model.objects.create_user("curator", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get("/w/k?meta=1").status_code == 200, "the admin's previews read with its session"
    assert client.post("/w/k", {"metadata": "{}"}).status_code == 401, "a session never authorises writes"


def test_private_reads_refuse_a_non_staff_session(secured_api, token, settings, client, django_user_model):
    settings.ISTORE_PUBLIC_READ = False
    secured_api.post("/w/k", {"a": 1}, HTTP_AUTHORIZATION=f"Token {token}")
    client.force_login(django_user_model.objects.create_user("someone", password="pw"))
    assert client.get("/w/k?meta=1").status_code == 401


# ---------------------------------------------------------------- the development switch


def test_a_wrong_token_is_401_even_where_anonymous_writes_are_allowed(api):
    response = api.post("/w/wrong", {"a": 1}, HTTP_AUTHORIZATION="Token not-a-real-token")
    assert response.status_code == 401, "a wrong token must never pass as an anonymous write"
    assert api.meta("/w/wrong").status_code == 404, "the refused write stored something"


def test_a_valid_token_is_accepted_where_anonymous_writes_are_allowed(api, token):
    assert api.post("/w/tok", {"a": 1}, HTTP_AUTHORIZATION=f"Token {token}").status_code == 201


CROSS_SITE = [
    {"HTTP_ORIGIN": "http://evil.example"},
    {"HTTP_ORIGIN": "null"},
    {"HTTP_ORIGIN": "http://localhost:3000"},
    {"HTTP_SEC_FETCH_SITE": "cross-site"},
]


@pytest.mark.parametrize("headers", CROSS_SITE)
def test_anonymous_writes_a_browser_sends_from_another_site_are_403(api, headers):
    form = api.client.post("/w/form", {"metadata": '{"a": 1}'}, **headers)
    text = api.client.post("/w/text", "metadata={}", content_type="text/plain", **headers)
    verb = api.verb("/w/", "_expand", {"video": "/w/v.webm"}, **headers)
    for name, response in (("form", form), ("text/plain", text), ("_expand", verb)):
        assert response.status_code == 403, f"a cross-site {name} write was answered {response.status_code}"
        assert body(response)["error"] == "cross_site_write"
    assert api.get("/w/").status_code == 200 and api.keys("/w/") == [], "a refused cross-site write stored something"


def test_anonymous_writes_from_the_servers_own_origin_are_allowed(api):
    response = api.post("/w/own", {"a": 1}, HTTP_ORIGIN="http://testserver", HTTP_SEC_FETCH_SITE="same-origin")
    assert response.status_code == 201, body(response)
