"""
``grab_frame``: the frame shown at ``sec``, as JPEG.

A grab is two ffmpeg runs, the first one usually answered from memory:

1. Index (demux only, no decoding, ~20-40 ms; cached per stretch of video):
   the video packets from where an input seek to `sec` lands up to
   `sec + _INDEX_AHEAD`, with their timestamps (-copyts), keyframe flags and,
   for H.264, which frames are references (the stream mapped twice, the
   copy through `filter_units=discard=nonref`: the packets that survive are
   the references). It names the target exactly: the last frame with
   pts <= sec, and the keyframe to decode it from. (``index``)
2. Decode: `-ss` on that keyframe before `-i` (input seeking: the cost is
   bounded by the keyframe interval, whatever `sec` is), then
   `trim=start:end` around the target's own timestamp and `-frames:v 1`, so
   exactly that frame comes out or none does (then the decode is retried
   from further back). For H.264 the non-reference frames other than the
   target are dropped before the decoder (`-bsf:v noise=drop=...` on the
   input, ffmpeg >= 7): nothing depends on them, so the target is
   bit-identical, and a 10 s GOP of x264 output decodes ~40% faster.

One frame goes through the pipe (PPM), and Pillow encodes the JPEG so
``quality`` means what it means for images.

The frame size ffmpeg reports is that of the first frame, and a stream may
change size later (a Matroska of MJPEG frames, an H.264 stream with a new
SPS). So the decoder itself is bounded: every decode runs with
``-max_pixels ISTORE_MAX_SOURCE_PIXELS``, and a larger frame anywhere is 413
before it is decoded; a frame with a side over ``ISTORE_MAX_OUTPUT_SIDE`` is
refused from the PPM header, before Pillow reads its pixels.
"""
import io
import math
import os
import re
import threading
import time

import ffmpeg
from django.conf import settings

from ..errors import BadParameter, TooLarge, Unprocessable, UnsupportedInput

from . import runner
from .binary import ffmpeg_binary
from .index import _REORDER_MARGIN, _segment_for
from .info import _probe_file
from .inputs import _ffmpeg_reason, _input, _local_path
from .runner import _GLOBAL, _compile, _timeout, _ts

#: JPEG quality when the caller passes none (same scale as Pillow's, 1..100).
DEFAULT_QUALITY = 85

_MAX_DROP_TERMS = 4000  # beyond that the drop expression is not worth it: plain decode
_caps = {}  # binary -> bool: takes bitstream filters on inputs (the non-reference drop)
_caps_lock = threading.Lock()


def grab_frame(path, sec, quality=None):
    """JPEG bytes of the frame shown at ``sec`` seconds (the last frame at or before it).

    ``sec`` ≥ 0, decimals allowed; ``sec`` ≥ duration → Unprocessable (422).
    ``quality`` 1..100 (Pillow's JPEG scale), default ``DEFAULT_QUALITY``.
    """
    sec = _seconds(sec)
    quality = _quality(quality)
    path = _local_path(path)
    binary = ffmpeg_binary()
    info = _probe_file(path, binary)
    pixels = info["width"] * info["height"]
    if pixels > settings.ISTORE_MAX_SOURCE_PIXELS:
        # Checked on the probed size, before ffmpeg decodes a single frame.
        raise TooLarge(
            f"the video's frames are {info['width']}x{info['height']} = {pixels} pixels; "
            f"ISTORE_MAX_SOURCE_PIXELS allows {settings.ISTORE_MAX_SOURCE_PIXELS}",
            code="too_many_pixels",
        )
    duration = info["duration"]
    if sec >= duration:
        raise Unprocessable(
            f"sec={sec:g} is past the end of the video (duration {duration:g} s; "
            f"the last frame is before sec={duration:g})"
        )
    deadline = time.monotonic() + _timeout()
    st = os.stat(path)
    video_key = (path, st.st_mtime_ns, st.st_size)
    want_refs = info["codec"] == "h264" and _fast_decode_supported(binary, deadline)
    segment = _segment_for(binary, path, video_key, sec, info, want_refs, deadline)
    target = segment.target(sec) if segment else None
    frame = None
    if target is not None:
        frame = _decode_target(binary, path, segment, target, want_refs, deadline)
    elif segment is not None and segment.packets and segment.seek == 0.0:
        # Every frame is later than sec (a video stream that starts late): a player shows the first.
        frame = _decode(binary, path, 0.0, None, None, deadline)
    if frame is None:
        # No usable timestamps, or the exact decode found nothing: ffmpeg's own accurate seek
        # (the first frame at or after sec) is the best remaining answer.
        frame = _decode(binary, path, sec, None, None, deadline, accurate=True)
    if frame is None:
        raise Unprocessable(f"no video frame could be decoded at sec={sec:g}; the video may be truncated or damaged")
    return _encode_jpeg(frame, quality)


def _decode_target(binary, path, segment, target, want_refs, deadline):
    keys = [p for p in segment.packets if p.key and p.t <= target.t and p.dts <= target.dts]
    key = max(keys, key=lambda p: p.t) if keys else None
    earlier = [p.pts for p in segment.packets if p.pts < target.pts]
    later = [p.pts for p in segment.packets if p.pts > target.pts]
    # trim bounds halfway to the neighbouring frames: only the target passes.
    lo = segment.seconds((max(earlier) + target.pts) / 2) if earlier else None
    hi = segment.seconds((min(later) + target.pts) / 2) if later else None
    window = (lo, hi)
    drop = _drop_expression(segment, target, key) if want_refs and segment.has_refs else None
    seeks = []
    if key is not None:
        seeks.append(key.t + 0.0005)  # lands on that keyframe
    seeks += [segment.seek, 0.0]  # where the index started: lands before the first keyframe
    tried = set()
    for seek in seeks:
        seek = max(seek, 0.0)
        if seek in tried or (tried and seek > min(tried)):
            continue
        tried.add(seek)
        frame = _decode(binary, path, seek, window, drop, deadline) if drop else None
        if frame is None:
            frame = _decode(binary, path, seek, window, None, deadline)
        if frame is not None:
            return frame
    return None

