"""
The ``?apply=`` operations of SPEC §7: one registry, parsed before any fetch.

``parse_operation(query)`` validates the operation name, its parameters (from
the schema declared with each entry of ``REGISTRY``), ``format=`` and
``quality=``, and returns an ``Operation`` whose ``run(path, content_type)``
does the work on a local file.  Nothing here knows about keys or HTTP.

Semantics follow Go's disintegration/imaging, which the original istore used:
the point operations use its formulas through a 256-entry lookup table
(``Image.point``), geometry is exact, blur/sharpen are Gaussian of the given
sigma, resize/fit use Lanczos.  Pipeline of ``run`` for an image:

1. read the header only: format, size, EXIF orientation; 413/415 here;
2. pass-through: when the operation is an identity (resize 0x0, crop all 0,
   brightness 0, fit of an image that already fits, ...) and neither a
   different ``format=`` nor ``quality=`` is asked, the source bytes are
   returned unchanged;
3. resize/fit: JPEG draft (DCT-domain downscale to >= the target) then one
   Lanczos pass in the source's axes, then the EXIF rotation of the small
   result; every other operation: decode, apply EXIF orientation, operate;
4. encode in the source's format (or ``format=``), ICC profile kept.

Animated GIF and WebP sources keep every frame when the output is GIF or WebP
(``processing.animation``, one frame at a time); ``frame=N`` takes one frame
as a still, and any other output format the first one. ``format=auto``
chooses the format from the request's ``Accept`` (``processing.negotiation``).
"""
import io
import json
import math

import numpy as np
from django.conf import settings
from PIL import Image, ImageDraw

from .errors import BadParameter
from processing import animation, imaging, info
from processing.negotiation import AUTO, negotiate
from processing.params import Choice, Float, Int, Less, MaxProduct, Rects, canonical_params, getlist
from processing.params import parse_params

CACHE_KEY_VERSION = "v2"  # bump when an operation's output changes, so cached derivatives are not reused

_max_out = lambda: settings.ISTORE_MAX_OUTPUT_PIXELS  # noqa: E731 - read at parse time: tests override it
_max_side = lambda: settings.ISTORE_MAX_OUTPUT_SIDE  # noqa: E731
FORMAT = Choice("format", sorted(imaging.OUTPUT_FORMATS) + [AUTO], default=None, example="webp")
QUALITY = Int("quality", min=1, max=100, default=None, example=85)
FRAME = Int("frame", min=0, default=None, example=0)


class OpSpec:
    """A registry entry: the function, its parameter schema and its shortcuts."""

    def __init__(self, name, func, params=(), constraints=(), identity=None, target=None, kind="image"):
        self.name = name
        self.func = func  # func(im, **values) -> image; None for resize/fit (run via ``target``)
        self.params = tuple(params)
        self.constraints = tuple(constraints)
        self.identity = identity or (lambda values: False)  # values -> output == source
        self.target = target  # (values, (w, h)) -> output (w, h): Lanczos to that size
        self.kind = kind  # "image", "info", "frame" or "features"


REGISTRY = {}


def register(name, *params, constraints=(), identity=None):
    """Decorator adding an operation ``func(im, **params) -> image`` to ``REGISTRY``.

    ``params`` are ``processing.params`` types; ``constraints`` relate several
    of them; ``identity(values)`` says when the output is the source itself.
    """
    def wrap(func):
        REGISTRY[name] = OpSpec(name, func, params, constraints, identity)
        return func
    return wrap


def define(name, *params, **kw):
    """Add a registry entry without an image function (resize/fit by ``target``, info, frame)."""
    REGISTRY[name] = OpSpec(name, None, params, **kw)


class Result:
    """The output of an operation: bytes and their content type."""

    __slots__ = ("data", "content_type")

    def __init__(self, data, content_type):
        self.data, self.content_type = data, content_type

    def __repr__(self):
        return f"Result({self.content_type}, {len(self.data)} bytes)"


