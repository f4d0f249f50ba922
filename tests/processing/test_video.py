"""processing.video: probe and frame grabs with the bundled ffmpeg, on videos made at test time."""
import io
import json
import os
import stat
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from processing.errors import BadParameter, TimedOut, TooLarge, ToolUnavailable, Unprocessable, UnsupportedInput
from processing import video

from .conftest import decode, frame_index, run


@pytest.fixture(autouse=True)
def fresh_caches():
    """Every test starts with empty in-process caches (probe LRU, frame index)."""
    video._probe_cached.cache_clear()
    video._index.clear()
    yield
    video._probe_cached.cache_clear()
    video._index.clear()


@pytest.fixture
def ffmpeg_calls(monkeypatch):
    """The argument lists of every ffmpeg run (still executed)."""
    calls = []
    real = video._run

    def spy(args, deadline):
        calls.append(list(args))
        return real(args, deadline)

    monkeypatch.setattr(video.runner, "_run", spy)
    return calls


def script(tmp_path, name, body):
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def assert_jpeg(data, size):
    assert data[:2] == b"\xff\xd8", "frame should be a JPEG"
    im, _ = decode(data)
    assert im.format == "JPEG" and im.size == size, f"expected a {size} JPEG, got {im.format} {im.size}"


# ------------------------------------------------------------------ probe


def test_probe_reports_format_size_duration_fps_codec(timer_video):
    assert video.probe(timer_video) == {
        "format": "mp4", "width": 160, "height": 120, "duration": 4.0, "fps": 25.0, "codec": "h264",
    }


def test_probe_webm_and_mpegts(indexed_webm, indexed_ts):
    webm = video.probe(indexed_webm)
    assert (webm["format"], webm["codec"], webm["width"], webm["height"], webm["fps"]) == ("webm", "vp9", 64, 48, 10.0)
    assert webm["duration"] == pytest.approx(4.0, abs=0.01)
    ts = video.probe(indexed_ts)
    assert (ts["format"], ts["codec"], ts["duration"]) == ("mpegts", "h264", pytest.approx(4.0, abs=0.01))


def test_probe_measures_duration_when_the_header_has_none(webm_without_duration):
    info = video.probe(webm_without_duration)
    assert info["duration"] == pytest.approx(3.0, abs=0.01), "duration should come from the packets"
    assert_jpeg(video.grab_frame(webm_without_duration, 2.95), (64, 48))


def test_probe_reports_displayed_size_of_rotated_video(rotated_video):
    info = video.probe(rotated_video)
    assert (info["width"], info["height"]) == (120, 160)
    assert_jpeg(video.grab_frame(rotated_video, 1), (120, 160))


def test_probe_is_cached_by_path_mtime_and_size(timer_video, tmp_path, ffmpeg_calls):
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(Path(timer_video).read_bytes())
    first = video.probe(copy)
    first["width"] = -1  # callers get a copy, not the cached dict
    runs = len(ffmpeg_calls)
    assert video.probe(copy)["width"] == 160
    assert len(ffmpeg_calls) == runs, "a second probe of an unchanged file should not run ffmpeg"
    os.utime(copy, ns=(time.time_ns(), time.time_ns() + 10**9))
    video.probe(copy)
    assert len(ffmpeg_calls) > runs, "a changed mtime should probe again"


def test_audio_only_is_415(audio_only):
    with pytest.raises(UnsupportedInput) as err:
        video.probe(audio_only)
    assert "no video stream" in err.value.detail


@pytest.mark.parametrize("name", ["png", "noise", "empty", "truncated", "playlist"])
def test_not_a_video_is_415(not_videos, name):
    for call in (lambda p: video.probe(p), lambda p: video.grab_frame(p, 0)):
        with pytest.raises(UnsupportedInput) as err:
            call(not_videos[name])
        assert err.value.detail.startswith("not a video")
        assert not_videos[name] not in err.value.detail, "the server's file path should not leak"


# ------------------------------------------------------------------ frames


def test_frames_are_jpegs_of_the_video_size_and_differ(timer_video):
    frames = [video.grab_frame(timer_video, sec) for sec in (0, 1, 2, 3)]
    for data in frames:
        assert_jpeg(data, (160, 120))
    pixels = [decode(f)[1].astype(np.int16) for f in frames]
    for i in range(len(pixels)):
        for j in range(i + 1, len(pixels)):
            assert np.abs(pixels[i] - pixels[j]).mean() > 1, f"frames {i} s and {j} s should differ"


SHOWN_AT = {0: 0, 0.05: 0, 0.1: 1, 0.99: 9, 1: 10, 1.04: 10, 1.5: 15, 1.95: 19, 2.0: 20, 2.01: 20, 3.9: 39, 3.999: 39}


