"""Every operation of SPEC §7: parsing, errors naming parameters, cache keys, real pixel effects."""
import json
import sys
import types

import numpy as np
import pytest
from django.http import QueryDict
from PIL import Image

import processing
from processing.errors import BadParameter, Unprocessable, UnsupportedInput
from processing.operations import REGISTRY, Operation, Result, parse_operation

from .conftest import decode, run, save

SPEC_NAMES = {"adjustBrightness", "adjustContrast", "adjustGamma", "adjustSigmoid", "blur", "crop",
              "drawRect", "fit", "flipH", "flipV", "grayscale", "invert", "sharpen", "transpose",
              "transverse", "resize", "info", "frame", "features"}


def parse(query):
    return parse_operation(QueryDict(query))


def test_registry_has_exactly_the_spec_operations():
    assert set(REGISTRY) == SPEC_NAMES


def test_no_apply_is_none_and_operation_shape():
    assert parse("w=320") is None
    op = parse("apply=resize&w=320")
    assert isinstance(op, Operation) and op.name == "resize" and not op.needs_video
    assert parse("apply=frame&sec=1").needs_video


@pytest.mark.parametrize("query,words", [
    ("apply=nope", "apply='nope' is not an operation"),
    ("apply=RESIZE&w=1", "did you mean resize"),
    ("apply=", "apply='' is not an operation"),
    ("apply=resize&apply=fit", "apply is given 2 times"),
])
def test_bad_apply(query, words):
    with pytest.raises(BadParameter) as err:
        parse(query)
    assert words in err.value.detail


# (query, the parameter its error must name)
PARAM_ERRORS = [
    ("apply=adjustBrightness", "percentage"), ("apply=adjustBrightness&percentage=101", "percentage"),
    ("apply=adjustBrightness&percentage=x", "percentage"),
    ("apply=adjustContrast&percentage=-100.1", "percentage"),
    ("apply=adjustGamma", "gamma"), ("apply=adjustGamma&gamma=0", "gamma"),
    ("apply=adjustGamma&gamma=-1", "gamma"),
    ("apply=adjustSigmoid&factor=3", "midpoint"), ("apply=adjustSigmoid&midpoint=1.1&factor=3", "midpoint"),
    ("apply=adjustSigmoid&midpoint=0.5", "factor"), ("apply=adjustSigmoid&midpoint=0.5&factor=inf", "factor"),
    ("apply=blur", "sigma"), ("apply=blur&sigma=0", "sigma"), ("apply=sharpen&sigmoid=-1", "sigma"),
    ("apply=sharpen", "sigma"), ("apply=crop&x1=-1&x2=5&y2=5", "x1"), ("apply=crop&x1=5&x2=5&y2=5", "x2"),
    ("apply=crop&x2=5&y1=9&y2=3", "y2"), ("apply=crop&x2=5&y2=a", "y2"), ("apply=drawRect", "rects"),
    ("apply=drawRect&rects=x1/1", "rects"), ("apply=fit&h=10", "w"), ("apply=fit&w=10&h=0", "h"),
    ("apply=resize&w=-1", "w"), ("apply=resize&h=1.5", "h"), ("apply=resize&w=50000001", "w"),
    ("apply=frame", "sec"), ("apply=frame&sec=-0.5", "sec"), ("apply=resize&w=1&format=bmp", "format"),
    ("apply=resize&w=1&quality=0", "quality"), ("apply=resize&w=1&quality=101", "quality"),
    ("apply=resize&w=1&quality=high", "quality"), ("apply=flipH&format=", "format"),
]


@pytest.mark.parametrize("query,param", PARAM_ERRORS)
def test_every_parameter_error_names_its_parameter(query, param):
    with pytest.raises(BadParameter) as err:
        parse(query)
    assert f"parameter {param} " in err.value.detail or f"parameter {param}:" in err.value.detail
    assert "must" in err.value.detail  # says how to fix it


def test_output_limit_known_at_parse_time(settings):
    settings.ISTORE_MAX_OUTPUT_PIXELS = 100
    with pytest.raises(BadParameter, match="w x h = 121"):
        parse("apply=resize&w=11&h=11")


