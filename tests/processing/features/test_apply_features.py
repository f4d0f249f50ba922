"""GET {key}?apply=features over HTTP: uploads, sources, videos and video frame keys."""
import json

import pytest

from tests.conftest import body

from .conftest import jpeg_bytes


def features(response):
    assert response.status_code == 200, f"{response.status_code}: {response.content[:300]!r}"
    assert response["Content-Type"] == "application/json"
    return body(response)


def test_an_uploaded_photograph(api, chelsea):
    api.upload("/pets/chelsea.jpg", jpeg_bytes(chelsea), content_type="image/jpeg")
    answer = features(api.get("/pets/chelsea.jpg", "apply=features"))
    assert answer["labels"][0]["label"] == "cat"
    assert answer["embedding"]["model"] == "efficientnet-lite0@0.1.0" and answer["embedding"]["dims"] == 1280


def test_a_file_source(api, chelsea, settings, tmp_path):
    settings.ISTORE_FILE_ROOTS = [str(tmp_path)]
    (tmp_path / "cat.jpg").write_bytes(jpeg_bytes(chelsea))
    key = f"/src/file://{tmp_path}/cat.jpg"
    api.post(key, {})
    assert features(api.get(key, "apply=features"))["labels"][0]["label"] == "cat"


def test_a_video_at_zero_and_at_sec(api, timer_video):
    api.upload("/v/timer.mp4", open(timer_video, "rb").read(), content_type="video/mp4")
    at_zero = features(api.get("/v/timer.mp4", "apply=features"))
    later = features(api.get("/v/timer.mp4", "apply=features&sec=2.5"))
    assert at_zero["pdq"] != later["pdq"], "a later frame has other features"
    assert features(api.get("/v/timer.mp4", "apply=features&sec=0"))["pdq"] == at_zero["pdq"]


def test_a_video_frame_key_has_its_frame_features(api, timer_video):
    api.upload("/v/timer.mp4", open(timer_video, "rb").read(), content_type="video/mp4")
    assert api.verb("/v/frames/", "_expand", {"video": "/v/timer.mp4"}).status_code == 201
    frame_key = "/v/frames/self:///v/timer.mp4?apply=frame&sec=2"
    of_key = features(api.get(frame_key, "apply=features"))
    of_video = features(api.get("/v/timer.mp4", "apply=features&sec=2"))
    assert of_key["phash"] == of_video["phash"], "the frame key shows the video's frame at 2 s"


def test_sec_past_the_end_of_a_video_is_422(api, timer_video):
    api.upload("/v/timer.mp4", open(timer_video, "rb").read(), content_type="video/mp4")
    response = api.get("/v/timer.mp4", "apply=features&sec=60")
    assert response.status_code == 422, response.content


@pytest.mark.parametrize("query", ["apply=features&sec=-1", "apply=features&sec=abc"])
def test_a_bad_sec_is_400(api, chelsea, query):
    api.upload("/pets/chelsea.jpg", jpeg_bytes(chelsea), content_type="image/jpeg")
    response = api.get("/pets/chelsea.jpg", query)
    assert response.status_code == 400 and "sec" in json.loads(response.content)["detail"]


def test_not_an_image_is_415(api):
    api.upload("/docs/notes.txt", b"plain words, no pixels", content_type="text/plain")
    response = api.get("/docs/notes.txt", "apply=features")
    assert response.status_code == 415 and json.loads(response.content)["error"] == "unsupported_media"
