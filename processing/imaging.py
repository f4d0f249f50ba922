"""
Decoding and encoding for istore's image processing, on top of Pillow.

* ``open_image`` reads only the header: it refuses anything that is not one of
  ``INPUT_FORMATS`` (415) and any image of more than
  ``settings.ISTORE_MAX_SOURCE_PIXELS`` pixels (413) before a pixel is decoded.
  Pillow's own ``DecompressionBombError`` maps to 413 as well.
* ``load`` decodes; any decoder failure (truncated or corrupt file) is 415.
* ``orientation`` / ``apply_orientation`` implement "EXIF orientation is
  applied before any operation".
* ``encode`` writes JPEG, PNG, GIF, WebP, AVIF, TIFF or BMP, converting the
  mode only when the encoder needs it, and keeps the ICC profile when the
  output's colour space still matches it.

Multi-frame sources (animated GIF/WebP/AVIF, multi-page TIFF, MPO) are reduced
to their first frame: only frame 0 is decoded and only one frame is written.
EXIF and XMP metadata are not copied to outputs (they may carry GPS data);
the ICC profile is.
"""
import io

import numpy as np
from django.conf import settings
from PIL import Image, ImageCms, ImageFilter, UnidentifiedImageError

from .errors import BadParameter, TooLarge, UnsupportedInput

# Pillow plugins we accept as input.  Restricting them keeps risky or exotic
# decoders (EPS runs Ghostscript, PSD, FITS, ...) away from untrusted bytes.
# (Multi-picture JPEGs from cameras open through the JPEG plugin as format "MPO".)
INPUT_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "AVIF", "TIFF", "BMP")

# Values of ``format=`` -> Pillow format name.  "jpg" is accepted as a synonym.
OUTPUT_FORMATS = {"jpeg": "JPEG", "jpg": "JPEG", "png": "PNG", "webp": "WEBP", "avif": "AVIF", "gif": "GIF"}

CONTENT_TYPES = {
    "JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp",
    "AVIF": "image/avif", "TIFF": "image/tiff", "BMP": "image/bmp",
}

# Lossy quality used when the query gives none (Pillow's own JPEG default, 75, is visibly soft).
DEFAULT_QUALITY = {"JPEG": 85, "WEBP": 80, "AVIF": 75}
LOSSY = frozenset(DEFAULT_QUALITY)

# Modes each encoder writes natively; anything else is converted in ``_encodable``.
_ENCODER_MODES = {
    "JPEG": {"L", "RGB", "CMYK"},
    "PNG": {"1", "L", "LA", "P", "RGB", "RGBA", "I;16"},
    "GIF": {"L", "P", "RGB", "RGBA"},
    "WEBP": {"RGB", "RGBA"},
    "AVIF": {"L", "RGB", "RGBA"},
    "TIFF": {"1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16", "I", "F"},
    "BMP": {"1", "L", "P", "RGB", "RGBA"},
}
_ICC_WRITERS = frozenset({"JPEG", "PNG", "WEBP", "AVIF", "TIFF"})
# ICC header bytes 16..20 name the profile's colour space; a profile is only
# valid on an image of the same space (an RGB profile on a greyscale JPEG is
# rejected by some viewers).
_ICC_SPACE = {"RGB ": {"RGB", "RGBA", "P", "PA"}, "GRAY": {"L", "LA", "I;16", "I"}, "CMYK": {"CMYK"}}

