"""
Hostile media through HTTP (issue 9 §2): each file is uploaded as a key's
content, then read raw, with ``?apply=resize&w=100`` and ``?apply=info`` (and,
for videos, ``?apply=frame&sec=1``). Every answer is a 4xx or a safe response,
comes quickly, shows nothing of the server (no path, no traceback), and the
worker survives: a normal request succeeds afterwards.

Memory: a gunicorn worker of istore starts at about 66 MB RSS (measured with
one worker, SQLite, after /_health), and must stay under 500 MB, so one request
may grow a worker by at most ``GROWTH_BUDGET``. Growth is the kernel's peak RSS
(VmHWM, reset through /proc/self/clear_refs) minus the RSS before the request,
in this very process, which runs the whole Django stack as a worker does.
ffmpeg runs as a child process: its peak is read from getrusage(RUSAGE_CHILDREN).
"""
import io
import json
import time

import pytest
from PIL import Image

from objects.models import Item
from tests.security import conftest as media
from tests.security.conftest import MemoryWatch, MiB, payload
from tests.servers import unavailable

WORKER_CAP = 500 * MiB
WORKER_BASELINE = 66 * MiB  # gunicorn worker after start-up, see the module docstring
GROWTH_BUDGET = WORKER_CAP - WORKER_BASELINE - 14 * MiB  # 420 MiB, with some slack
QUICK = 5.0  # seconds for any hostile image request
QUICK_VIDEO = 15.0  # seconds for a hostile video request (ffmpeg is a subprocess)
QUERIES = ("", "apply=resize&w=100", "apply=info")


def hostile_images():
    """(name, bytes, declared content type, expected statuses per query or None for "any safe")."""
    big_jpeg, big_png, big_gif, big_webp = (media.jpeg((640, 480)), media.png((640, 480)),
                                            media.gif((640, 480)), media.webp((640, 480)))
    not_an_image = {"apply=resize&w=100": {415}, "apply=info": {415}}
    return [
        ("truncated.jpg", media.truncated(big_jpeg), "image/jpeg", None),
        ("corrupt.jpg", media.corrupted(big_jpeg), "image/jpeg", None),
        ("truncated.png", media.truncated(big_png), "image/png", None),
        ("corrupt.png", media.corrupted(big_png), "image/png", None),
        ("truncated.gif", media.truncated(big_gif), "image/gif", None),
        ("corrupt.gif", media.corrupted(big_gif), "image/gif", None),
        ("truncated.webp", media.truncated(big_webp), "image/webp", None),
        ("corrupt.webp", media.corrupted(big_webp), "image/webp", None),
        ("header-only.jpg", big_jpeg[:20], "image/jpeg", not_an_image),
        ("bomb.png", media.png_declaring(100_000, 100_000), "image/png",
         {"apply=resize&w=100": {413}, "apply=info": {413}}),
        ("bomb-wide.png", media.png_declaring(2**31 - 1, 1), "image/png",
         {"apply=resize&w=100": {413, 415}, "apply=info": {413, 415}}),
        ("bomb.gif", media.gif_declaring(65535, 65535), "image/gif",
         {"apply=resize&w=100": {413}, "apply=info": {413}}),
        ("zero-size.png", media.png_declaring(0, 0), "image/png", not_an_image),
        ("script.svg", media.SVG_WITH_SCRIPT, "image/svg+xml", not_an_image),
        ("gif-html.gif", media.gif_html_polyglot(), None, {"apply=resize&w=100": {200}, "apply=info": {200}}),
        ("jpeg-zip.jpg", media.jpeg_zip_polyglot(), None, {"apply=resize&w=100": {200}, "apply=info": {200}}),
        ("random.bin", bytes(range(256)) * 64, "image/png", not_an_image),
    ]


