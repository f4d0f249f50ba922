"""POST {dir}/_expand: one frame item per second of a video (§8)."""
import subprocess

import imageio_ffmpeg
import pytest
from django.core.management import call_command

from objects.models import Item
from tests.conftest import body

VIDEO = "/videos/clip.mp4"


@pytest.fixture(scope="module")
def clip_bytes(tmp_path_factory):
    """A 10.5 s, 64x48 H.264 video whose frames differ (testsrc's counter)."""
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i",
                    "testsrc=size=64x48:rate=10:duration=10.5", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    "-g", "10", str(path)], check=True)
    return path.read_bytes()


@pytest.fixture
def clip(api, clip_bytes):
    assert api.upload(VIDEO, clip_bytes, content_type="video/mp4").status_code == 201
    return VIDEO


def expand(api, directory, payload):
    return api.verb(directory, "_expand", payload)


def test_expand_registers_one_item_per_second(api, clip):
    response = expand(api, "/path/slice/", {"video": clip})
    assert response.status_code == 201, response.content
    assert body(response) == {"created": 11, "updated": 0}, "a 10.5 s video gives 11 frames"
    listed = body(api.get("/path/slice/"))
    assert [item["_filepath"] for item in listed] == [
        f"/path/slice/self:///videos/clip.mp4?apply=frame&sec={i:02d}" for i in range(11)
    ], "keys are zero-padded so that key order is time order"
    assert listed[3]["metadata"] == {"timestamp": "00:00:03", "video": VIDEO}


def test_a_duration_a_tag_writes_into_ffmpegs_dump_does_not_multiply_the_frames(api, tmp_path):
    """The title tag adds a line "Duration: 02:46:40.00" before the real one; 2 s give 2 items."""
    path = tmp_path / "lying.mkv"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i",
                    "testsrc=duration=2:size=64x48:rate=10", "-metadata",
                    "title=x\n  Duration: 02:46:40.00, start: 0.000000, bitrate: 1 kb/s", "-c:v", "mjpeg", str(path)],
                   check=True)
    assert api.upload("/videos/lying.mkv", path.read_bytes(), content_type="video/x-matroska").status_code == 201
    response = expand(api, "/lying/", {"video": "/videos/lying.mkv"})
    assert response.status_code == 201, response.content
    assert body(response) == {"created": 2, "updated": 0}, "the frames must follow the video's real streams"


def test_frame_keys_serve_their_jpeg(api, clip):
    expand(api, "/s/", {"video": clip})
    frames = [api.client.get(f"/s/self:///videos/clip.mp4%3Fapply=frame&sec={i:02d}") for i in (0, 5, 10)]
    for response in frames:
        assert response.status_code == 200
        assert response["Content-Type"] == "image/jpeg"
    contents = [b"".join(r.streaming_content) if r.streaming else r.content for r in frames]
    assert contents[0][:2] == b"\xff\xd8"
    assert len(set(contents)) == 3, "frames of different seconds differ"


def test_expand_twice_updates_and_never_duplicates(api, clip):
    expand(api, "/twice/", {"video": clip})
    again = expand(api, "/twice/", {"video": clip})
    assert body(again) == {"created": 0, "updated": 11}
    assert Item.objects.filter(key__startswith="/twice/").count() == 11


def test_every_steps_the_seconds(api, clip):
    response = expand(api, "/every/", {"video": clip, "every": 5})
    assert body(response)["created"] == 3
    assert api.keys("/every/")[-1].endswith("sec=10")


def test_source_paths_work_unregistered(api, clip_bytes, tmp_path, settings):
    (tmp_path / "v.mp4").write_bytes(clip_bytes)
    settings.ISTORE_FILE_ROOTS = [str(tmp_path)]
    response = expand(api, "/src/", {"video": f"/lib/file://{tmp_path}/v.mp4"})
    assert response.status_code == 201, response.content
    first = api.keys("/src/")[0]
    assert first == f"/src/self:///lib/file://{tmp_path}/v.mp4?apply=frame&sec=00"


def test_video_key_with_percent_and_question_mark(api, clip_bytes):
    odd = "/videos/100% a?b.mp4"
    api.upload(odd, clip_bytes, content_type="video/mp4")
    expand(api, "/odd/", {"video": odd})
    key = api.keys("/odd/")[1]
    assert key == "/odd/self:///videos/100%25 a%3Fb.mp4?apply=frame&sec=01"
    assert api.get(key).status_code == 200, "the escaped video key must lead back to the video"


@pytest.mark.parametrize("payload, status", [
    ({}, 400), ({"video": 3}, 400), ({"video": "relative.mp4"}, 400), ({"video": "/v", "every": 0}, 400),
    ({"video": "/v", "every": "x"}, 400), ({"video": "/nothing/here.mp4"}, 404),
])
def test_bad_requests(api, payload, status):
    response = expand(api, "/bad/", payload)
    assert response.status_code == status, response.content
    assert set(body(response)) == {"error", "detail"}
    assert not Item.objects.filter(key__startswith="/bad/").exists()


def test_body_not_json_is_400(api):
    response = api.client.post("/bad/_expand", "not json", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400


def test_not_a_video_is_415(api):
    api.upload("/files/notes.txt", b"plain words", content_type="text/plain")
    response = expand(api, "/bad/", {"video": "/files/notes.txt"})
    assert response.status_code == 415, response.content


def test_registered_key_without_content_is_404(api):
    api.post("/files/meta-only", {"a": 1})
    assert expand(api, "/bad/", {"video": "/files/meta-only"}).status_code == 404


def test_management_command(api, clip, capsys):
    call_command("expand", "/cmd/", clip, "--no-progress")
    assert "11 created" in capsys.readouterr().out
    assert len(api.keys("/cmd/")) == 11


def test_expanded_frames_appear_in_the_change_feed(api, clip):
    since = body(api.client.get("/path/slice/_changes?since=now"))["last_seq"]
    expand(api, "/path/slice/", {"video": clip})
    answer = body(api.client.get(f"/path/slice/_changes?since={since}"))
    assert [change["op"] for change in answer["changes"]] == ["create"] * 11, "one change per frame registered"
