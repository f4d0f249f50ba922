"""Every error is JSON {"error", "detail"} and writes nothing (§1, §9)."""
import pytest

from objects.models import Item
from tests.conftest import body


def assert_json_error(response, status):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    data = body(response)
    assert set(data) == {"error", "detail"}, f"error body must be exactly error+detail: {data}"
    assert data["detail"], "detail must say what was wrong"
    return data


def test_unknown_key_is_404_json(api):
    assert assert_json_error(api.get("/no/such/key"), 404)["error"] == "no_such_key"


def test_meta_of_unknown_key_is_404(api):
    assert_json_error(api.meta("/no/such/key"), 404)


def test_registry_not_proxy(api):
    """A source URL that is not registered is not fetched."""
    assert_json_error(api.get("/x/http://example.com/a.jpg"), 404)


@pytest.mark.parametrize("path", ["/_nothing", "/_static_or_not/x", "/_schema_x"])
def test_reserved_paths_are_not_keys(api, path):
    assert_json_error(api.post(path, {"a": 1}), 404)
    assert not Item.objects.exists()


def test_unsupported_method_is_405_json(api):
    response = api.client.patch("/a/b")
    assert assert_json_error(response, 405)["error"] == "method_not_allowed"
    assert "GET" in response["Allow"]


def test_verb_with_get_is_405(api):
    assert_json_error(api.get("/a/_search"), 405)


@pytest.mark.parametrize("path", ["/a%00b", "/a%1Fb", "/a%C2%85b", "/a%FFb", "/" + "a" * 4096])
def test_invalid_keys_are_400(api, path):
    response = api.client.post(path, "metadata=%7B%7D", content_type="application/x-www-form-urlencoded")
    assert assert_json_error(response, 400)["error"] == "invalid_key"
    assert not Item.objects.exists()


def test_a_4096_byte_key_is_accepted(api):
    key = "/" + "k" * 4095
    assert api.post(key, {"a": 1}).status_code == 201
    assert body(api.meta(key))["_filepath"] == key


def test_a_4096_byte_incompressible_key_is_accepted(api):
    import random
    import string

    rng = random.Random(7)
    key = "/" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(4095))
    assert api.post(key, {"a": 1}).status_code == 201, "long keys must fit the database's index"


@pytest.mark.parametrize("handler, status", [("not_found", 404), ("server_error", 500), ("bad_request", 400),
                                             ("permission_denied", 403)])
def test_django_error_handlers_are_json(rf, handler, status):
    from objects import views

    assert_json_error(getattr(views, handler)(rf.get("/_admin/x")), status)


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("path", ["/some/key", "/some/dir/", "/some/key?meta=1", "/_schema/"])
def test_host_outside_allowed_hosts_is_400_json(api, settings, path, debug):
    settings.DEBUG = debug  # make run serves with DEBUG on
    response = api.client.get(path, HTTP_HOST="evil.example")
    assert response.status_code == 400, f"Host: evil.example on {path} gave {response.status_code}"
    assert response.json()["error"] == "disallowed_host", response.content


@pytest.mark.parametrize("path", ["/_health", "/_ready", "/_metrics"])
def test_probes_answer_any_host(api, path):
    response = api.client.get(path, HTTP_HOST="10.0.0.7:8592")
    assert response.status_code == 200, f"a probe by address on {path} gave {response.status_code}"


def test_unhandled_exception_is_a_json_500(api, monkeypatch):
    from objects import views

    def explode(request, key):
        raise RuntimeError("boom")

    monkeypatch.setitem(views.HANDLERS, "GET", explode)
    api.client._client.raise_request_exception = False
    response = api.get("/boom")
    data = assert_json_error(response, 500)
    assert "boom" not in data["detail"], "no internals in error bodies"


def test_slashes_are_never_merged(api):
    api.post("/a//b", {"which": "double"})
    api.post("/a/b", {"which": "single"})
    assert body(api.meta("/a//b"))["metadata"] == {"which": "double"}
    assert body(api.meta("/a/b"))["metadata"] == {"which": "single"}


def test_percent_encoded_question_mark_is_part_of_the_key(api):
    api.post("/photos/a?b", {"q": 1})
    assert body(api.client.get("/photos/a%3Fb?meta=1", RAW_URI="/photos/a%3Fb?meta=1"))["_filepath"] == "/photos/a?b"


def test_health(client, db):
    response = client.get("/_health")
    assert response.status_code == 200
    assert body(response)["database"] == "ok"


def test_database_outage_is_a_json_503(api, monkeypatch):
    from django.db import OperationalError

    from objects import views

    def down(request, key):
        raise OperationalError("connection refused")

    monkeypatch.setitem(views.HANDLERS, "GET", down)
    response = api.get("/any/key")
    assert assert_json_error(response, 503)["error"] == "database_unavailable"
    assert response["Retry-After"] == "5"