def check_safe(response, data, settings, elapsed, limit=QUICK):
    """The common bar: no 5xx, JSON errors, nothing of the server shown, quick, nosniff."""
    assert response.status_code < 500, data[:300]
    assert elapsed < limit, f"took {elapsed:.1f} s"
    assert response["X-Content-Type-Options"] == "nosniff"
    if response.status_code >= 400:
        assert response["Content-Type"] == "application/json"
        error = json.loads(data)
        assert set(error) == {"error", "detail"}
        for text in media.forbidden_texts(settings):
            assert text not in error["detail"], f"the error shows {text!r}: {error['detail']}"


def get(api, key, query):
    started = time.monotonic()
    response = api.get(key, query)
    data = payload(response)
    return response, data, time.monotonic() - started


def assert_worker_survives(api):
    """A normal request still works after the hostile one (nothing poisoned, nothing locked)."""
    key = "/hostile/control.png"
    if not Item.objects.filter(key=key).exists():
        assert api.upload(key, media.png(), content_type="image/png").status_code == 201
    response = api.get(key, "apply=resize&w=10")
    assert response.status_code == 200
    assert Image.open(io.BytesIO(payload(response))).size[0] == 10


@pytest.mark.parametrize("name,data,content_type,expected",
                         [pytest.param(*case, id=case[0]) for case in hostile_images()])
def test_hostile_image_gives_4xx_or_a_safe_response(api, settings, name, data, content_type, expected):
    key = f"/hostile/{name}"
    assert api.upload(key, data, content_type=content_type).status_code == 201
    for query in QUERIES:
        response, body, elapsed = get(api, key, query)
        check_safe(response, body, settings, elapsed)
        if expected and query in expected:
            assert response.status_code in expected[query], (query, response.status_code, body[:200])
        if query == "apply=resize&w=100" and response.status_code == 200:
            # A "safe response" to a damaged file is a real, decodable image of the asked width.
            image = Image.open(io.BytesIO(body))
            image.load()
            assert image.size[0] == 100
        if query == "" and response.status_code == 200:
            assert body == data, "raw content is served as stored"
    assert_worker_survives(api)