REDUCING_GAP = 3.0  # Image.reduce() by an integer factor first, when >= 3x: fast, visually identical
ORIENTATION_TAG = 0x0112
_SWAPS_AXES = frozenset({5, 6, 7, 8})
_ORIENT_TRANSPOSE = {  # the EXIF 2.3 orientation table, as Pillow's ImageOps.exif_transpose has it
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def source_format(im):
    """The output format that "keeps the source format" for an opened image (MPO is JPEG)."""
    return "JPEG" if im.format == "MPO" else im.format


def content_type(pillow_format):
    """MIME type for a Pillow format name."""
    return CONTENT_TYPES.get(pillow_format, "application/octet-stream")


def open_image(source):
    """Open ``source`` (a path or binary file object), reading the header only.

    Raises ``UnsupportedInput`` when it is not an image of ``INPUT_FORMATS`` and
    ``TooLarge`` when its declared size exceeds ISTORE_MAX_SOURCE_PIXELS.
    The caller should close the image (``with open_image(p) as im``).
    """
    limit = settings.ISTORE_MAX_SOURCE_PIXELS
    # Pillow raises its own DecompressionBombError at 2x MAX_IMAGE_PIXELS; never let that
    # be stricter than the operator's configured limit.
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < limit:
        Image.MAX_IMAGE_PIXELS = limit
    try:
        im = Image.open(source, formats=INPUT_FORMATS)
    except Image.DecompressionBombError:
        raise TooLarge(f"the source image has more than {limit} pixels; "
                              f"this server processes images of at most {limit} pixels") from None
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise  # the caller's local file is missing: a bug upstream, not the user's input
    except Exception as err:  # any parser failure on untrusted bytes is "not an image"
        # UnidentifiedImageError's text names our local temp file: say nothing more than the type.
        why = "" if isinstance(err, UnidentifiedImageError) else f": {_short(err)}"
        raise UnsupportedInput("the source is not an image this server can read (expected "
                               f"{', '.join(f.lower() for f in INPUT_FORMATS)}){why}") from None
    width, height = im.size
    if width * height > limit or width <= 0 or height <= 0:
        im.close()
        if width <= 0 or height <= 0:
            raise UnsupportedInput(f"the source image declares an empty size {width}x{height}")
        raise TooLarge(f"the source image is {width}x{height} = {width * height} pixels, more than "
                              f"the limit of {limit}; use a smaller source")
    return im


def _short(err):
    text = str(err) or type(err).__name__
    return text[:200]


def load(im):
    """Decode the pixels of an opened image (first frame).  Corrupt or truncated data -> 415."""
    try:
        im.load()
    except Image.DecompressionBombError:
        raise TooLarge("the source image decodes to more pixels than allowed") from None
    except Exception as err:  # decoders raise OSError, SyntaxError, ValueError, EOFError, struct.error...
        raise UnsupportedInput(f"the source image is corrupt or truncated: {_short(err)}") from None
    return im


def orientation(im):
    """EXIF orientation 1..8 of an opened image, 1 when absent or unreadable."""
    if im.format == "PNG" and "exif" not in im.info:
        # PngImageFile.getexif() decodes the whole image to look for a late eXIf chunk;
        # an orientation there is vanishingly rare, a full decode here is not cheap.
        return 1
    try:
        value = im.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # malformed EXIF must not make a readable image fail
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def swaps_axes(orient):
    """True when EXIF orientation ``orient`` swaps width and height (a quarter turn)."""
    return orient in _SWAPS_AXES


def oriented_size(im, orient):
    """(width, height) as displayed, i.e. after the EXIF orientation is applied."""
    width, height = im.size
    return (height, width) if orient in _SWAPS_AXES else (width, height)


def apply_orientation(im, orient):
    """Rotate/mirror a loaded image per EXIF orientation ``orient`` (no copy when it is 1).

    Works on any image, e.g. one already resized in the source's axes, which
    is cheaper than resizing after the rotation.
    """
    method = _ORIENT_TRANSPOSE.get(orient)
    return im if method is None else im.transpose(method)


def draft(im, orient, size):
    """Ask the JPEG decoder for DCT-domain downscaling to no less than ``size`` (displayed axes).

    Returns the box, in the drafted image's raw (unrotated) axes, that maps to
    the original image (for ``resize(box=...)``), or None when no draft applies
    (not a JPEG, or no downscale).  Must be called before ``load``.
    """
    if im.format not in ("JPEG", "MPO"):
        return None
    raw = (size[1], size[0]) if orient in _SWAPS_AXES else size
    if raw[0] >= im.width or raw[1] >= im.height:
        return None
    try:
        result = im.draft(im.mode, raw)
    except Exception:  # drafting is an optimisation only
        return None
    if not result:
        return None
    return result[1]


def check_output_size(width, height):
    """BadParameter when an output of width x height exceeds ISTORE_MAX_OUTPUT_PIXELS, or either
    side ISTORE_MAX_OUTPUT_SIDE."""
    limit, side = settings.ISTORE_MAX_OUTPUT_PIXELS, settings.ISTORE_MAX_OUTPUT_SIDE
    if width > side or height > side:
        raise BadParameter(f"the output would be {width}x{height}; each side may be at most {side} "
                           "(ISTORE_MAX_OUTPUT_SIDE): ask for a smaller size")
    if width * height > limit:
        raise BadParameter(f"the output would be {width}x{height} = {width * height} pixels, more than the "
                         f"limit of {limit}; ask for a smaller size")


def resample(im, size, box=None):
    """Lanczos resize of ``im`` to ``size``, with reduce() first for large factors.

    Pillow resamples the width first, into a buffer of the new width by the
    old height: widening a tall image that is also shortened would make that
    buffer larger than both the source and the output (16384 x 7000 for a
    7000 x 7000 source resized to 16384 x 3000). Then the height goes first,
    so no buffer is larger than the source or the output. Palette and bilevel
    images are expanded first: Pillow would silently use nearest-neighbour on
    them.
    """
    if im.mode in ("P", "PA", "1"):
        im = pixel_mode(im)
    box = box or (0, 0, im.width, im.height)
    width, height = size
    if width * (box[3] - box[1]) > (box[2] - box[0]) * height and width != im.width and height != im.height:
        im = im.resize((im.width, height), Image.Resampling.LANCZOS, box=(0, box[1], im.width, box[3]),
                       reducing_gap=REDUCING_GAP)
        box = (box[0], 0, box[2], height)
    return im.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=REDUCING_GAP)


