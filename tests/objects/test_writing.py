"""POST merges, PUT replaces, items keep their _id (§2, §3)."""
import json

import pytest

from objects.models import Item
from tests.conftest import body

VIDEO = "/path/sample/http://video.webmfiles.org/elephants-dream.webm"


def test_contract_examples(api):
    first = api.post(VIDEO, {"name": "my video"})
    assert first.status_code == 201, first.content
    assert body(first)["_filepath"] == VIDEO
    assert body(first)["metadata"] == {"name": "my video"}
    folder = api.post("/path/sample/", {"name": "my video"})
    assert folder.status_code == 201
    listed = body(api.get("/path/sample/"))
    assert [entry["_filepath"] for entry in listed] == ["/path/sample/", VIDEO], "folder item must come first"
    assert [entry["_id"] for entry in listed] == [body(folder)["_id"], body(first)["_id"]]


def test_original_sequence(api):
    created = api.post("/seq/a", {"x": 1})
    assert created.status_code == 201
    again = api.post("/seq/a", {"y": 2})
    assert again.status_code == 200, "a second POST to a key must answer 200"
    assert body(again)["_id"] == body(created)["_id"], "_id must not change on update"
    assert body(again)["metadata"] == {"x": 1, "y": 2}, "POST must merge"
    assert api.post("/seq/b", {"z": 3}).status_code == 201
    replaced = api.put("/seq/a", {"only": True})
    assert body(replaced)["metadata"] == {"only": True}, "PUT must replace"
    assert api.keys("/seq/") == ["/seq/a", "/seq/b"]
    assert api.delete("/seq/a").status_code == 200
    assert api.delete("/seq/a").status_code == 404, "deleting twice must be 404"
    assert body(api.delete("/seq/")) == {"deleted": 1}
    assert body(api.get("/seq/")) == []


def test_created_response_has_location(api):
    response = api.post("/photos/a?b", {"n": 1})
    assert response.status_code == 201
    assert response["Location"] == "/photos/a%3Fb"


def test_merge_patch_nests_and_null_removes(api):
    api.post("/m/k", {"a": {"b": 1, "c": 2}, "d": 1, "keep": [1, 2]})
    merged = body(api.post("/m/k", {"a": {"b": None, "e": {"f": 1}}, "d": None, "keep": [3]}))
    assert merged["metadata"] == {"a": {"c": 2, "e": {"f": 1}}, "keep": [3]}


def test_post_without_metadata_keeps_it(api):
    api.post("/m/keep", {"a": 1})
    assert body(api.post("/m/keep"))["metadata"] == {"a": 1}


def test_put_without_metadata_sets_empty_object(api):
    api.post("/m/empty", {"a": 1})
    assert body(api.put("/m/empty"))["metadata"] == {}


def test_json_body_is_accepted(api, client):
    response = client.post("/j/k", json.dumps({"metadata": {"a": [1, 2]}}), content_type="application/json")
    assert response.status_code == 201
    assert body(response)["metadata"] == {"a": [1, 2]}


def test_multipart_metadata_is_accepted(api, client):
    response = client.post("/j/multi", {"metadata": '{"a": 1}'})
    assert body(response)["metadata"] == {"a": 1}


@pytest.mark.parametrize(
    "raw, code",
    [
        ("metadata=not-json", "invalid_metadata"),
        ("metadata=[1,2]", "invalid_metadata"),
        ("metadata=%22text%22", "invalid_metadata"),
    ],
)
def test_bad_metadata_is_400_and_writes_nothing(api, client, raw, code):
    response = client.post("/bad/k", raw, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert body(response)["error"] == code
    assert "detail" in body(response)
    assert not Item.objects.filter(key="/bad/k").exists(), "a refused write must write nothing"


@pytest.mark.parametrize("payload", ['{"metadata": 3}', "[1]", "{broken", '{"meta": {}}'])
def test_bad_json_body_is_400(api, client, payload):
    response = client.post("/bad/json", payload, content_type="application/json")
    assert response.status_code == 400, payload
    assert not Item.objects.exists()


def test_metadata_over_the_limit_is_refused(api, settings):
    settings.ISTORE_MAX_METADATA_BYTES = 100
    response = api.post("/big/k", {"blob": "x" * 200})
    assert response.status_code == 400
    assert body(response)["error"] == "metadata_too_large"


def test_merge_that_grows_past_the_limit_keeps_the_old_metadata(api, settings):
    settings.ISTORE_MAX_METADATA_BYTES = 100
    api.post("/big/grow", {"a": "x" * 40})
    assert api.post("/big/grow", {"b": "y" * 60}).status_code == 400
    assert body(api.meta("/big/grow"))["metadata"] == {"a": "x" * 40}


def test_ids_are_never_reused(api):
    first = body(api.post("/ids/a"))["_id"]
    second = body(api.post("/ids/b"))["_id"]
    api.delete("/ids/b")
    third = body(api.post("/ids/c"))["_id"]
    assert first < second < third, "an id must never be reused, even after deleting the newest row"


def test_meta_returns_the_item(api):
    api.post("/m/item", {"a": 1})
    item = body(api.meta("/m/item"))
    assert item["_filepath"] == "/m/item" and item["metadata"] == {"a": 1}
    assert {"_id", "_created", "_updated"} <= set(item)


def test_directory_meta_returns_its_own_item(api):
    api.post("/folder/", {"kind": "folder"})
    assert body(api.meta("/folder/"))["metadata"] == {"kind": "folder"}


def test_unknown_scheme_in_key_is_refused(api):
    response = api.post("/a/gopher://example.com/x")
    assert response.status_code == 400
    assert "gopher" in body(response)["detail"]


def test_post_to_a_new_key_merges_onto_an_empty_object(api):
    assert body(api.post("/m/new-null", {"a": None, "b": {"c": None}, "d": 1}))["metadata"] == {"b": {}, "d": 1}