def test_zero_byte_multipart_file(api, settings):
    """A zero-byte file sent as a multipart field is stored as empty content; processing it is 415."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    key = "/hostile/empty.png"
    response = api.client.post(key, {"file": SimpleUploadedFile("empty.png", b"", "image/png")})
    assert response.status_code == 201, response.content
    response, body, elapsed = get(api, key, "")
    check_safe(response, body, settings, elapsed)
    assert response.status_code == 200 and body == b""
    for query in ("apply=resize&w=100", "apply=info", "apply=frame&sec=1"):
        response, body, elapsed = get(api, key, query)
        check_safe(response, body, settings, elapsed, QUICK_VIDEO)
        assert response.status_code == 415, (query, body)
    assert_worker_survives(api)


def test_zero_byte_raw_body_is_not_an_upload(api, settings):
    """An empty raw body carries no content (docs/api.md): the key holds metadata only, reads are 404."""
    key = "/hostile/empty-raw.png"
    assert api.upload(key, b"", content_type="image/png").status_code == 201
    for query in QUERIES:
        response, body, elapsed = get(api, key, query)
        check_safe(response, body, settings, elapsed)
        assert response.status_code == 404
        assert json.loads(body)["error"] == "no_content"


def test_animated_gif_with_thousands_of_frames_stays_small(api, settings):
    key = "/hostile/frames.gif"
    data = media.animated_gif(frames=3000, size=(64, 64))
    assert Image.open(io.BytesIO(data)).n_frames == 3000
    assert api.upload(key, data, content_type="image/gif").status_code == 201
    with MemoryWatch() as watch:
        for query in ("apply=resize&w=100", "apply=info", "apply=grayscale&frame=2999", "apply=frame&sec=1"):
            response, body, elapsed = get(api, key, query)
            # Every frame is processed, one at a time: the time grows with the frames, not the memory.
            check_safe(response, body, settings, elapsed, QUICK_VIDEO if "frame" in query else 60.0)
            if query == "apply=resize&w=100":
                assert response.status_code == 200
                out = Image.open(io.BytesIO(body))
                total = 0
                for index in range(out.n_frames):
                    out.seek(index)
                    total += out.info["duration"]
                assert total == 3000 * 20, "every frame is processed: the animation lasts as long"
            if query == "apply=frame&sec=1":
                assert response.status_code == 415, "a GIF is not a video container istore opens"
    if watch.growth is not None:
        assert watch.growth < 64 * MiB, f"grew by {watch.growth / MiB:.0f} MiB"
    assert_worker_survives(api)


def test_polyglot_gif_html_is_served_as_an_image_never_as_a_page(api):
    """Uploaded without a type, the GIF+HTML polyglot is sniffed as image/gif and sent with nosniff."""
    key = "/hostile/polyglot"
    assert api.upload(key, media.gif_html_polyglot()).status_code == 201
    response = api.get(key)
    assert response["Content-Type"] == "image/gif"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_polyglot_declared_as_html_is_sandboxed(api):
    key = "/hostile/polyglot.html"
    assert api.upload(key, media.gif_html_polyglot(), content_type="text/html").status_code == 201
    response = api.get(key)
    assert response["Content-Security-Policy"] == "sandbox"
    assert response["Content-Disposition"] == "attachment"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_processing_drops_the_appended_archive_of_a_jpeg_zip_polyglot(api):
    key = "/hostile/jpeg-zip.jpg"
    assert api.upload(key, media.jpeg_zip_polyglot(), content_type="image/jpeg").status_code == 201
    response = api.get(key, "apply=resize&w=32")
    assert response.status_code == 200
    body = payload(response)
    assert body.startswith(b"\xff\xd8") and b"PK\x03\x04" not in body and b"<script>" not in body


def test_svg_with_script_is_served_sandboxed_as_an_attachment(api):
    key = "/hostile/script.svg"
    assert api.upload(key, media.SVG_WITH_SCRIPT, content_type="image/svg+xml").status_code == 201
    for method in ("get", "head"):
        response = getattr(api, method)(key)
        assert response.status_code == 200
        assert response["Content-Type"] == "image/svg+xml"
        assert response["Content-Security-Policy"] == "sandbox"
        assert response["Content-Disposition"] == "attachment"
        assert response["X-Content-Type-Options"] == "nosniff"


def test_svg_uploaded_without_a_type_is_still_sandboxed(api):
    """curl -T sends no type: it is sniffed from the key's extension, and SVG stays sandboxed."""
    key = "/hostile/untyped.svg"
    assert api.upload(key, media.SVG_WITH_SCRIPT).status_code == 201
    response = api.get(key)
    assert response["Content-Type"] == "image/svg+xml"
    assert response["Content-Security-Policy"] == "sandbox"


def test_hostile_image_behind_an_http_source(api, settings):
    """The same limits hold for bytes fetched from an origin (the decompression bomb here)."""
    settings.ISTORE_ALLOW_LOOPBACK_SOURCES = True
    origin = media.TinyOrigin({"/bomb.png": (200, "image/png", media.png_declaring(100_000, 100_000))})
    try:
        key = f"/hostile/src/{origin.url('/bomb.png')}"
        assert api.post(key, {"what": "bomb"}).status_code == 201
        response, body, elapsed = get(api, key, "apply=resize&w=100")
        check_safe(response, body, settings, elapsed)
        assert response.status_code == 413
    finally:
        origin.close()


# ---------------------------------------------------------------- memory on the largest allowed source