def pixel_mode(im):
    """``im`` as 8-bit L, LA, RGB or RGBA (unchanged, without copy, when it already is)."""
    mode = im.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        return im
    if mode in ("P", "PA"):
        return im.convert("RGBA" if mode == "PA" or im.has_transparency_data else "RGB")
    if mode == "1":
        return im.convert("L")
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # convert("L") clips 16-bit values at 255; scale instead.
        return im.convert("I").point(lambda v: v / 256).convert("L")
    if mode == "CMYK":
        return cmyk_to_rgb(im)
    return im.convert("RGBA" if "A" in mode else "RGB")


def cmyk_to_rgb(im):
    """CMYK -> RGB through the embedded ICC profile when there is one (colours are far off without)."""
    icc = im.info.get("icc_profile")
    if icc and _icc_space(icc) == "CMYK":
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            out = ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
            out.info.pop("icc_profile", None)
            return out
        except Exception:  # a broken profile: fall back to the naive formula
            pass
    out = im.convert("RGB")
    out.info.pop("icc_profile", None)
    return out


STRIP_PIXELS = 4_000_000  # images larger than this are filtered in strips


def blurred(im, sigma):
    """A Gaussian blur of ``im``, in strips when the image is large.

    Pillow's filters allocate a second full-size buffer, and on a 50-megapixel
    source that took a worker past 600 MB. Pillow's Gaussian blur is a
    horizontal box blur followed by a vertical one; run as two passes, neither
    needs strips to overlap (a horizontal blur never mixes rows, a vertical
    one never mixes columns), so a large image costs its output plus two
    small strips whatever sigma is, with exactly the pixels of one
    whole-image filter. The second pass works in place.
    """
    width, height = im.size
    if width * height <= STRIP_PIXELS:
        return im.filter(ImageFilter.GaussianBlur(sigma))
    out = Image.new(im.mode, im.size)
    for box in _strips(width, height, across=True):
        out.paste(im.crop(box).filter(ImageFilter.GaussianBlur((sigma, 0))), box[:2])
    for box in _strips(width, height, across=False):
        out.paste(out.crop(box).filter(ImageFilter.GaussianBlur((0, sigma))), box[:2])
    return out


