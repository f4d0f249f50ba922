"""_search by the built-in features: _embedding, _phash, _pdq, max_distance, _create_index."""
import pytest

from tests.conftest import body


def search(api, directory, **similar):
    response = api.verb(directory, "_search", {"similar": similar})
    assert response.status_code == 200, response.content
    return [(entry["_filepath"].rsplit("/", 1)[1], entry["_distance"]) for entry in body(response)]


def names(results):
    return [name for name, _ in results]


def test_embedding_ranks_copies_before_another_photograph(api, album):
    results = search(api, album, to="/album/cat.jpg", by="_embedding")
    assert names(results)[0] == "cat.jpg" and results[0][1] == pytest.approx(0, abs=1e-6)
    assert set(names(results)[1:3]) == {"cat-small.jpg", "cat-mirror.jpg"}, f"copies first: {results}"
    assert all(distance < 0.2 for _, distance in results[:3]) and results[3][1] > 0.3


@pytest.mark.parametrize("by", ["_pdq", "_phash"])
def test_a_hash_finds_the_recompressed_and_the_mirrored_copy(api, album, by):
    results = search(api, album, to="/album/cat.jpg", by=by, max_distance=0.3)
    assert dict(results)["cat.jpg"] == 0
    assert set(names(results)) == {"cat.jpg", "cat-small.jpg", "cat-mirror.jpg"}, f"{by}: {results}"
    assert all(0 <= distance <= 0.3 for _, distance in results)


def test_max_distance_keeps_only_closer_items(api, album):
    everything = search(api, album, to="/album/cup.jpg", by="_pdq", limit=10)
    close = search(api, album, to="/album/cup.jpg", by="_pdq", max_distance=0.2)
    assert len(everything) == 5 and names(close) == ["cup.jpg", "cup-bright.jpg"]


def test_a_hash_given_as_hex(api, album):
    cat = body(api.get("/album/cat.jpg", "apply=features"))
    results = search(api, album, vector=cat["pdq"], by="_pdq", limit=1)
    assert results == [("cat.jpg", 0.0)]


def test_to_without_features_is_computed_on_the_spot_and_others_are_skipped(api, album, pictures):
    api.upload("/album/new-cat.jpg", pictures["cat.jpg"], content_type="image/jpeg")
    results = search(api, album, to="/album/new-cat.jpg", by="_pdq", limit=10)
    assert "new-cat.jpg" not in names(results), "an item without features yet is not a candidate"
    assert results[0] == ("cat.jpg", 0.0), "the new item's features were computed to search with"


def test_index_for_the_built_in_features(api, album):
    for by in ("_pdq", "_embedding"):
        unindexed = search(api, album, to="/album/cat.jpg", by=by, limit=5)
        response = api.verb(album, "_create_index", {"similar": {"by": by}})
        assert response.status_code == 201, response.content
        assert body(response)["indexed"] == 5
        assert search(api, album, to="/album/cat.jpg", by=by, limit=5) == unindexed, f"{by} indexed answers the same"


def test_a_metadata_field_named_like_a_feature_is_not_a_vector(api, album):
    api.post("/album/cat.jpg", {"_embedding": [1.0, 2.0], "_pdq": [0, 1]})
    results = search(api, album, to="/album/cat.jpg", by="_embedding", limit=1)
    assert results[0][0] == "cat.jpg", "the built-in embedding still answers"
    assert search(api, album, to="/album/cat.jpg", by="_pdq", limit=1) == [("cat.jpg", 0.0)]


@pytest.mark.parametrize("similar, code", [
    ({"to": "/album/cat.jpg", "by": "_pdq", "max_distance": 2}, "invalid_search"),
    ({"to": "/album/cat.jpg", "by": "_pdq", "max_distance": "near"}, "invalid_search"),
    ({"vector": "abc", "by": "_pdq"}, "invalid_search"),
    ({"vector": [1, 2, 3], "by": "_embedding"}, "invalid_search"),
    ({"to": "/album/notes.txt", "by": "_embedding"}, "no_vector"),
    ({"to": "/album/", "by": "_phash"}, "no_vector"),
])
def test_bad_queries_are_400(api, album, similar, code):
    api.upload("/album/notes.txt", b"no pixels here", content_type="text/plain")
    api.post("/album/", {"title": "an album"})
    response = api.verb(album, "_search", {"similar": similar})
    assert response.status_code == 400, response.content
    assert body(response)["error"] == code