@pytest.fixture
def largest_allowed_png(api, settings):
    """A 7000x7000 RGB PNG: 49 Mpx, just under the 50 Mpx default; 140 KB on the wire, ~200 MB decoded."""
    assert settings.ISTORE_MAX_SOURCE_PIXELS == 50_000_000, "this test is about the default limit"
    settings.ISTORE_CACHE_DERIVATIVES = False  # measure processing, not a cache hit
    key = "/hostile/largest.png"
    assert api.upload(key, media.png_bomb_within_limit(7000), content_type="image/png").status_code == 201
    return key


@pytest.mark.slow
@pytest.mark.parametrize("query", ["apply=resize&w=100", "apply=fit&w=100&h=100", "apply=info", "apply=grayscale",
                                   "apply=invert", "apply=adjustContrast&percentage=20", "apply=flipH",
                                   "apply=crop&x1=0&y1=0&x2=6000&y2=6000", "apply=flipV&format=jpeg"])
def test_largest_allowed_source_stays_within_the_worker_budget(api, settings, largest_allowed_png, query):
    with MemoryWatch() as watch:
        response, body, elapsed = get(api, largest_allowed_png, query)
    check_safe(response, body, settings, elapsed, limit=10.0)
    assert response.status_code == 200
    if watch.growth is None:
        unavailable("peak RSS cannot be reset here (/proc/self/clear_refs)")
    assert watch.growth < GROWTH_BUDGET, f"{query} grew the worker by {watch.growth / MiB:.0f} MiB"
    assert_worker_survives(api)


@pytest.mark.slow
@pytest.mark.parametrize("query", ["apply=blur&sigma=2", "apply=sharpen&sigma=2"])
def test_filters_on_the_largest_allowed_source_stay_within_the_worker_budget(api, settings, largest_allowed_png,
                                                                             query):
    with MemoryWatch() as watch:
        response, body, elapsed = get(api, largest_allowed_png, query)
    check_safe(response, body, settings, elapsed, limit=10.0)
    if watch.growth is None:
        unavailable("peak RSS cannot be reset here (/proc/self/clear_refs)")
    assert watch.growth < GROWTH_BUDGET, f"{query} grew the worker by {watch.growth / MiB:.0f} MiB"


@pytest.mark.slow
@pytest.mark.parametrize("query", ["apply=blur&sigma=250", "apply=sharpen&sigma=250", "apply=resize&w=16384&h=3000",
                                   "apply=resize&w=16384&h=2"])
def test_parameters_at_their_bounds_stay_within_the_worker_budget(api, settings, largest_allowed_png, query):
    """The largest sigma and the most extreme aspect on the largest source: memory within the
    worker's budget, and time within a small multiple of the plain filter (a huge sigma once took
    123 s and 1.2 GB; w=25000000&h=2 1.8 GB)."""
    with MemoryWatch() as watch:
        response, body, elapsed = get(api, largest_allowed_png, query)
    check_safe(response, body, settings, elapsed, limit=60.0)
    assert response.status_code == 200, f"{query} answered {response.status_code}"
    if watch.growth is None:
        unavailable("peak RSS cannot be reset here (/proc/self/clear_refs)")
    assert watch.growth < GROWTH_BUDGET, f"{query} grew the worker by {watch.growth / MiB:.0f} MiB"


@pytest.mark.parametrize("query, parameter", [
    ("apply=blur&sigma=1e300", "sigma"), ("apply=sharpen&sigma=251", "sigma"), ("apply=blur&sigma=100000", "sigma"),
    ("apply=resize&w=25000000&h=2", "w"), ("apply=resize&w=2&h=25000000", "h"), ("apply=fit&w=16385&h=10", "w"),
])
def test_parameters_whose_cost_grows_are_bounded_before_any_work(api, settings, largest_allowed_png, query, parameter):
    with MemoryWatch() as watch:
        response, body, elapsed = get(api, largest_allowed_png, query)
    check_safe(response, body, settings, elapsed, limit=2.0)
    assert response.status_code == 400, f"{query} answered {response.status_code}"
    assert f"parameter {parameter}" in json.loads(body)["detail"]
    if watch.growth is not None:
        assert watch.growth < 32 * MiB, f"{query} decoded the source before refusing it"