@pytest.mark.parametrize("a,b", [
    ("apply=resize&w=320", "h=0&w=0320&apply=resize"),
    ("apply=resize&w=0&h=0", "apply=crop"),  # both are the identity
    ("apply=adjustBrightness&percentage=0", "apply=adjustGamma&gamma=1"),
    ("apply=blur&sigma=1.50", "apply=blur&sigma=1.5"),
    ("apply=sharpen&sigmoid=2", "apply=sharpen&sigma=2.0"),
    ("apply=flipH&format=jpg", "apply=flipH&format=JPEG"),
    ("apply=flipH&format=png&quality=50", "apply=flipH&format=png"),  # quality means nothing to PNG
    ("apply=info", "apply=info&format=webp&quality=3"),
    ("apply=frame&sec=2", "apply=frame&sec=2.0&format=jpeg"),
    ("apply=drawRect&rects=x1/1,y1/1,x2/2,y2/2", "apply=drawRect&rects=y2/2,x2/2,y1/1,x1/1,r/0"),
])
def test_cache_key_equal_for_equivalent_queries(a, b):
    assert parse(a).cache_key == parse(b).cache_key


@pytest.mark.parametrize("a,b", [
    ("apply=resize&w=320", "apply=resize&w=321"), ("apply=resize&w=320", "apply=resize&h=320"),
    ("apply=resize&w=320", "apply=fit&w=320&h=320"), ("apply=flipH", "apply=flipV"),
    ("apply=flipH", "apply=flipH&format=png"), ("apply=flipH&quality=80", "apply=flipH&quality=81"),
    ("apply=flipH", "apply=flipH&quality=80"), ("apply=blur&sigma=1", "apply=sharpen&sigma=1"),
    ("apply=drawRect&rects=x1/1,y1/1,x2/2,y2/2&rects=x1/3,y1/3,x2/4,y2/4",
     "apply=drawRect&rects=x1/3,y1/3,x2/4,y2/4&rects=x1/1,y1/1,x2/2,y2/2"),
])
def test_cache_key_differs_otherwise(a, b):
    assert parse(a).cache_key != parse(b).cache_key


# ------------------------------------------------------------------ geometry, exact

@pytest.mark.parametrize("name,expect", [
    ("flipH", lambda a: a[:, ::-1]), ("flipV", lambda a: a[::-1]),
    ("transpose", lambda a: a.transpose(1, 0, 2)), ("transverse", lambda a: a[::-1, ::-1].transpose(1, 0, 2)),
    ("invert", lambda a: 255 - a),
])
def test_exact_pixel_operations(known_png, known, name, expect):
    result = run(f"apply={name}", known_png)
    assert isinstance(result, Result) and result.content_type == "image/png"
    assert np.array_equal(decode(result.data)[1], expect(known))


def test_transpose_maps_x_y_to_y_x(known_png, known):
    out = decode(run("apply=transpose", known_png).data)[1]
    assert out.shape[:2] == (12, 8)
    assert all((out[x, y] == known[y, x]).all() for y in range(8) for x in range(12))


@pytest.mark.parametrize("q,rows,cols", [
    ("x1=2&y1=1&x2=7&y2=5", slice(1, 5), slice(2, 7)),
    ("x1=10&y1=6&x2=50&y2=50", slice(6, 8), slice(10, 12)),  # clipped to the image
    ("x2=3&y2=2", slice(0, 2), slice(0, 3)),  # missing x1/y1 are 0
])
def test_crop_is_half_open_and_clipped(known_png, known, q, rows, cols):
    assert np.array_equal(decode(run("apply=crop&" + q, known_png).data)[1], known[rows, cols])


def test_crop_outside_the_image_is_bad_request(known_png):
    with pytest.raises(BadParameter, match="outside the 12x8 image"):
        run("apply=crop&x1=12&y1=0&x2=20&y2=5", known_png)


def test_identity_operations_return_the_source_bytes(known_png):
    source = open(known_png, "rb").read()
    for q in ["apply=crop", "apply=crop&x1=0&y1=0&x2=0&y2=0", "apply=resize&w=0&h=0", "apply=resize&w=12",
              "apply=fit&w=12&h=8", "apply=fit&w=100&h=100", "apply=adjustBrightness&percentage=0",
              "apply=adjustContrast&percentage=0", "apply=adjustGamma&gamma=1",
              "apply=adjustSigmoid&midpoint=0.5&factor=0", "apply=resize&format=png"]:
        result = run(q, known_png)
        assert result.data == source and result.content_type == "image/png", q


def test_identity_with_another_format_converts(known_png, known):
    result = run("apply=crop&format=webp&quality=100", known_png)
    assert result.content_type == "image/webp"
    assert decode(result.data)[0].size == (12, 8)