@pytest.mark.parametrize("fixture", ["indexed_video", "indexed_webm", "indexed_ts"])
def test_frame_shown_at_sec_exactly(request, fixture):
    """The frame shown at sec: the last one whose timestamp is <= sec (10 fps, keyframes at 0 and 2 s)."""
    path = request.getfixturevalue(fixture)
    got = {sec: frame_index(video.grab_frame(path, sec)) for sec in SHOWN_AT}
    assert got == SHOWN_AT, "frame index by sec"


def test_decimal_and_string_seconds(indexed_video):
    assert frame_index(video.grab_frame(indexed_video, 2.75)) == 27
    assert frame_index(video.grab_frame(indexed_video, "2.75")) == 27


def test_dropping_non_reference_frames_changes_no_pixel(indexed_video, timer_video, monkeypatch):
    """The fast path (non-reference frames dropped before the decoder) is bit-identical to a plain decode."""
    secs = [0.3, 1.7, 2.9, 3.6]
    fast = {(p, s): video.grab_frame(p, s) for p in (indexed_video, timer_video) for s in secs}
    video._index.clear()
    monkeypatch.setattr(video.frames, "_fast_decode_supported", lambda binary, deadline: False)
    for (p, s), data in fast.items():
        assert video.grab_frame(p, s) == data, f"{os.path.basename(p)} at {s} s differs without the fast path"


def test_fast_path_drops_non_reference_frames(indexed_video, ffmpeg_calls):
    video.grab_frame(indexed_video, 1.9)
    decode_runs = [a for a in ffmpeg_calls if "image2pipe" in a]
    assert decode_runs and any(a[i + 1].startswith("noise=drop=") for a in decode_runs
                               for i, x in enumerate(a) if x == "-bsf:v")


def test_nearby_grabs_reuse_the_frame_index(indexed_video, ffmpeg_calls):
    video.grab_frame(indexed_video, 1)
    video.grab_frame(indexed_video, 1.5)  # warm: caps checked, index covers it
    runs = len(ffmpeg_calls)
    video.grab_frame(indexed_video, 3.2)
    assert len(ffmpeg_calls) == runs + 1, "a grab inside an indexed stretch should be a single ffmpeg run"


def test_quality(indexed_video, timer_video):
    low, high = video.grab_frame(timer_video, 1, quality=10), video.grab_frame(timer_video, 1, quality=95)
    assert len(low) < len(high)
    for bad in (0, 101, "x", 1.5, True):
        with pytest.raises(BadParameter):
            video.grab_frame(timer_video, 1, quality=bad)


def test_sec_past_the_end_is_422(timer_video):
    for sec in (4, 4.0, 4.5, 3600):
        with pytest.raises(Unprocessable) as err:
            video.grab_frame(timer_video, sec)
        assert "past the end" in err.value.detail


def test_last_moment_before_the_end_is_the_last_frame(indexed_video):
    assert frame_index(video.grab_frame(indexed_video, 3.99)) == 39


def test_after_a_shorter_video_stream_ends_the_last_frame_shows(short_video_long_audio):
    assert video.probe(short_video_long_audio)["duration"] == pytest.approx(4.0, abs=0.05)
    assert frame_index(video.grab_frame(short_video_long_audio, 3.5)) == 19


@pytest.mark.parametrize("sec", [-1, -0.001, float("nan"), float("inf"), "abc", None, ""])
def test_bad_sec_is_400(timer_video, sec):
    with pytest.raises(BadParameter) as err:
        video.grab_frame(timer_video, sec)
    assert err.value.detail.startswith("sec")


# ------------------------------------------------------------------ local files only


@pytest.mark.parametrize("path", ["http://127.0.0.1:9/v.mp4", "file:///etc/passwd", "/no/such/file.mp4", "", "."])
def test_only_existing_local_files(path, ffmpeg_calls):
    for call in (lambda: video.probe(path), lambda: video.grab_frame(path, 0)):
        with pytest.raises(BadParameter):
            call()
    assert ffmpeg_calls == [], "ffmpeg should not even start"


def test_ffmpeg_reads_only_the_local_file(indexed_video, ffmpeg_calls):
    video.probe(indexed_video)
    video.grab_frame(indexed_video, 1.5)
    inputs = [a for a in ffmpeg_calls if "-i" in a and not a[a.index("-i") + 1].startswith("color=")]
    assert inputs
    for args in inputs:
        assert args[args.index("-i") + 1] == "file:" + os.path.abspath(indexed_video)
        assert args[args.index("-protocol_whitelist") + 1] == "file"
        assert "hls" not in args[args.index("-format_whitelist") + 1]


# ------------------------------------------------------------------ the binary


def test_ffmpeg_binary_default_is_imageio_ffmpegs():
    import imageio_ffmpeg

    assert video.ffmpeg_binary() == imageio_ffmpeg.get_ffmpeg_exe()