def test_an_aspect_kept_side_past_the_output_side_limit_is_400(api, settings):
    key = "/hostile/thin.png"
    assert api.upload(key, media.png((4, 400)), content_type="image/png").status_code == 201
    response, body, elapsed = get(api, key, "apply=resize&w=16000")  # h would be 1,600,000
    check_safe(response, body, settings, elapsed)
    assert response.status_code == 400 and "ISTORE_MAX_OUTPUT_SIDE" in json.loads(body)["detail"]


def test_just_over_the_pixel_limit_is_refused_before_decoding(api, settings):
    key = "/hostile/over-limit.png"
    assert api.upload(key, media.png_declaring(7072, 7072), content_type="image/png").status_code == 201
    with MemoryWatch() as watch:
        response, body, elapsed = get(api, key, "apply=resize&w=100")
    check_safe(response, body, settings, elapsed)
    assert response.status_code == 413
    if watch.growth is not None:
        assert watch.growth < 32 * MiB, "refused from the header, before any pixel is decoded"


# ---------------------------------------------------------------- video


def broken_videos(webm):
    return [
        ("truncated-head.webm", webm[:200]),
        ("truncated-5pc.webm", media.truncated(webm, 0.05)),
        ("truncated-half.webm", media.truncated(webm, 0.5)),
        ("corrupt.webm", media.corrupted(webm, 0.2, 2000)),
        ("ebml-junk.webm", b"\x1aE\xdf\xa3" + bytes(range(256)) * 20),
        ("mp4-junk.mp4", b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00\x00\x7f\xffmoov" + bytes(1000)),
        ("zero-video.webm", b""),
    ]


def test_broken_video_containers_give_4xx_or_a_frame(api, settings, small_webm, ffmpeg_peak_rss):
    for name, data in broken_videos(small_webm):
        key = f"/hostile/video/{name}"
        assert api.upload(key, data, content_type="video/webm").status_code == 201
        for query in ("apply=frame&sec=1", "apply=info", ""):
            response, body, elapsed = get(api, key, query)
            check_safe(response, body, settings, elapsed, QUICK_VIDEO)
            if query == "apply=frame&sec=1" and response.status_code == 200:
                assert Image.open(io.BytesIO(body)).format == "JPEG"
    assert ffmpeg_peak_rss() < WORKER_CAP, "ffmpeg itself must stay under the worker's memory cap"
    assert_worker_survives(api)


@pytest.fixture(scope="module")
def oversized_video():
    """A 2-second MJPEG AVI of 1280x1024 (1.3 Mpx) frames: tiny on disk."""
    import os
    import subprocess
    import tempfile

    binary = media.ffmpeg_exe()
    if binary is None:
        unavailable("no ffmpeg binary (imageio-ffmpeg) on this machine")
    with tempfile.TemporaryDirectory() as temp:
        path = os.path.join(temp, "big.avi")
        subprocess.run([binary, "-y", "-loglevel", "error", "-f", "lavfi", "-i", "color=c=red:s=1280x1024:r=1:d=2",
                        "-c:v", "mjpeg", "-q:v", "31", "-pix_fmt", "yuvj420p", path], check=True, timeout=60)
        with open(path, "rb") as file:
            return file.read()


def test_video_frames_over_the_pixel_limit_are_413(api, settings, oversized_video):
    settings.ISTORE_MAX_SOURCE_PIXELS = 1_000_000  # the 1.3 Mpx frames stand for a 144 Mpx one
    key = "/hostile/video/oversized.avi"
    assert api.upload(key, oversized_video, content_type="video/x-msvideo").status_code == 201
    response, body, elapsed = get(api, key, "apply=frame&sec=1")
    check_safe(response, body, settings, elapsed, QUICK_VIDEO)
    assert response.status_code == 413, (response.status_code, body[:200])
