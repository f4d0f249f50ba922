"""The verbs' contract: every error is a 400 (or 404) with a clear detail,
and nothing is a 500."""
import pytest

from .conftest import CONTRACT_DIR, create_index, post_item, verb

TO = "/path/vec/http://example.com/0.jpg"


def error_of(response, status):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "detail"}
    assert body["detail"]
    return body


@pytest.mark.parametrize(
    "body, words",
    [
        ({}, "similar"),
        ({"similar": None}, "similar"),
        ({"similar": [1, 2]}, "similar"),
        ({"similar": "vec"}, "similar"),
        ({"similar": {"to": TO}}, "'by'"),
        ({"similar": {"to": TO, "by": ""}}, "'by'"),
        ({"similar": {"to": TO, "by": 3}}, "'by'"),
        ({"similar": {"to": TO, "by": "v" * 201}}, "'by'"),
        ({"similar": {"by": "vec"}}, "exactly one"),
        ({"similar": {"by": "vec", "to": TO, "vector": [1, 0]}}, "exactly one"),
        ({"similar": {"by": "vec", "to": TO, "limt": 3}}, "limt"),
        ({"similar": {"by": "vec", "to": "/path/vec/missing"}}, "not registered"),
        ({"similar": {"by": "vec", "to": 12}}, "'to'"),
        ({"similar": {"by": "vec", "to": ""}}, "'to'"),
        ({"similar": {"by": "vec", "to": "relative/key"}}, "start with '/'"),
        ({"similar": {"by": "vec", "to": "/bad\u0001key"}}, "control character"),
        ({"similar": {"by": "nope", "to": TO}}, "no such field"),
        ({"similar": {"by": "name", "to": TO}}, "not a usable vector"),
        ({"similar": {"by": "vec", "to": "/path/vec/zero"}}, "not a usable vector"),
        ({"similar": {"by": "vec", "vector": []}}, "non-empty"),
        ({"similar": {"by": "vec", "vector": "0.5,0.8"}}, "non-empty list"),
        ({"similar": {"by": "vec", "vector": [0.5, "0.8"]}}, "only numbers"),
        ({"similar": {"by": "vec", "vector": [True, False]}}, "only numbers"),
        ({"similar": {"by": "vec", "vector": [0.5, None]}}, "only numbers"),
        ({"similar": {"by": "vec", "vector": [[0.5, 0.8], [1]]}}, "only numbers"),
        ({"similar": {"by": "vec", "vector": [0, 0]}}, "not all zeros"),
        ({"similar": {"by": "vec", "to": TO, "limit": 0}}, "'limit'"),
        ({"similar": {"by": "vec", "to": TO, "limit": 1001}}, "'limit'"),
        ({"similar": {"by": "vec", "to": TO, "limit": -1}}, "'limit'"),
        ({"similar": {"by": "vec", "to": TO, "limit": "10"}}, "'limit'"),
        ({"similar": {"by": "vec", "to": TO, "limit": 2.5}}, "'limit'"),
        ({"similar": {"by": "vec", "to": TO, "limit": True}}, "'limit'"),
        ({"similar": {"by": "vec", "to": TO, "limit": None}}, "'limit'"),
    ],
)
def test_search_errors(contract, body, words):
    post_item(contract, "/path/vec/zero", {"vec": [0, 0]})
    body = error_of(verb(contract, CONTRACT_DIR + "_search", body), 400)
    assert words in body["detail"], body


@pytest.mark.parametrize("raw", [b"", b"not json", b"[1, 2]", b'"similar"', b"{"])
def test_body_not_a_json_object(contract, raw):
    for name in ("_search", "_create_index"):
        error_of(verb(contract, CONTRACT_DIR + name, raw), 400)


def test_non_finite_vector_rejected(contract):
    # Whether the body reader refuses NaN/Infinity or reads them, it is a 400.
    error_of(verb(contract, CONTRACT_DIR + "_search", b'{"similar": {"by": "vec", "vector": [NaN, 1]}}'), 400)
    error_of(verb(contract, CONTRACT_DIR + "_search", b'{"similar": {"by": "vec", "vector": [1e999, 1]}}'), 400)
    error_of(verb(contract, CONTRACT_DIR + "_search", b'{"similar": {"by": "vec", "vector": [0.5, 1e999]}}'), 400)
    from objects.errors import BadRequest
    from search.verbs import search as search_verb

    for value in (float("nan"), float("inf")):
        with pytest.raises(BadRequest, match="finite"):
            search_verb({"similar": {"by": "vec", "vector": [value, 1]}}, CONTRACT_DIR)


def test_limit_as_whole_float_accepted(contract):
    response = verb(contract, CONTRACT_DIR + "_search", {"similar": {"by": "vec", "to": TO, "limit": 2.0}})
    assert response.status_code == 200 and len(response.json()) == 2


def test_huge_and_tiny_numbers_are_fine(api):
    post_item(api, "/h/big", {"v": [1e300, 1e300]})
    post_item(api, "/h/small", {"v": [1e-300, -1e-300]})
    post_item(api, "/h/int", {"v": [10**30, 1]})
    response = verb(api, "/h/_search", {"similar": {"by": "v", "vector": [1e308, 1e308], "limit": 5}})
    assert response.status_code == 200
    assert [r["_filepath"] for r in response.json()] == ["/h/big", "/h/int", "/h/small"]


def test_create_index_errors(contract):
    for body, words in [
        ({}, "similar"),
        ({"similar": {}}, "'by'"),
        ({"similar": {"by": ["vec"]}}, "'by'"),
        ({"similar": {"by": "vec", "to": TO}}, "'to'"),
    ]:
        assert words in error_of(verb(contract, CONTRACT_DIR + "_create_index", body), 400)["detail"]


def test_create_index_404_without_vectors(contract):
    body = error_of(verb(contract, CONTRACT_DIR + "_create_index", {"similar": {"by": "name"}}), 404)
    assert "name" in body["detail"]
    error_of(verb(contract, "/elsewhere/_create_index", {"similar": {"by": "vec"}}), 404)


def test_create_index_answer(contract):
    body = create_index(contract, CONTRACT_DIR, "vec")
    assert body["indexed"] == 4 and body["dir"] == CONTRACT_DIR and body["by"] == "vec"
    assert body["dims"] == {"2": 4}


def test_verbs_need_post(contract):
    for name in ("_search", "_create_index"):
        response = contract.get(CONTRACT_DIR + name)
        assert response.status_code == 405


def test_verbs_need_write_access(contract, settings):
    settings.ISTORE_ALLOW_ANONYMOUS_WRITES = False
    response = verb(contract, CONTRACT_DIR + "_search", {"similar": {"by": "vec", "to": TO}})
    assert response.status_code == 401
    response = verb(contract, CONTRACT_DIR + "_create_index", {"similar": {"by": "vec"}})
    assert response.status_code == 401


def test_verbs_with_a_token(contract, settings, django_user_model):
    from rest_framework.authtoken.models import Token

    settings.ISTORE_ALLOW_ANONYMOUS_WRITES = False
    token = Token.objects.create(user=django_user_model.objects.create_user("searcher"))
    response = contract.post(CONTRACT_DIR + "_search", {"similar": {"by": "vec", "to": TO}},
                             content_type="application/json", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200 and len(response.json()) == 4