def test_draw_rect_outlines_with_inclusive_corners(known_png, known):
    result = run("apply=drawRect&rects=x1/2,y1/1,x2/6,y2/4,r/255,g/0,b/0"
                 "&rects=x1/-5,y1/6,x2/100,y2/100,r/1,g/2,b/3", known_png)
    expect = known.copy()
    red = (255, 0, 0)
    expect[1, 2:7] = red
    expect[4, 2:7] = red
    expect[1:5, 2] = red
    expect[1:5, 6] = red
    expect[6, :] = (1, 2, 3)  # only the top edge of the second rectangle is on the image
    assert np.array_equal(decode(result.data)[1], expect)


def test_draw_rect_on_greyscale_turns_colour(tmp_path):
    path = save(tmp_path / "g.png", Image.new("L", (5, 5), 40), "PNG")
    im, arr = decode(run("apply=drawRect&rects=x1/0,y1/0,x2/0,y2/0,r/9,g/8,b/7", path).data)
    assert im.mode == "RGB" and tuple(arr[0, 0]) == (9, 8, 7) and tuple(arr[1, 1]) == (40, 40, 40)


# ------------------------------------------------------------------ point operations, Go imaging formulas

def go_clamp(x):
    return np.clip(np.trunc(np.asarray(x, dtype=np.float64) + 0.5), 0, 255)


def brightness(i, p):
    return go_clamp(i + 255.0 * p / 100)


def contrast(i, p):
    v = (100 + p) / 100
    if v >= 2:
        return np.where(i / 255 + 0.5 >= 1, 255, 0)
    k = v if v <= 1 else 1 / (2 - v)
    return go_clamp((0.5 + (i / 255 - 0.5) * k) * 255)


def gamma(i, g):
    return go_clamp((i / 255) ** (1 / g) * 255)


def sigmoid(i, mid, factor):
    x = i / 255
    b = abs(factor)

    def s(t):
        return 1 / (1 + np.exp(b * (mid - t)))
    if factor > 0:
        return go_clamp((s(x) - s(0)) / (s(1) - s(0)) * 255)
    arg = np.clip((s(1) - s(0)) * x + s(0), 1e-6, 1 - 1e-6)
    return go_clamp((mid - np.log(1 / arg - 1) / b) * 255)


@pytest.mark.parametrize("query,formula", [
    ("adjustBrightness&percentage=20", lambda i: brightness(i, 20)),
    ("adjustBrightness&percentage=-37.5", lambda i: brightness(i, -37.5)),
    ("adjustBrightness&percentage=100", lambda i: brightness(i, 100)),
    ("adjustContrast&percentage=-50", lambda i: contrast(i, -50)),
    ("adjustContrast&percentage=30", lambda i: contrast(i, 30)),
    ("adjustContrast&percentage=100", lambda i: contrast(i, 100)),
    ("adjustContrast&percentage=-100", lambda i: contrast(i, -100)),
    ("adjustGamma&gamma=0.5", lambda i: gamma(i, 0.5)),
    ("adjustGamma&gamma=2.2", lambda i: gamma(i, 2.2)),
    ("adjustSigmoid&midpoint=0.5&factor=3", lambda i: sigmoid(i, 0.5, 3)),
    ("adjustSigmoid&midpoint=0.3&factor=-4", lambda i: sigmoid(i, 0.3, -4)),
    ("adjustSigmoid&midpoint=0&factor=10", lambda i: sigmoid(i, 0.0, 10)),
    ("invert", lambda i: 255 - i),
])
def test_point_operations_match_go_imaging(ramp_png, ramp, query, formula):
    out = decode(run("apply=" + query, ramp_png).data)[1].astype(int)
    expect = formula(ramp.astype(np.float64)).astype(int)
    assert out.shape == ramp.shape
    assert np.abs(out - expect).max() <= 1


def test_sigmoid_survives_extreme_factors(ramp_png):
    for factor in ("1e300", "-1e300", "1e-300"):
        assert run(f"apply=adjustSigmoid&midpoint=0.5&factor={factor}", ramp_png).content_type == "image/png"


def test_grayscale_is_luma(ramp_png, ramp):
    im, out = decode(run("apply=grayscale", ramp_png).data)
    assert im.mode == "L"
    r, g, b = (ramp[..., k].astype(np.float64) for k in range(3))
    assert np.abs(out.astype(int) - go_clamp(0.299 * r + 0.587 * g + 0.114 * b)).max() <= 1


def test_point_operations_leave_alpha_alone(tmp_path):
    a = np.zeros((4, 4, 4), np.uint8)
    a[..., 0] = 100
    a[..., 3] = np.arange(16).reshape(4, 4) * 16
    path = save(tmp_path / "a.png", Image.fromarray(a, "RGBA"), "PNG")
    for query in ("invert", "adjustBrightness&percentage=10", "grayscale"):
        im, out = decode(run("apply=" + query, path).data)
        assert np.array_equal(out[..., -1], a[..., 3]), query


