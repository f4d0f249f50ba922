"""Decode limits, bad input, EXIF orientation, formats, quality, ICC: through Operation.run and imaging."""
import io
import random
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageFile

from processing.errors import ProcessingError, TooLarge, UnsupportedInput
from processing import imaging

from .conftest import decode, run, save

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def png_header_only(width, height):
    """A tiny PNG whose IHDR declares width x height; its IDAT is a few bytes of nothing."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(
        b"IEND", b"")


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if any pixel decoding is attempted."""
    def refuse(self):
        raise AssertionError("pixels were decoded")
    monkeypatch.setattr(ImageFile.ImageFile, "load", refuse)


# ------------------------------------------------------------------ 413: too many source pixels

@pytest.mark.parametrize("size", [(8000, 8000), (100_000, 100_000), (2**31 - 1, 2**31 - 1)])
def test_png_bomb_is_413_without_decoding(tmp_path, no_decoding, size):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(*size))
    assert path.stat().st_size < 100
    for query in ("apply=resize&w=10", "apply=flipH", "apply=info"):
        with pytest.raises(TooLarge) as err:
            run(query, str(path))


def test_gif_bomb_is_413(tmp_path, no_decoding):
    path = tmp_path / "bomb.gif"
    path.write_bytes(b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00" + b",\0\0\0\0"
                     + struct.pack("<HH", 65535, 65535) + b"\x00\x02\x02\x44\x01\x00;")
    with pytest.raises(TooLarge):
        run("apply=flipH", str(path))


def test_source_limit_is_the_setting(known_png, settings):
    settings.ISTORE_MAX_SOURCE_PIXELS = 95  # the image is 12 x 8 = 96
    with pytest.raises(TooLarge, match="12x8 = 96 pixels, more than the limit of 95"):
        run("apply=flipH", known_png)
    settings.ISTORE_MAX_SOURCE_PIXELS = 96
    assert run("apply=flipH", known_png).content_type == "image/png"


# ------------------------------------------------------------------ 415: not an image, broken images

def jpeg_bytes(size=(64, 48)):
    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(
        out, "JPEG", quality=90)
    return out.getvalue()


@pytest.mark.parametrize("name,data", [
    ("text.txt", b"hello, I am not an image\n"),
    ("empty", b""),
    ("truncated.jpg", jpeg_bytes()[:700]),
    ("truncated.png", png_header_only(64, 64)[:30]),
    ("header-only.png", png_header_only(64, 64)),  # IDAT far too short for 64x64
    ("image.ppm", b"P6\n4 4\n255\n" + b"\x80" * 48),  # Pillow reads PPM, istore does not accept it
    ("fake.eps", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"),
    ("html.html", b"<html><body>404</body></html>"),
])
def test_not_an_image_or_broken_is_415(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    for query in ("apply=flipH", "apply=resize&w=10"):
        with pytest.raises(UnsupportedInput) as err:
            run(query, str(path))
        assert str(tmp_path) not in err.value.detail  # no server paths in what the user sees


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow's TIFF parser warns about the damage
def test_fuzzed_images_raise_only_processing_errors(tmp_path, known):
    rng = random.Random(42)
    sources = []
    for fmt in ("PNG", "JPEG", "GIF", "WEBP", "TIFF", "BMP"):
        out = io.BytesIO()
        Image.fromarray(known).save(out, fmt)
        sources.append(out.getvalue())
    path = tmp_path / "fuzz"
    outcomes = set()
    for n in range(240):
        data = bytearray(rng.choice(sources))
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if n % 3 == 0:
            data = data[: rng.randrange(1, len(data))]
        path.write_bytes(bytes(data))
        query = ("apply=flipH", "apply=resize&w=5", "apply=info", "apply=blur&sigma=1")[n % 4]
        try:
            run(query, str(path))
            outcomes.add("ok")
        except ProcessingError as err:
            outcomes.add(type(err).__name__)
    assert outcomes <= {"ok", "TooLarge", "UnsupportedInput"} and "ok" in outcomes and "UnsupportedInput" in outcomes


# ------------------------------------------------------------------ EXIF orientation

def with_orientation(path, arr, orientation, fmt="PNG", **options):
    exif = Image.Exif()
    exif[imaging.ORIENTATION_TAG] = orientation
    return save(path, Image.fromarray(arr), fmt, exif=exif.tobytes(), **options)


# what a viewer shows for each EXIF orientation of raw pixels ``a`` (EXIF 2.3 table)
DISPLAYED = {
    1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2), 6: lambda a: a[::-1].transpose(1, 0, 2),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2), 8: lambda a: a[:, ::-1].transpose(1, 0, 2),
}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_before_the_operation(tmp_path, known, orientation):
    path = with_orientation(tmp_path / "o.png", known, orientation)
    shown = DISPLAYED[orientation](known)
    assert np.array_equal(decode(run("apply=invert", path).data)[1], 255 - shown)
    assert np.array_equal(decode(run("apply=crop&x2=3&y2=2", path).data)[1], shown[:2, :3])
    info = __import__("json").loads(run("apply=info", path).data)
    assert (info["height"], info["width"]) == shown.shape[:2]


def test_exif_orientation_with_draft_resize(tmp_path):
    arr = np.zeros((1080, 1920, 3), np.uint8)
    arr[:, :960] = (255, 0, 0)  # raw: left half red, right half blue
    arr[:, 960:] = (0, 0, 255)
    path = with_orientation(tmp_path / "o6.jpg", arr, 6, "JPEG", quality=90)
    im, out = decode(run("apply=resize&w=180", path).data)
    assert im.size == (180, 320)  # displayed portrait
    assert out[10, 90, 0] > 200 and out[-10, 90, 2] > 200  # orientation 6: raw left half is on top
    assert decode(run("apply=fit&w=90&h=90", path).data)[0].size == (51, 90)