class Operation:
    """A parsed, validated ``?apply=`` request: ``name``, ``params``, ``format``, ``quality``, ``frame``."""

    def __init__(self, spec, params, fmt, quality, frame=None, animated_format=None, negotiated=False):
        self.spec = spec
        self.name = spec.name
        self.params = params  # {name: parsed value}
        self.format = fmt  # Pillow name ("JPEG", ...) or None: keep the source's
        self.quality = quality  # 1..100 or None: encoder default
        self.frame = frame  # one frame of an animation, as a still; None: every frame
        # format=auto chooses separately for an animated source (processing.negotiation).
        self.animated_format = fmt if not negotiated else animated_format
        self.negotiated = negotiated  # the format depends on the request's Accept header

    def __repr__(self):
        return f"Operation({self.cache_key})"

    @property
    def needs_video(self):
        return self.spec.kind == "frame"

    @property
    def cache_key(self):
        """Canonical text of (operation, parameters, output format, quality); equal for equivalent queries."""
        spec = self.spec
        if spec.kind == "info":
            return f"{CACHE_KEY_VERSION}|info"
        if spec.kind == "features":
            return f"{CACHE_KEY_VERSION}|features|{_features().VERSION}|{canonical_params(spec.params, self.params)}"
        fmt = self.format or ("JPEG" if spec.kind == "frame" else None)
        formats = {fmt, self.animated_format} if spec.kind == "image" else {fmt}
        quality = self.quality if None in formats or formats & imaging.LOSSY else None
        if spec.identity(self.params):
            op = "identity"  # resize 0x0, crop all 0, brightness 0, ...: all the same output
        else:
            op = f"{self.name}?{canonical_params(spec.params, self.params)}"
        key = f"{CACHE_KEY_VERSION}|{op}|format={(fmt or '-').lower()}"
        if spec.kind == "image" and self.animated_format != fmt:
            key += f"/{(self.animated_format or '-').lower()}"  # an animated source's choice
        key += f"|quality={quality or '-'}"
        return key if self.frame is None else f"{key}|frame={self.frame}"

    def run(self, path, content_type=None):
        """Apply the operation to the source in local file ``path``; returns a ``Result``.

        ``content_type`` is the source's declared type (may be generic); it
        only steers ``info`` towards video probing.  Raises only ``processing.errors``.
        """
        if self.spec.kind == "info":
            return Result(json.dumps(info.facts(path, content_type or "")).encode(), "application/json")
        if self.spec.kind == "frame":
            return self._frame(path)
        if self.spec.kind == "features":
            found = _features().extract.of_file(path, content_type or "", self.params["sec"])
            return Result(json.dumps(found.as_json()).encode(), "application/json")
        with imaging.open_image(path) as im:
            return self._run_image(im, path)

    def _run_image(self, im, path):
        spec, values = self.spec, self.params
        orient = imaging.orientation(im)
        size = imaging.oriented_size(im, orient)
        target = spec.target(values, size) if spec.target else None
        unchanged = spec.identity(values) or target == size
        animated = self.frame is None and getattr(im, "is_animated", False)
        fmt = (self.animated_format if animated else self.format) or imaging.source_format(im)
        if unchanged and fmt == imaging.source_format(im) and self.quality is None and self.frame is None:
            with open(path, "rb") as f:
                return Result(f.read(), imaging.content_type(fmt))
        icc = im.info.get("icc_profile")
        if animated and fmt in animation.FORMATS:
            transform = self._transform(orient, None if unchanged else target, unchanged)
            data = animation.run(im, path, transform, None if unchanged else target, fmt, self.quality, icc)
            return Result(data, imaging.content_type(fmt))
        if self.frame is not None:
            animation.select(im, self.frame)
        if target is not None and not unchanged:
            imaging.check_output_size(*target)
            raw_target = target[::-1] if imaging.swaps_axes(orient) else target
            box = imaging.draft(im, orient, target)
            out = imaging.resample(imaging.load(im), raw_target, box)
            out = imaging.apply_orientation(out, orient)
        else:
            out = imaging.apply_orientation(imaging.load(im), orient)
            if not unchanged:
                out = spec.func(out, **values)
        imaging.check_output_size(*out.size)
        return Result(imaging.encode(out, fmt, self.quality, icc), imaging.content_type(fmt))

    def _transform(self, orient, target, unchanged):
        """The operation on one decoded frame of an animation (resized in the source's axes)."""
        if target is not None:
            raw_target = target[::-1] if imaging.swaps_axes(orient) else target
            return lambda frame: imaging.apply_orientation(imaging.resample(frame, raw_target), orient)
        if unchanged:
            return lambda frame: imaging.apply_orientation(frame, orient)
        return lambda frame: self.spec.func(imaging.apply_orientation(frame, orient), **self.params)

    def _frame(self, path):
        data = info.video().grab_frame(path, self.params["sec"])
        if self.quality is None and self.format in (None, "JPEG"):
            return Result(data, "image/jpeg")
        fmt = self.format or "JPEG"
        with imaging.open_image(io.BytesIO(data)) as im:
            out = imaging.encode(imaging.load(im), fmt, self.quality, im.info.get("icc_profile"))
            return Result(out, imaging.content_type(fmt))