# ------------------------------------------------------------------ filters

def sharpness(arr):
    """Mean absolute difference between horizontal neighbours: higher is sharper."""
    a = arr.astype(np.float64)
    return np.abs(np.diff(a, axis=1)).mean()


def test_blur_and_sharpen_move_sharpness_the_right_way(tmp_path):
    rng = np.random.default_rng(7)
    base = np.kron(rng.integers(60, 200, (16, 16, 3)), np.ones((4, 4, 1))).astype(np.uint8)  # 64x64 blocks
    path = save(tmp_path / "blocks.png", Image.fromarray(base, "RGB"), "PNG")
    s0 = sharpness(base)
    blurred = [sharpness(decode(run(f"apply=blur&sigma={s}", path).data)[1]) for s in (0.5, 2, 6)]
    assert s0 > blurred[0] > blurred[1] > blurred[2]
    sharpened = [sharpness(decode(run(f"apply=sharpen&sigma={s}", path).data)[1]) for s in (0.5, 2)]
    assert sharpened[0] > s0 and sharpened[1] > s0
    assert sharpness(decode(run("apply=sharpen&sigmoid=2", path).data)[1]) == sharpened[1]


def test_blur_keeps_shape_and_mean_with_alpha(tmp_path):
    a = np.zeros((20, 20, 4), np.uint8)
    a[:, :10] = (255, 0, 0, 255)  # opaque red | transparent green: no green may bleed in
    a[:, 10:] = (0, 255, 0, 0)
    path = save(tmp_path / "alpha.png", Image.fromarray(a, "RGBA"), "PNG")
    im, out = decode(run("apply=blur&sigma=2", path).data)
    assert im.mode == "RGBA" and out.shape == a.shape
    visible = out[..., 3] > 0
    assert out[visible][:, 1].max() <= 1


# ------------------------------------------------------------------ resize / fit sizes

@pytest.mark.parametrize("query,size", [
    ("resize&w=6", (6, 4)), ("resize&h=2", (3, 2)), ("resize&w=5&h=7", (5, 7)), ("resize&w=24", (24, 16)),
    ("resize&w=1&h=0", (1, 1)), ("fit&w=6&h=6", (6, 4)), ("fit&w=12&h=2", (3, 2)), ("fit&w=100&h=4", (6, 4)),
])
def test_resize_and_fit_sizes(known_png, query, size):
    assert decode(run("apply=" + query, known_png).data)[0].size == size


def test_resize_is_lanczos_not_nearest(tmp_path):
    a = np.zeros((2, 8), np.uint8)
    a[:, 4:] = 255
    path = save(tmp_path / "edge.png", Image.fromarray(a, "L"), "PNG")
    out = decode(run("apply=resize&w=4&h=2", path).data)[1]
    assert 0 < out[0, 1] < 255 or 0 < out[0, 2] < 255  # the edge is filtered, not picked


def test_resize_keeps_aspect_on_a_jpeg_downscale(photo_jpeg):
    result = run("apply=resize&w=320", photo_jpeg)
    im, arr = decode(result.data)
    assert result.content_type == "image/jpeg" and im.size == (320, 180)
    # draft + Lanczos still lands where a plain full-resolution resize does
    full = np.asarray(Image.open(photo_jpeg).resize((320, 180), Image.Resampling.LANCZOS)).astype(int)
    assert np.abs(arr.astype(int) - full).mean() < 3


def test_output_limit_at_run_time(known_png, settings):
    settings.ISTORE_MAX_OUTPUT_PIXELS = 1000
    with pytest.raises(BadParameter, match="more than the limit of 1000"):
        run("apply=resize&w=120", known_png)  # 120 x 80 = 9600: only known once the aspect is


def test_palette_gif_resizes_smoothly_and_stays_gif(tmp_path):
    im = Image.new("P", (8, 8))
    im.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    im.paste(1, (4, 0, 8, 8))
    result = run("apply=resize&w=4", save(tmp_path / "p.gif", im, "GIF"))
    assert result.content_type == "image/gif" and decode(result.data)[0].size == (4, 4)


# ------------------------------------------------------------------ info and video dispatch

def test_info_of_an_image(known_png):
    result = run("apply=info", known_png, "image/png")
    assert result.content_type == "application/json"
    assert json.loads(result.data) == {"format": "png", "width": 12, "height": 8, "mode": "RGB"}