def sharpened(im, sigma):
    """An unsharp mask at 100 %, threshold 0: ``2 * im - blurred(im)``, clipped.

    The pixels of Pillow's ``UnsharpMask(sigma, 100, 0)``, which holds a second
    full-size buffer too; here the difference is taken strip by strip into
    the blurred image, so the cost is the blur's plus one strip.
    """
    out = blurred(im, sigma)
    for box in _strips(*im.size, across=True):
        source = np.asarray(im.crop(box), dtype=np.int16)
        sharp = np.clip(2 * source - np.asarray(out.crop(box), dtype=np.int16), 0, 255).astype(np.uint8)
        out.paste(Image.fromarray(sharp), box[:2])
    return out


def _strips(width, height, across):
    """Boxes of about STRIP_PIXELS that tile the image: full rows (``across``) or full columns."""
    if across:
        rows = max(1, STRIP_PIXELS // (4 * width))
        return [(0, top, width, min(height, top + rows)) for top in range(0, height, rows)]
    columns = max(1, STRIP_PIXELS // (4 * height))
    return [(left, 0, min(width, left + columns), height) for left in range(0, width, columns)]


def apply_lut(im, lut):
    """Apply a 256-entry lookup table to the colour channels of ``im`` (alpha untouched)."""
    im = pixel_mode(im)
    identity = list(range(256))
    tables = {"L": [lut], "LA": [lut, identity], "RGB": [lut] * 3, "RGBA": [lut, lut, lut, identity]}
    return im.point([v for table in tables[im.mode] for v in table])


def _icc_space(icc):
    return icc[16:20].decode("latin-1") if len(icc) >= 20 else ""


def _has_alpha(im):
    return im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode == "P" and im.has_transparency_data)


def _encodable(im, fmt):
    """Convert ``im`` to a mode the ``fmt`` encoder writes, only when needed."""
    allowed = _ENCODER_MODES[fmt]
    if im.mode in allowed:
        return im
    if im.mode == "CMYK":
        return cmyk_to_rgb(im)
    if _has_alpha(im):
        if "RGBA" in allowed:
            return im.convert("RGBA")
        # JPEG has no alpha: composite onto white rather than exposing whatever
        # colour the transparent pixels happen to hold.
        rgba = im.convert("RGBA")
        white = Image.new("RGB", im.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.getchannel("A"))
        return white
    im = pixel_mode(im)
    if im.mode in allowed:
        return im
    return im.convert("RGB")


def encode(im, fmt, quality=None, icc_profile=None):
    """Encode ``im`` as Pillow format ``fmt``; returns bytes.

    ``quality`` (1..100) applies to JPEG, WebP and AVIF and is ignored by the
    lossless formats.  ``icc_profile`` is written when the format can carry
    one and the final mode's colour space matches the profile.
    """
    im = _encodable(im, fmt)
    # Encoders fall back on im.info for metadata (PNG re-writes an inherited
    # icc_profile, others exif/xmp): write only what we decide, below.
    im.info = {k: v for k, v in im.info.items() if k == "transparency"}
    options = {}
    if fmt in LOSSY:
        options["quality"] = quality if quality is not None else DEFAULT_QUALITY[fmt]
    if icc_profile and fmt in _ICC_WRITERS and im.mode in _ICC_SPACE.get(_icc_space(icc_profile), ()):
        options["icc_profile"] = icc_profile
    out = io.BytesIO()
    try:
        im.save(out, fmt, **options)
    except Exception as err:  # an encoder refusing our pixels is our bug, but must not be a bare 500
        raise UnsupportedInput(f"cannot write this image as {fmt.lower()}: {_short(err)}; "
                               "try another format=") from None
    return out.getvalue()