def parse_operation(query, accept=None, default_format=None):
    """Parse and validate ``?apply=`` and its parameters from ``query``; None when there is no ``apply``.

    ``query`` is a Django QueryDict or any mapping with ``get``/``getlist``.
    ``accept`` is the request's Accept header, for ``format=auto``;
    ``default_format`` stands for a missing ``format=`` (``"auto"`` with
    ISTORE_AUTO_FORMAT). Raises ``BadParameter`` naming the offending parameter.
    """
    names = getlist(query, "apply")
    if not names:
        return None
    if len(names) > 1:
        raise BadParameter(f"apply is given {len(names)} times; one operation per request "
                         "(chain operations by nesting self sources)")
    name = names[0]
    spec = REGISTRY.get(name)
    if spec is None:
        close = [n for n in REGISTRY if n.lower() == name.lower()]
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise BadParameter(f"apply={name[:40]!r} is not an operation{hint}; use one of: {', '.join(REGISTRY)}")
    values = parse_params(name, spec.params, query, spec.constraints, skip_constraints=spec.identity)
    fmt = FORMAT.parse(name, getlist(query, "format")) or default_format
    quality = QUALITY.parse(name, getlist(query, "quality"))
    frame = FRAME.parse(name, getlist(query, "frame")) if spec.kind == "image" else None
    if fmt == AUTO and spec.kind != "info":
        chosen = negotiate(accept)
        return Operation(spec, values, chosen.still, quality, frame, chosen.animated, negotiated=True)
    return Operation(spec, values, imaging.OUTPUT_FORMATS.get(fmt), quality, frame)


# ---------------------------------------------------------------- point operations
# Lookup tables with Go imaging's rounding: clamp(x) = int(x + 0.5) limited to 0..255.

def _clamp(x):
    return 0 if x != x else min(255, max(0, int(x + 0.5)))  # x != x: NaN from a degenerate sigmoid


def _percentage():
    return Float("percentage", min=-100, max=100, example=20)


@register("adjustBrightness", _percentage(), identity=lambda v: v["percentage"] == 0)
def adjust_brightness(im, percentage):
    shift = 255.0 * percentage / 100.0
    return imaging.apply_lut(im, [_clamp(i + shift) for i in range(256)])


