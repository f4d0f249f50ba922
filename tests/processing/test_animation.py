"""Animated GIF and WebP through the operations, over HTTP: every frame, durations, loop count,
transparency; frame=N; info; ISTORE_MAX_ANIMATION_PIXELS."""
import io

import numpy as np
import pytest
from PIL import Image

from tests.conftest import body
from tests.objects.conftest import content

from .conftest import ANIMATION_DURATIONS, animation_frames, encode_animation, frames_of, run, save

KEY = {"GIF": "/anim/a.gif", "WEBP": "/anim/a.webp"}
TYPE = {"GIF": "image/gif", "WEBP": "image/webp"}
LOSSY_WEBP = 14  # mean colour error of lossy WebP on these frames, at quality=100

# Each operation animations keep frames through, with one query.
OPERATIONS = [
    "apply=resize&w=16", "apply=fit&w=20&h=20", "apply=crop&x1=2&y1=2&x2=30&y2=20", "apply=flipH",
    "apply=flipV", "apply=transpose", "apply=transverse", "apply=grayscale", "apply=invert",
    "apply=adjustBrightness&percentage=20", "apply=adjustContrast&percentage=30",
    "apply=adjustGamma&gamma=1.5", "apply=adjustSigmoid&midpoint=0.5&factor=3", "apply=blur&sigma=1",
    "apply=sharpen&sigma=1", "apply=drawRect&rects=x1/1,y1/1,x2/10,y2/10,g/255",
]


@pytest.fixture
def upload(api):
    def put(data, fmt):
        response = api.upload(KEY[fmt], data, content_type=TYPE[fmt])
        assert response.status_code in (200, 201), response.content
        return KEY[fmt]
    return put


def get(api, key, query, status=200, **headers):
    response = api.get(key, query, **headers)
    assert response.status_code == status, f"{query}: {response.status_code} {content(response)[:300]}"
    return response


def expected_frames(data, query, tmp_path):
    """Each source frame through the still pipeline (as PNG): what every output frame must show."""
    im = Image.open(io.BytesIO(data))
    out = []
    for index in range(im.n_frames):
        im.seek(index)
        path = save(tmp_path / f"frame{index}.png", im.convert("RGBA"), "PNG")
        out.append(np.asarray(Image.open(io.BytesIO(run(query + "&format=png", path).data)).convert("RGBA")))
    return out


def assert_same_frames(got, want, tolerance, what):
    assert len(got) == len(want), f"{what}: {len(got)} frames, expected {len(want)}"
    for index, (a, b) in enumerate(zip(got, want)):
        assert a.shape == b.shape, f"{what}: frame {index} is {a.shape}, expected {b.shape}"
        visible = (a[..., 3] >= 128) != (b[..., 3] >= 128)
        assert visible.mean() <= 0.02, f"{what}: frame {index} differs in transparency at {visible.sum()} pixels"
        both = (a[..., 3] >= 128) & (b[..., 3] >= 128)
        error = np.abs(a[both][:, :3].astype(int) - b[both][:, :3]).mean() if both.any() else 0
        assert error <= tolerance, f"{what}: frame {index} colours differ by {error:.2f} on average"


@pytest.mark.parametrize("query", OPERATIONS)
def test_gif_keeps_every_frame_through_each_operation(api, upload, animated_gif, tmp_path, query):
    response = get(api, upload(animated_gif, "GIF"), query)
    assert response["Content-Type"] == "image/gif"
    frames, durations = frames_of(content(response))
    assert durations == ANIMATION_DURATIONS, f"{query}: durations {durations}"
    assert_same_frames(frames, expected_frames(animated_gif, query, tmp_path), 6, query)


@pytest.mark.parametrize("query", ["apply=resize&w=16", "apply=flipV", "apply=blur&sigma=1"])
def test_webp_keeps_every_frame(api, upload, animated_webp, tmp_path, query):
    response = get(api, upload(animated_webp, "WEBP"), query + "&quality=100")
    assert response["Content-Type"] == "image/webp"
    frames, durations = frames_of(content(response))
    assert durations == ANIMATION_DURATIONS
    # lossy WebP halves the colour resolution: the edges of these small saturated squares bleed
    assert_same_frames(frames, expected_frames(animated_webp, query, tmp_path), LOSSY_WEBP, query)


@pytest.mark.parametrize("source,target", [("GIF", "WEBP"), ("WEBP", "GIF")])
def test_animation_converts_between_gif_and_webp(api, upload, source, target, tmp_path):
    data = encode_animation(source, loop=0)
    result = content(get(api, upload(data, source), f"apply=flipH&format={target.lower()}&quality=100"))
    out = Image.open(io.BytesIO(result))
    assert out.format == target and out.n_frames == len(ANIMATION_DURATIONS)
    assert out.info.get("loop") == 0, "an animation looping for ever still does"
    frames, durations = frames_of(result)
    assert durations == ANIMATION_DURATIONS
    tolerance = LOSSY_WEBP if target == "WEBP" else 6
    assert_same_frames(frames, expected_frames(data, "apply=flipH", tmp_path), tolerance, f"{source} to {target}")


@pytest.mark.parametrize("loop", [None, 0, 3])
def test_gif_loop_count_is_kept(api, upload, loop):
    options = {} if loop is None else {"loop": loop}
    key = upload(encode_animation("GIF", **options), "GIF")
    out = Image.open(io.BytesIO(content(get(api, key, "apply=flipH"))))
    assert out.info.get("loop") == loop, f"loop {loop} came back as {out.info.get('loop')}"


def test_webp_loop_count_is_kept(api, upload):
    key = upload(encode_animation("WEBP", loop=5), "WEBP")
    assert Image.open(io.BytesIO(content(get(api, key, "apply=flipH")))).info["loop"] == 5