def test_orientation_tag_is_not_written_again(tmp_path, known):
    path = with_orientation(tmp_path / "o.jpg", known, 6, "JPEG")
    out = Image.open(io.BytesIO(run("apply=flipH", path).data))
    assert out.getexif().get(imaging.ORIENTATION_TAG, 1) == 1


# ------------------------------------------------------------------ formats, quality, ICC

@pytest.mark.parametrize("fmt,ct", [("JPEG", "image/jpeg"), ("PNG", "image/png"), ("GIF", "image/gif"),
                                    ("WEBP", "image/webp"), ("AVIF", "image/avif"), ("TIFF", "image/tiff"),
                                    ("BMP", "image/bmp")])
def test_output_keeps_the_source_format(tmp_path, known, fmt, ct):
    path = save(tmp_path / f"src.{fmt.lower()}", Image.fromarray(known), fmt)
    result = run("apply=flipV", path)
    assert result.content_type == ct and Image.open(io.BytesIO(result.data)).format == fmt


@pytest.mark.parametrize("value,fmt,ct", [("jpeg", "JPEG", "image/jpeg"), ("jpg", "JPEG", "image/jpeg"),
                                          ("png", "PNG", "image/png"), ("webp", "WEBP", "image/webp"),
                                          ("avif", "AVIF", "image/avif"), ("gif", "GIF", "image/gif"),
                                          ("PNG", "PNG", "image/png")])
def test_format_converts(photo_jpeg, value, fmt, ct):
    result = run(f"apply=resize&w=64&format={value}", photo_jpeg)
    im = Image.open(io.BytesIO(result.data))
    assert result.content_type == ct and im.format == fmt and im.size == (64, 36)


@pytest.mark.parametrize("fmt", ["jpeg", "webp", "avif"])
def test_quality_changes_lossy_output(photo_jpeg, fmt):
    low = run(f"apply=resize&w=320&format={fmt}&quality=10", photo_jpeg).data
    high = run(f"apply=resize&w=320&format={fmt}&quality=95", photo_jpeg).data
    assert len(low) < len(high)


def test_alpha_to_jpeg_is_flattened_on_white(tmp_path):
    a = np.zeros((4, 4, 4), np.uint8)
    a[:2] = (0, 0, 255, 255)  # opaque blue top, fully transparent (black) bottom
    path = save(tmp_path / "a.png", Image.fromarray(a, "RGBA"), "PNG")
    out = decode(run("apply=flipH&format=jpeg&quality=100", path).data)[1].astype(int)
    assert (out[3, 3] > 245).all() and out[0, 0, 2] > 240 and out[0, 0, 0] < 15


@pytest.mark.parametrize("src,target", [("PNG", "png"), ("JPEG", "jpeg"), ("PNG", "webp"), ("JPEG", "avif"),
                                        ("TIFF", "png")])
def test_icc_profile_is_kept(tmp_path, known, src, target):
    path = save(tmp_path / "icc", Image.fromarray(known), src, icc_profile=SRGB)
    result = run(f"apply=flipH&format={target}", path)
    assert Image.open(io.BytesIO(result.data)).info.get("icc_profile") == SRGB


def test_rgb_icc_is_dropped_when_output_is_grey_and_gif_ignores_it(tmp_path, known):
    path = save(tmp_path / "icc.png", Image.fromarray(known), "PNG", icc_profile=SRGB)
    assert "icc_profile" not in Image.open(io.BytesIO(run("apply=grayscale", path).data)).info
    assert run("apply=flipH&format=gif", path).content_type == "image/gif"


def test_cmyk_jpeg(tmp_path, known):
    path = save(tmp_path / "cmyk.jpg", Image.fromarray(known).convert("CMYK"), "JPEG", quality=95)
    assert Image.open(io.BytesIO(run("apply=flipH", path).data)).mode == "CMYK"  # no needless conversion
    im, out = decode(run("apply=invert&format=png", path).data)
    assert im.mode == "RGB" and np.abs(out.astype(int) - (255 - known.astype(int))).mean() < 12


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    im = Image.new("I;16", (4, 1))
    for x, v in enumerate((0, 256 * 64, 256 * 128, 65535)):
        im.putpixel((x, 0), v)
    path = save(tmp_path / "16.png", im, "PNG")
    out = decode(run("apply=adjustBrightness&percentage=10", path).data)[1]
    assert out.ravel().tolist() == [26, 90, 154, 255]


def test_animated_gif_to_a_still_format_gives_the_first_frame(tmp_path):
    frames = [Image.new("RGB", (6, 4), c) for c in ((255, 0, 0), (0, 0, 255))]
    path = str(tmp_path / "anim.gif")
    frames[0].save(path, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    out = Image.open(io.BytesIO(run("apply=flipH&format=png", path).data))
    assert getattr(out, "n_frames", 1) == 1, "PNG output of an animation is its first frame"
    assert out.convert("RGB").getpixel((0, 0)) == (255, 0, 0)


def test_jpeg_draft_decodes_at_reduced_size(photo_jpeg):
    with imaging.open_image(photo_jpeg) as im:
        box = imaging.draft(im, 1, (320, 180))
        assert im.size == (480, 270) and box == (0, 0, 480, 270)
    with imaging.open_image(photo_jpeg) as im:
        # no downscale, no draft
        assert imaging.draft(im, 1, (1920, 1080)) is None and im.size == (1920, 1080)