@register("adjustContrast", _percentage(), identity=lambda v: v["percentage"] == 0)
def adjust_contrast(im, percentage):
    v = (100.0 + percentage) / 100.0
    if v <= 1:
        lut = [_clamp((0.5 + (i / 255.0 - 0.5) * v) * 255.0) for i in range(256)]
    elif v < 2:
        lut = [_clamp((0.5 + (i / 255.0 - 0.5) / (2.0 - v)) * 255.0) for i in range(256)]
    else:  # p = 100: 1/(2-v) is infinite, a threshold at mid-grey
        lut = [255 if i / 255.0 + 0.5 >= 1 else 0 for i in range(256)]
    return imaging.apply_lut(im, lut)


@register("adjustGamma", Float("gamma", gt=0, example=1.5), identity=lambda v: v["gamma"] == 1)
def adjust_gamma(im, gamma):
    e = 1.0 / max(gamma, 1e-4)  # as imaging.AdjustGamma: avoids an overflowing exponent
    return imaging.apply_lut(im, [_clamp(math.pow(i / 255.0, e) * 255.0) for i in range(256)])


@register("adjustSigmoid", Float("midpoint", min=0, max=1, example=0.5), Float("factor", example=3),
          identity=lambda v: v["factor"] == 0)
def adjust_sigmoid(im, midpoint, factor):
    # numpy, not math: exp() of a large factor overflows to inf here instead of raising.
    x = np.arange(256) / 255.0
    b = abs(factor)
    with np.errstate(all="ignore"):
        def sig(t):
            return 1.0 / (1.0 + np.exp(b * (midpoint - t)))
        sig0, sig1 = sig(0.0), sig(1.0)
        if factor > 0:
            f = (sig(x) - sig0) / (sig1 - sig0)
        else:
            arg = np.clip((sig1 - sig0) * x + sig0, 1e-6, 1.0 - 1e-6)
            f = midpoint - np.log(1.0 / arg - 1.0) / b
        # A factor so small that sig1 == sig0 is a flat curve, i.e. the identity (Go would give NaN).
        f = np.where(np.isfinite(f), f, x)
    return imaging.apply_lut(im, [_clamp(v * 255.0) for v in f.tolist()])


@register("grayscale")
def grayscale(im):
    # Pillow's RGB -> L conversion is ITU-R 601 luma, 0.299R + 0.587G + 0.114B, rounded;
    # writing one channel instead of three equal ones also makes a smaller output.
    im = imaging.pixel_mode(im)
    if im.mode == "RGB":
        return im.convert("L")
    return im.convert("LA") if im.mode == "RGBA" else im  # L, LA: already grey


@register("invert")
def invert(im):
    return imaging.apply_lut(im, [255 - i for i in range(256)])


# ---------------------------------------------------------------- filters

# Pillow's Gaussian filters are box blurs: their cost does not grow with sigma.
# Past a few hundred, a blur has flattened every detail a source of the allowed
# sizes has.
SIGMA_MAX = 250


def _sigma(**kw):
    return Float("sigma", gt=0, max=SIGMA_MAX, example=1.5, **kw)


@register("blur", _sigma())
def blur(im, sigma):
    # Blur colour weighted by alpha (as Go imaging's blur does), so transparent
    # pixels' hidden colours do not bleed into visible ones.
    im = imaging.pixel_mode(im)
    if im.mode in ("RGBA", "LA"):
        premultiplied = {"RGBA": "RGBa", "LA": "La"}[im.mode]
        return imaging.blurred(im.convert(premultiplied), sigma).convert(im.mode)
    return imaging.blurred(im, sigma)


@register("sharpen", _sigma(aliases=("sigmoid",)))
def sharpen(im, sigma):
    # src + (src - blur(src, sigma)): an unsharp mask at 100%, threshold 0.
    return imaging.sharpened(imaging.pixel_mode(im), sigma)


# ---------------------------------------------------------------- geometry

def _coords():
    # Missing coordinates are 0: x2/y2 alone crop from the top-left corner.
    examples = (("x1", 10), ("y1", 10), ("x2", 110), ("y2", 110))
    return [Int(n, min=0, default=0, example=e) for n, e in examples]


