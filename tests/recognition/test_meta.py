"""``_features`` in ``GET {key}?meta=1``, and stored features following the content they describe."""
import pytest
from django.core.management import call_command

from recognition.models import Features
from tests.conftest import body


def features_of(api, key):
    response = api.meta(key)
    assert response.status_code == 200, f"?meta=1 of {key}: {response.status_code}"
    return body(response).get("_features")


def test_meta_shows_the_features_without_the_vector(api, album):
    shown = features_of(api, "/album/cat.jpg")
    full = body(api.get("/album/cat.jpg", "apply=features"))
    assert set(shown) == {"phash", "pdq", "pdq_quality", "embedding", "labels", "computed"}, f"fields {set(shown)}"
    assert (shown["phash"], shown["pdq"], shown["pdq_quality"]) == (full["phash"], full["pdq"], full["pdq_quality"])
    assert shown["embedding"] == {"model": full["embedding"]["model"], "dims": 1280}, "no vector in ?meta=1"
    assert shown["labels"][0]["label"] == "cat" and len(shown["labels"]) == 5


def test_meta_has_no_features_until_they_are_computed(api, pictures):
    api.upload("/lib/cat.jpg", pictures["cat.jpg"], content_type="image/jpeg")
    assert features_of(api, "/lib/cat.jpg") is None, "nothing computed yet: no _features"


def test_listings_do_not_carry_features(api, album):
    assert all("_features" not in entry for entry in body(api.get("/album/"))), "only ?meta=1 shows them"


def test_content_that_is_not_a_picture_says_why(api):
    api.upload("/lib/broken.jpg", b"not a jpeg at all", content_type="image/jpeg")
    call_command("compute_features", "/lib/", "--no-progress")
    shown = features_of(api, "/lib/broken.jpg")
    assert set(shown) == {"error", "computed"} and "not an image" in shown["error"], f"_features {shown}"


def test_new_content_drops_the_features_of_the_old(api, album, pictures):
    api.upload("/album/cat.jpg", pictures["cup.jpg"], content_type="image/jpeg")
    assert features_of(api, "/album/cat.jpg") is None, "the cat's features must not describe the cup"
    found = body(api.verb("/album/", "_search", {"similar": {"to": "/album/cup.jpg", "by": "_pdq", "limit": 10}}))
    assert "/album/cat.jpg" not in [entry["_filepath"] for entry in found], "old features must not be searchable"


def test_the_same_bytes_again_keep_the_features(api, album, pictures):
    api.upload("/album/cat.jpg", pictures["cat.jpg"], content_type="image/jpeg")
    assert features_of(api, "/album/cat.jpg") is not None, "the content did not change"


def test_a_metadata_write_keeps_the_features(api, album):
    api.post("/album/cat.jpg", {"title": "Chelsea"})
    api.put("/album/cup.jpg", {"title": "Espresso"})
    assert features_of(api, "/album/cat.jpg") is not None and features_of(api, "/album/cup.jpg") is not None


def test_content_that_is_no_longer_a_picture_drops_them(api, album):
    api.upload("/album/cat.jpg", b"just words", content_type="text/plain")
    assert not Features.objects.filter(item_id=body(api.meta("/album/cat.jpg"))["_id"]).exists()


@pytest.mark.parametrize("key", ["/album/", "/album/nothing-here.jpg"])
def test_items_without_pictures_have_no_features(api, album, key):
    api.post(key, {"a": 1})
    assert features_of(api, key) is None