@pytest.mark.parametrize("kind", ["missing", "not executable", "not ffmpeg", "not on PATH"])
def test_missing_or_broken_binary_is_503(settings, tmp_path, timer_video, kind):
    if kind == "missing":
        settings.ISTORE_FFMPEG_BINARY = str(tmp_path / "nope" / "ffmpeg")
    elif kind == "not executable":
        path = tmp_path / "ffmpeg"
        path.write_text("#!/bin/sh\n")
        settings.ISTORE_FFMPEG_BINARY = str(path)
    elif kind == "not ffmpeg":
        settings.ISTORE_FFMPEG_BINARY = script(tmp_path, "ffmpeg", "echo hello; exit 1\n")
    else:
        settings.ISTORE_FFMPEG_BINARY = "no-such-ffmpeg-binary-here"
    for call in (video.ffmpeg_binary, lambda: video.probe(timer_video), lambda: video.grab_frame(timer_video, 1)):
        with pytest.raises(ToolUnavailable) as err:
            call()
        assert "ffmpeg" in err.value.detail


def test_hung_ffmpeg_is_killed_after_the_timeout_504(settings, tmp_path, timer_video):
    pids = tmp_path / "pids"
    settings.ISTORE_FFMPEG_BINARY = script(tmp_path, "ffmpeg", (
        'if [ "$2" = "-version" ]; then echo "ffmpeg version fake"; exit 0; fi\n'
        f'sleep 30 & echo $! >> {pids}\nwait\n'
    ))
    settings.ISTORE_FFMPEG_TIMEOUT = 0.3
    for call in (lambda: video.probe(timer_video), lambda: video.grab_frame(timer_video, 1)):
        started = time.monotonic()
        with pytest.raises(TimedOut) as err:
            call()
        assert "ISTORE_FFMPEG_TIMEOUT" in err.value.detail
        assert time.monotonic() - started < 3
    time.sleep(0.1)
    for pid in map(int, pids.read_text().split() if pids.exists() else ()):  # the process group was killed
        try:
            with open(f"/proc/{pid}/stat") as f:
                assert f.read().split(")")[-1].split()[0] in ("Z", "X"), f"sleep {pid} still running"
        except FileNotFoundError:
            pass


def test_timeout_while_decoding_is_504(settings, indexed_video):
    video.probe(indexed_video)  # cached: only the grab's own runs face the tiny timeout
    settings.ISTORE_FFMPEG_TIMEOUT = 0.000001
    with pytest.raises(TimedOut):
        video.grab_frame(indexed_video, 1)


def test_jpeg_is_a_real_frame_not_a_blank(timer_video):
    im = Image.open(io.BytesIO(video.grab_frame(timer_video, 2.5))).convert("RGB")
    assert len(np.unique(np.asarray(im).reshape(-1, 3), axis=0)) > 20, "testsrc frames are colourful"


# ------------------------------------------------------------------ through the operations layer


def test_frame_and_info_operations_use_this_module(timer_video):
    result = run("apply=frame&sec=1.5", timer_video, "video/mp4")
    assert result.content_type == "image/jpeg"
    assert_jpeg(result.data, (160, 120))
    info = run("apply=info", timer_video, "video/mp4")
    assert info.content_type == "application/json"
    facts = json.loads(info.data)
    assert {k: facts[k] for k in ("format", "width", "height", "duration", "fps", "codec")} == video.probe(timer_video)


# ---------------------------------------------------------------- what the file says about itself


def test_a_frame_larger_than_the_first_is_refused_by_the_decoder(growing_video, settings):
    settings.ISTORE_MAX_SOURCE_PIXELS = 32 * 32 * 4
    assert (video.probe(growing_video)["width"], video.probe(growing_video)["height"]) == (32, 32)
    assert_jpeg(video.grab_frame(growing_video, 1.0), (32, 32))
    with pytest.raises(TooLarge) as err:
        video.grab_frame(growing_video, 2.5)
    assert "ISTORE_MAX_SOURCE_PIXELS" in err.value.detail


def test_a_frame_with_a_side_over_the_output_limit_is_refused(growing_video, settings):
    settings.ISTORE_MAX_OUTPUT_SIDE = 100
    with pytest.raises(TooLarge) as err:
        video.grab_frame(growing_video, 2.5)
    assert "ISTORE_MAX_OUTPUT_SIDE" in err.value.detail


def test_a_duration_written_into_the_dump_by_a_tag_is_not_believed(lying_duration_video):
    info = video.probe(lying_duration_video)
    assert info["duration"] == pytest.approx(2.0, abs=0.11), f"the duration came from the tag: {info['duration']}"
    with pytest.raises(Unprocessable):
        video.grab_frame(lying_duration_video, 100)