@pytest.fixture
def fake_video(monkeypatch):
    calls = []
    module = types.ModuleType("processing.video")

    def probe(path):
        calls.append(("probe", path))
        if "not-video" in str(path):
            raise UnsupportedInput("not a video")
        return {"format": "mp4", "width": 64, "height": 48, "duration": 2.0, "fps": 25.0, "codec": "h264"}

    def grab_frame(path, sec):
        calls.append(("grab_frame", path, sec))
        if sec > 2:
            raise Unprocessable("past the end")
        out = __import__("io").BytesIO()
        Image.new("RGB", (64, 48), (10, 200, 30)).save(out, "JPEG")
        return out.getvalue()

    module.probe, module.grab_frame = probe, grab_frame
    monkeypatch.setitem(sys.modules, "processing.video", module)
    monkeypatch.setattr(processing, "video", module, raising=False)
    return calls


def test_info_of_a_video_by_content_type_and_by_sniffing(tmp_path, fake_video):
    path = tmp_path / "clip.bin"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42 not an image")
    for ct in ("video/mp4", "application/octet-stream"):
        assert json.loads(run("apply=info", str(path), ct).data)["codec"] == "h264"
    assert [c[0] for c in fake_video] == ["probe", "probe"]


def test_info_of_neither_image_nor_video_is_415(tmp_path, fake_video):
    path = tmp_path / "not-video.txt"
    path.write_text("hello")
    with pytest.raises(UnsupportedInput, match="nor is it a video"):
        run("apply=info", str(path))


def test_frame_returns_the_jpeg_and_converts_on_request(tmp_path, fake_video):
    path = str(tmp_path / "clip.mp4")
    result = run("apply=frame&sec=1.25", path, "video/mp4")
    assert result.content_type == "image/jpeg" and fake_video[-1] == ("grab_frame", path, 1.25)
    png = run("apply=frame&sec=0&format=png", path, "video/mp4")
    assert png.content_type == "image/png" and decode(png.data)[0].size == (64, 48)
    with pytest.raises(Unprocessable):
        run("apply=frame&sec=9", path, "video/mp4")


def test_every_image_operation_runs_on_rgba_palette_and_greyscale(tmp_path):
    rgba = Image.fromarray(np.random.default_rng(3).integers(0, 256, (9, 11, 4), dtype=np.uint8), "RGBA")
    sources = [save(tmp_path / "a.png", rgba, "PNG"), save(tmp_path / "b.gif", rgba.convert("P"), "GIF"),
               save(tmp_path / "c.png", rgba.convert("LA"), "PNG"),
               save(tmp_path / "d.jpg", rgba.convert("L"), "JPEG")]
    queries = ["adjustBrightness&percentage=5", "adjustContrast&percentage=5", "adjustGamma&gamma=2",
               "adjustSigmoid&midpoint=0.5&factor=2", "blur&sigma=1", "crop&x2=5&y2=5",
               "drawRect&rects=x1/1,y1/1,x2/3,y2/3,r/255", "fit&w=5&h=5", "flipH", "flipV", "grayscale",
               "invert",
               "sharpen&sigma=1", "transpose", "transverse", "resize&w=5"]
    assert {q.split("&")[0] for q in queries} | {"info", "frame", "features"} == SPEC_NAMES
    for path, ct in zip(sources, ["image/png", "image/gif", "image/png", "image/jpeg"]):
        for q in queries:
            result = run("apply=" + q, path)
            assert result.content_type == ct and decode(result.data)[0].size[0] > 0, (path, q)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
@pytest.mark.parametrize("name, sigma", [("blur", 0.5), ("blur", 6), ("blur", 250), ("sharpen", 2), ("sharpen", 250)])
def test_large_images_are_filtered_in_strips_with_the_same_pixels(monkeypatch, name, sigma, mode):
    from PIL import ImageFilter

    from processing import imaging

    rng = np.random.default_rng(3)
    im = Image.fromarray(rng.integers(0, 255, (300, 200, 4), dtype=np.uint8)).convert(mode)
    image_filter = (ImageFilter.GaussianBlur(sigma) if name == "blur"
                    else ImageFilter.UnsharpMask(radius=sigma, percent=100, threshold=0))
    whole = np.asarray(im.filter(image_filter))
    monkeypatch.setattr(imaging, "STRIP_PIXELS", 10_000)  # force strips on a small image
    in_strips = imaging.blurred(im, sigma) if name == "blur" else imaging.sharpened(im, sigma)
    assert in_strips.mode == mode, f"{name} turned {mode} into {in_strips.mode}"
    assert np.array_equal(np.asarray(in_strips), whole), \
        "strips must give exactly the whole-image filter's pixels"