def test_opaque_gif_keeps_moving_part_exactly(api, upload, tmp_path):
    frames = [Image.alpha_composite(Image.new("RGBA", f.size, (255, 255, 255, 255)), f)
              for f in animation_frames()]
    data = encode_animation("GIF", frames, disposal=1)
    response = get(api, upload(data, "GIF"), "apply=flipV")
    got, _ = frames_of(content(response))
    want = [np.asarray(f)[::-1] for f in frames]
    for index, (a, b) in enumerate(zip(got, want)):
        assert (a == b).all(), f"frame {index} of an opaque few-colour GIF must be exact"


def test_identical_frames_are_merged_keeping_the_time(api, upload):
    frame = Image.new("RGB", (8, 8), (255, 0, 0))
    other = Image.new("RGB", (8, 8), (0, 255, 0))
    out = io.BytesIO()
    frame.save(out, "GIF", save_all=True, append_images=[other, frame], duration=[100, 200, 300], loop=0)
    response = get(api, upload(out.getvalue(), "GIF"), "apply=resize&w=4&format=webp")
    _, durations = frames_of(content(response))
    assert sum(durations) == 600, f"the animation must last as long: {durations}"


def test_identity_gives_the_animation_unchanged(api, upload, animated_gif):
    response = get(api, upload(animated_gif, "GIF"), "apply=resize&w=0&h=0")
    assert content(response) == animated_gif


def test_to_a_still_format_gives_the_first_frame(api, upload, animated_gif, tmp_path):
    response = get(api, upload(animated_gif, "GIF"), "apply=flipH&format=png")
    frames, _ = frames_of(content(response))
    assert_same_frames(frames, expected_frames(animated_gif, "apply=flipH", tmp_path)[:1], 0, "png")


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_frame_picks_one_still(api, upload, animated_gif, animated_webp, tmp_path, fmt):
    data = {"GIF": animated_gif, "WEBP": animated_webp}[fmt]
    response = get(api, upload(data, fmt), "apply=flipH&frame=3&quality=100")
    out = Image.open(io.BytesIO(content(response)))
    assert getattr(out, "n_frames", 1) == 1, "frame=N is a still image"
    want = expected_frames(data, "apply=flipH", tmp_path)[3]
    tolerance = LOSSY_WEBP if fmt == "WEBP" else 6
    assert_same_frames([np.asarray(out.convert("RGBA"))], [want], tolerance, f"frame=3 of the {fmt}")


def test_frame_past_the_end_is_422(api, upload, animated_gif):
    response = get(api, upload(animated_gif, "GIF"), "apply=flipH&frame=5", status=422)
    assert "5 frames" in body(response)["detail"]


@pytest.mark.parametrize("value", ["-1", "x", "1.5", ""])
def test_bad_frame_is_400_naming_it(api, upload, animated_gif, value):
    response = get(api, upload(animated_gif, "GIF"), f"apply=flipH&frame={value}", status=400)
    assert "parameter frame" in body(response)["detail"]


def test_frame_of_a_still_image(api, tmp_path):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, "PNG")
    api.upload("/anim/still.png", buffer.getvalue(), content_type="image/png")
    assert get(api, "/anim/still.png", "apply=flipH&frame=0")["Content-Type"] == "image/png"
    get(api, "/anim/still.png", "apply=flipH&frame=1", status=422)


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_info_gives_frames_and_duration(api, upload, animated_gif, animated_webp, fmt):
    data = {"GIF": animated_gif, "WEBP": animated_webp}[fmt]
    facts = body(get(api, upload(data, fmt), "apply=info"))
    assert facts["frames"] == 5 and facts["duration"] == pytest.approx(0.8), facts
    assert (facts["width"], facts["height"]) == (32, 24)


def test_info_of_a_still_has_no_frames(api):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, "GIF")
    api.upload("/anim/still.gif", buffer.getvalue(), content_type="image/gif")
    assert "frames" not in body(get(api, "/anim/still.gif", "apply=info"))


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_animation_over_the_pixel_limit_is_413(api, upload, animated_gif, animated_webp, settings, fmt):
    key = upload({"GIF": animated_gif, "WEBP": animated_webp}[fmt], fmt)
    settings.ISTORE_MAX_ANIMATION_PIXELS = 32 * 24 * 4  # four of the five frames
    assert "ISTORE_MAX_ANIMATION_PIXELS" in body(get(api, key, "apply=flipH", status=413))["detail"]
    get(api, key, "apply=flipH&frame=2")  # three frames decoded: within the limit
    get(api, key, "apply=flipH&frame=4", status=413)


def test_output_animation_over_the_pixel_limit_is_413(api, upload, animated_gif, settings):
    settings.ISTORE_MAX_ANIMATION_PIXELS = 5 * 32 * 24
    key = upload(animated_gif, "GIF")
    get(api, key, "apply=resize&w=16")
    get(api, key, "apply=resize&w=64", status=413)


def test_transparent_frame_after_opaque_ones_shows_nothing_of_them(api, upload, tmp_path):
    frames = animation_frames(count=4)
    for index in (0, 1):  # two opaque frames, then two with transparent pixels
        frames[index] = Image.alpha_composite(Image.new("RGBA", frames[index].size, (255, 255, 255, 255)),
                                              frames[index])
    data = encode_animation("GIF", frames, durations=[100] * 4)
    got, _ = frames_of(content(get(api, upload(data, "GIF"), "apply=flipH")))
    assert_same_frames(got, expected_frames(data, "apply=flipH", tmp_path), 0, "opaque then transparent")