@register("crop", *_coords(), constraints=(Less("x1", "x2", " (the crop is [x1,x2) x [y1,y2))"),
                                           Less("y1", "y2", " (the crop is [x1,x2) x [y1,y2))")),
          identity=lambda v: not any(v.values()))
def crop(im, x1, y1, x2, y2):
    w, h = im.size
    box = (min(x1, w), min(y1, h), min(x2, w), min(y2, h))
    if box[0] >= box[2] or box[1] >= box[3]:
        raise BadParameter(f"apply=crop: the rectangle [{x1},{x2}) x [{y1},{y2}) lies outside the "
                         f"{w}x{h} image; give x1 < {w} and y1 < {h}")
    return im if box == (0, 0, w, h) else im.crop(box)


@register("drawRect", Rects("rects", example="x1/10,y1/10,x2/50,y2/50,r/255,g/0,b/0"))
def draw_rect(im, rects):
    im = imaging.pixel_mode(im)
    if im.mode in ("L", "LA"):
        im = im.convert("RGBA" if im.mode == "LA" else "RGB")
    w, h = im.size
    draw = ImageDraw.Draw(im)  # draws in place: ``im`` is our own decoded copy, no need for another
    for x1, y1, x2, y2, r, g, b in rects:
        # Off-image edges stay off-image at -1 or w/h: same visible pixels, bounded work.
        box = (max(-1, min(x1, w)), max(-1, min(y1, h)), max(-1, min(x2, w)), max(-1, min(y2, h)))
        draw.rectangle(box, outline=(r, g, b, 255) if im.mode == "RGBA" else (r, g, b), width=1)
    return im


# Exact pixel moves, any mode (palette images stay palette: no conversion needed).
for _name, _method in (("flipH", Image.Transpose.FLIP_LEFT_RIGHT), ("flipV", Image.Transpose.FLIP_TOP_BOTTOM),
                       ("transpose", Image.Transpose.TRANSPOSE), ("transverse", Image.Transpose.TRANSVERSE)):
    register(_name)(lambda im, method=_method: im.transpose(method))


def _resize_target(values, size):
    """Go imaging.Resize: one side 0 keeps the aspect (rounded, at least 1)."""
    w, h = values["w"], values["h"]
    sw, sh = size
    if w == 0:
        w = max(1, math.floor(h * sw / sh + 0.5))
    elif h == 0:
        h = max(1, math.floor(w * sh / sw + 0.5))
    return (w, h)


def _fit_target(values, size):
    """Go imaging.Fit: scale down into w x h keeping the aspect; never enlarge."""
    mw, mh = values["w"], values["h"]
    sw, sh = size
    if sw <= mw and sh <= mh:
        return size
    if sw / sh > mw / mh:
        return (mw, max(1, int(mw * sh / sw + 0.5)))
    return (max(1, int(mh * sw / sh + 0.5)), mh)


_side = dict(max=_max_side, example=320)
# resize/fit have no image function: the pipeline resamples to ``target`` itself, so it
# can draft the JPEG decode and resize before the EXIF rotation.  A missing resize side
# is 0 (keep the aspect), so ?apply=resize&w=320 works as in the original.
define("resize", Int("w", min=0, default=0, **_side), Int("h", min=0, default=0, **_side),
       constraints=(MaxProduct("w", "h", _max_out),), identity=lambda v: v["w"] == v["h"] == 0,
       target=_resize_target)
define("fit", Int("w", min=1, **_side), Int("h", min=1, **_side), target=_fit_target)


# ---------------------------------------------------------------- info and video

define("info", kind="info")
define("frame", Float("sec", min=0, example=1.5), kind="frame")
# JSON: perceptual hashes, embedding and labels (processing/features); a video's frame at sec.
define("features", Float("sec", min=0, default=0, example=1.5), kind="features")


def _features():
    # Imported lazily: onnxruntime and the model load only where features are asked for.
    from processing import features
    from processing.features import extract  # noqa: F401 - features.extract below

    return features