def _drop_expression(segment, target, key):
    """``noise=drop=...`` dropping the non-reference packets around the target, or None."""
    start_dts = key.dts if key is not None else segment.packets[0].dts
    doomed = sorted({p.pts for p in segment.packets
                     if not p.ref and p.dts >= start_dts and p.t <= target.t + _REORDER_MARGIN
                     and p.pts != target.pts})
    if not doomed or len(doomed) > _MAX_DROP_TERMS:
        return None
    # The expression parser limits nesting, so the terms are summed as a balanced tree;
    # and no commas (they separate filters in a -bsf list): not(pts-X) is 1 iff pts == X.
    terms = [f"not(pts-{pts})" for pts in doomed]
    while len(terms) > 1:
        terms = [f"({terms[i]}+{terms[i + 1]})" if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return f"noise=drop={terms[0]}"


def _fast_decode_supported(binary, deadline):
    """Does this ffmpeg take bitstream filters on an input (ffmpeg >= 7) and have filter_units/noise?"""
    with _caps_lock:
        if binary in _caps:
            return _caps[binary]
    code, out, _ = runner._run([binary, *_GLOBAL, "-bsfs"], deadline)
    ok = code == 0 and {"noise", "filter_units"} <= set(out.decode("ascii", "replace").split())
    if ok:
        test = ffmpeg.input("color=s=16x16:d=0.12", f="lavfi", **{"bsf:v": "noise=drop=not(pts-1)"})
        ok = runner._run(_compile(binary, ffmpeg.output(test, "-", f="null")), deadline)[0] == 0
    with _caps_lock:
        _caps[binary] = ok
    return ok


def _decode(binary, path, seek, window, drop, deadline, accurate=False):
    """PPM bytes of one decoded frame, or None.

    ``window=(lo, hi)`` (seconds, the stream's own timestamps, None = open): the first frame
    with lo <= pts < hi, decoding from where an input seek to ``seek`` lands. ``accurate=True``: the first frame at
    or after ``seek`` (ffmpeg's accurate seek).
    """
    options = {} if accurate else {"copyts": None, "noaccurate_seek": None}
    options["max_pixels"] = settings.ISTORE_MAX_SOURCE_PIXELS
    if seek > 0:
        options["ss"] = _ts(seek)
    if drop:
        options["bsf:v"] = drop
    video = _input(path, **options)["V:0"]
    bounds = {name: f"{value:.6f}" for name, value in zip(("start", "end"), window or ()) if value is not None}
    if bounds:
        video = video.filter("trim", **bounds)
    stream = ffmpeg.output(
        video, "pipe:1", f="image2pipe", vcodec="ppm", pix_fmt="rgb24", an=None, sn=None, dn=None,
        **{"frames:v": 1},
    )
    code, out, err = runner._run(_compile(binary, stream), deadline)
    if out.startswith(b"P6"):
        return out
    if "exceeds specified max pixel count" in err:
        raise TooLarge(
            f"a frame of this video at or before sec={seek:g} has more than {settings.ISTORE_MAX_SOURCE_PIXELS} "
            "pixels (ISTORE_MAX_SOURCE_PIXELS), though its first frame is smaller",
            code="too_many_pixels",
        )
    if code < 0:
        raise UnsupportedInput(f"ffmpeg crashed (signal {-code}) while decoding this video")
    if drop:
        return None  # the caller retries without dropping anything
    if code != 0 and not re.search(r"Output file is empty|nothing was encoded|does not contain any stream", err):
        reason = _ffmpeg_reason(err, path)
        if reason:
            raise UnsupportedInput(f"this video cannot be decoded ({reason})")
    return None


def _encode_jpeg(ppm, quality):
    from PIL import Image

    from ..imaging import check_output_size

    try:
        with Image.open(io.BytesIO(ppm)) as im:
            check_output_size(*im.size)  # from the header, before the pixels are read
            im = im.convert("RGB")
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=quality)
    except BadParameter as exc:
        raise TooLarge(f"the video frame is too large to serve: {exc.detail}", code="too_many_pixels") from None
    except Exception as exc:  # noqa: BLE001 - a Pillow limit (decompression bomb) or a malformed frame
        raise Unprocessable(f"the video frame could not be encoded as JPEG ({exc})") from None
    return buf.getvalue()


def _seconds(sec):
    try:
        value = float(sec)
    except (TypeError, ValueError):
        raise BadParameter("sec: expected a number of seconds ≥ 0 (decimals allowed)") from None
    if not math.isfinite(value) or value < 0:
        raise BadParameter("sec: expected a number of seconds ≥ 0 (decimals allowed)")
    return value


def _quality(quality):
    if quality is None:
        return DEFAULT_QUALITY
    if isinstance(quality, bool):
        raise BadParameter("quality: expected an integer 1..100")
    try:
        value = int(quality)
    except (TypeError, ValueError):
        raise BadParameter("quality: expected an integer 1..100") from None
    if not 1 <= value <= 100 or (isinstance(quality, float) and value != quality):
        raise BadParameter("quality: expected an integer 1..100")
    return value
