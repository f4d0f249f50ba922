"""POST {dir}/_duplicates: near-duplicate groups by the built-in features."""
import pytest
from django.core.management import call_command

from recognition import duplicates
from tests.conftest import body

CATS = ["/album/cat-mirror.jpg", "/album/cat-small.jpg", "/album/cat.jpg"]
CUPS = ["/album/cup-bright.jpg", "/album/cup.jpg"]


def groups(api, directory, request):
    response = api.verb(directory, "_duplicates", request)
    assert response.status_code == 200, response.content
    return body(response)["groups"]


@pytest.mark.parametrize("by", [None, "_pdq", "_phash", "_embedding"])
def test_groups_each_photograph_with_its_copies(api, album, by):
    request = {} if by is None else {"by": by}
    assert groups(api, album, request) == [CATS, CUPS]


def test_max_distance_zero_groups_only_identical_hashes(api, album, pictures):
    api.upload("/album/cat-again.jpg", pictures["cat.jpg"], content_type="image/jpeg")
    call_command("compute_features", "/album/", "--no-progress")
    assert groups(api, album, {"by": "_pdq", "max_distance": 0}) == [["/album/cat-again.jpg", "/album/cat.jpg"]]


def test_only_items_under_the_directory(api, album, pictures):
    api.upload("/elsewhere/cat.jpg", pictures["cat.jpg"], content_type="image/jpeg")
    assert groups(api, "/album/", {}) == [CATS, CUPS]
    assert groups(api, "/elsewhere/", {}) == []


def test_the_graph_path_for_large_folders_finds_the_same_groups(api, album, monkeypatch):
    monkeypatch.setattr(duplicates, "EXACT_MAX", 1)
    for by in ("_pdq", "_embedding"):
        assert groups(api, album, {"by": by}) == [CATS, CUPS], by


@pytest.mark.parametrize("request_body", [
    {"by": "vec"}, {"by": "_pdq", "max_distance": -0.1}, {"max_distance": True}, {"threshold": 0.2}, [],
])
def test_bad_requests_are_400(api, album, request_body):
    response = api.verb(album, "_duplicates", request_body)
    assert response.status_code == 400, response.content
    assert "detail" in body(response)


def test_needs_write_access(secured_api):
    response = secured_api.verb("/album/", "_duplicates", {})
    assert response.status_code in (401, 403)
