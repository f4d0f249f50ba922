"""
Animated GIF and WebP through the operations: every frame, its duration, the
loop count and transparency kept, one frame at a time.

Why one frame at a time: a 500-frame 640x480 animation is 600 MB of decoded
RGBA. Pillow decodes frames one by one (``seek``), but its multi-frame savers
hold the whole output: the GIF writer keeps every frame until the end (to
merge duplicates and crop deltas), and the WebP writer wants every duration
before the first frame. So istore drives the two encoders itself, and a
worker holds one decoded source frame, the frame it made from it and the
previous one, whatever the length of the animation:

- ``GifWriter`` writes each frame as soon as the next one is known (it may
  only lengthen its duration), with Pillow's public GIF block writers
  (``getheader``/``getdata``): a frame that changes only part of the picture
  is cropped to that part, identical frames are merged, and a frame with
  transparent pixels is written whole and cleared after it is shown (GIF's
  "restore to background"), so no pixel of an earlier frame shows through;
- ``WebPWriter`` feeds libwebp's animation encoder (``WebPAnimEncoder``,
  through Pillow's ``_webp`` binding, which Pillow's own saver uses), which
  keeps only compressed frames.

``scan`` reads a GIF's blocks or a WebP's chunks without decoding a pixel:
frame count, durations, loop count. That gives ``info`` its ``frames`` and
``duration`` at the cost of a read of the file, and lets
``ISTORE_MAX_ANIMATION_PIXELS`` (frames x canvas pixels) refuse an animation
before it is decoded. Decoding keeps its own count as well, since a GIF frame
may be larger than the canvas its header declares.
"""
import io
import mmap
import struct
from dataclasses import dataclass, field

from django.conf import settings
from PIL import GifImagePlugin, Image, ImageChops

from . import imaging
from .errors import TooLarge, Unprocessable, UnsupportedInput

FORMATS = ("GIF", "WEBP")  # output formats that animate
ALPHA_CUT = 128  # GIF transparency is all or nothing: alpha below this is transparent
# GIF palettes: the fast octree is ~14x faster than Pillow's default median cut on a
# 320x240 frame (2.6 vs 36 ms) for a mean error of 0.85 instead of 0.45 levels, and
# keeps a frame of 255 colours or fewer exact.
QUANTIZE = Image.Quantize.FASTOCTREE
MAX_GIF_DURATION = 655350  # ms: a GIF frame lasts at most 65535 hundredths of a second


@dataclass
class Timeline:
    """What the container says about an animation: frames, their durations (ms), loop count."""

    frames: int = 0
    durations: list = field(default_factory=list)
    loop: int | None = None  # None: played once (a GIF without a loop extension)
    truncated: bool = False  # the scan stopped at ``max_frames``

    @property
    def duration(self):
        """Total duration in seconds."""
        return sum(self.durations) / 1000.0


def scan(path, fmt, max_frames=None):
    """The ``Timeline`` of the GIF or WebP file ``path`` (Pillow format ``fmt``), read from
    its blocks without decoding; None for other formats. Stops after ``max_frames``."""
    reader = {"GIF": _scan_gif, "WEBP": _scan_webp}.get(fmt)
    if reader is None:
        return None
    with open(path, "rb") as handle:
        try:
            data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file
            return Timeline()
        with data:
            timeline = Timeline()
            try:
                reader(data, timeline, max_frames or float("inf"))
            except (IndexError, struct.error):
                pass  # a truncated file: what was read so far
            return timeline


def _scan_gif(data, timeline, max_frames):
    flags = data[10]
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    delay = 0
    while pos < len(data):
        kind = data[pos]
        if kind == 0x21:  # extension: label, sub-blocks
            label, pos = data[pos + 1], pos + 2
            if label == 0xF9 and data[pos] >= 4:  # graphic control: delay in hundredths of a second
                delay = struct.unpack_from("<H", data, pos + 2)[0] * 10
            elif label == 0xFF and data[pos:pos + 12] == b"\x0bNETSCAPE2.0" and data[pos + 13] == 1:
                timeline.loop = struct.unpack_from("<H", data, pos + 14)[0]
            pos = _skip_blocks(data, pos)
        elif kind == 0x2C:  # image: descriptor, local colour table, LZW data
            local = data[pos + 9]
            pos += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0) + 1
            pos = _skip_blocks(data, pos)
            timeline.frames += 1
            timeline.durations.append(delay)
            delay = 0
            if timeline.frames >= max_frames:
                timeline.truncated = True
                return
        else:  # the trailer, or bytes that are not GIF blocks: the end either way
            return


def _skip_blocks(data, pos):
    while data[pos]:
        pos += data[pos] + 1
    return pos + 1


def _scan_webp(data, timeline, max_frames):
    pos, end = 12, min(len(data), 8 + struct.unpack_from("<I", data, 4)[0])
    animated = False
    while pos + 8 <= end:
        fourcc, size = data[pos:pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if fourcc == b"VP8X":
            animated = bool(data[body] & 0x02)
        elif fourcc == b"ANIM":
            timeline.loop = struct.unpack_from("<H", data, body + 4)[0]
        elif fourcc == b"ANMF":
            timeline.frames += 1
            timeline.durations.append(int.from_bytes(data[body + 12:body + 15], "little"))
            if timeline.frames >= max_frames:
                timeline.truncated = True
                return
        elif fourcc in (b"VP8 ", b"VP8L") and not animated:
            timeline.frames, timeline.durations = 1, [0]
            return
        pos = body + size + (size & 1)


def frame_budget(width, height):
    """How many frames of width x height ``ISTORE_MAX_ANIMATION_PIXELS`` allows."""
    return settings.ISTORE_MAX_ANIMATION_PIXELS // max(1, width * height)


def check_pixels(frames, width, height, what="the source animation"):
    """TooLarge when ``frames`` frames of width x height pass ``ISTORE_MAX_ANIMATION_PIXELS``."""
    limit = settings.ISTORE_MAX_ANIMATION_PIXELS
    total = frames * width * height
    if total > limit:
        raise TooLarge(f"{what} is {frames} frames of {width}x{height} = {total} pixels, more than "
                       f"ISTORE_MAX_ANIMATION_PIXELS ({limit}); ask for one frame with frame=N, or a "
                       "smaller size")


def select(im, index):
    """Move the opened image ``im`` to its frame ``index`` (decoding the frames before it,
    which a GIF needs to compose the picture); Unprocessable past the last frame."""
    if index == 0:
        return
    frames = getattr(im, "n_frames", 1)
    if index >= frames:
        raise Unprocessable(f"frame={index} is past the last frame: this image has {frames} "
                            f"frame{'s' if frames != 1 else ''}, numbered from 0")
    check_pixels(index + 1, *im.size, what=f"reaching frame={index}")
    try:
        im.seek(index)
    except Exception as err:  # noqa: BLE001 - a corrupt frame on the way
        raise UnsupportedInput(f"the source animation is corrupt before frame {index}: {str(err)[:200]}") from None


def frames(im):
    """Yield ``(frame, duration)`` for every frame of the opened animation ``im``, each
    decoded in turn and cut to the canvas size; the image is reused, so a frame is only
    valid until the next one is asked for. Decoded pixels are counted against
    ``ISTORE_MAX_ANIMATION_PIXELS`` as they come."""
    canvas = im.size
    decoded = 0
    index = 0
    while True:
        try:
            if index:
                im.seek(index)
            im.load()
        except EOFError:
            return
        except Exception as err:  # noqa: BLE001 - decoders raise anything on corrupt data
            if index == 0:
                raise UnsupportedInput(f"the source image is corrupt or truncated: {str(err)[:200]}") from None
            return  # a broken frame ends the animation, as browsers show it
        decoded += im.size[0] * im.size[1]
        if decoded > settings.ISTORE_MAX_ANIMATION_PIXELS:
            check_pixels(index + 1, *im.size)
        frame = im if im.size == canvas else im.crop((0, 0, *canvas))
        yield frame, int(im.info.get("duration") or 0)
        index += 1


def run(im, path, transform, target, fmt, quality=None, icc_profile=None):
    """``transform`` on every frame of the animated ``im`` (the file ``path``), written as an
    animated ``fmt``; ``target`` is the output size when it differs from the source's.
    The animation's pixels, and the output's, are checked against the limit first."""
    timeline = scan(path, im.format, frame_budget(*im.size) + 1)
    check_pixels(timeline.frames, *im.size)
    if target is not None:
        imaging.check_output_size(*target)
        check_pixels(timeline.frames, *target, what="the output animation")
    return encode(im, transform, fmt, quality, icc_profile)


def loop_count(im):
    """The source's loop count: 0 for ever, n, or None for a GIF that plays once."""
    loop = im.info.get("loop")
    return loop if isinstance(loop, int) and loop >= 0 else None


def encode(source, transform, fmt, quality=None, icc_profile=None):
    """Run ``transform(frame) -> image`` on every frame of the opened animation
    ``source`` and write the results as an animated ``fmt`` (GIF or WEBP); returns bytes."""
    loop = loop_count(source)
    writer = None
    for frame, duration in frames(source):
        out = transform(frame)
        if out is frame:
            out = frame.copy()  # the decoder reuses its frame; the GIF writer keeps the last one
        if writer is None:
            writer = (GifWriter(loop) if fmt == "GIF"
                      else WebPWriter(out.size, loop, quality, icc_profile))
        writer.add(out, duration)
    try:
        return writer.finish()
    except Exception as err:  # noqa: BLE001 - an encoder refusing our pixels must not be a bare 500
        raise UnsupportedInput(f"cannot write this animation as {fmt.lower()}: {str(err)[:200]}") from None


def _colour_mode(im):
    """``im`` as RGB, or RGBA when it has an alpha channel."""
    if im.mode in ("RGB", "RGBA"):
        return im
    has_alpha = im.mode in ("LA", "PA", "RGBa", "La") or "transparency" in im.info
    return im.convert("RGBA" if has_alpha else "RGB")


class GifWriter:
    """An animated GIF written frame by frame (see the module docstring).

    A frame waits until the next one is known: an identical next frame only
    lengthens it, and a next frame with transparent pixels needs it written
    whole and cleared after it is shown, so that nothing of it shows through.
    """

    def __init__(self, loop):
        self.out = io.BytesIO()
        self.loop = loop
        self.pending = None  # [frame (RGB, or RGBA with alpha 0 or 255), box drawn, duration]
        self.first_transparent = None

    def add(self, frame, duration):
        frame = _binary_alpha(_colour_mode(frame))
        transparent = frame.mode == "RGBA"
        box = (0, 0, *frame.size)
        if self.pending is None:
            self.first_transparent = transparent
        else:
            previous = self.pending[0]
            if previous.size == frame.size and previous.mode == frame.mode:
                changed = ImageChops.difference(previous, frame).getbbox(alpha_only=False)
                if changed is None and self.pending[2] + duration <= MAX_GIF_DURATION:
                    self.pending[2] += duration  # the same picture: the pending frame lasts longer
                    return
                if not transparent:  # both opaque: the previous picture stays, only the change is drawn
                    box = changed or (0, 0, 1, 1)  # (the same picture, after a frame at the longest delay)
            self._write(clear=transparent)
        self.pending = [frame, box, duration]

    def _write(self, clear):
        """Write the pending frame; ``clear``: the next frame has transparent pixels."""
        frame, box, duration = self.pending
        transparent = frame.mode == "RGBA"
        if clear:
            box = (0, 0, *frame.size)
        image, index = _paletted(frame if box == (0, 0, *frame.size) else frame.crop(box))
        params = {"duration": min(duration, MAX_GIF_DURATION), "disposal": 2 if clear or transparent else 1}
        if index is not None:
            params["transparency"] = index
        if not self.out.tell():
            info = {key: params[key] for key in ("transparency", "duration") if key in params}
            if self.loop is not None:
                info["loop"] = self.loop
            header, _ = GifImagePlugin.getheader(image, None, info)
            self.out.writelines(header)
        else:
            params["include_color_table"] = True
        self.out.writelines(GifImagePlugin.getdata(image, box[:2], **params))

    def finish(self):
        self._write(clear=self.first_transparent and self.loop is not None)
        self.out.write(b";")
        return self.out.getvalue()


def _binary_alpha(im):
    """RGB for an opaque image; otherwise RGBA with every pixel fully opaque or fully
    transparent (and transparent ones black, so they take one palette entry)."""
    if im.mode != "RGBA":
        return im
    alpha = im.getchannel("A")
    if alpha.getextrema()[0] >= ALPHA_CUT:
        return im.convert("RGB")
    opaque = alpha.point(lambda a: 255 if a >= ALPHA_CUT else 0)
    out = Image.new("RGBA", im.size, (0, 0, 0, 0))
    out.paste(im.convert("RGB"), mask=opaque)
    out.putalpha(opaque)
    return out


def _paletted(im):
    """(P image, transparency index or None) for an RGB or binary-alpha RGBA image."""
    if im.mode == "RGB":
        return im.quantize(256, method=QUANTIZE), None
    alpha = im.getchannel("A")
    image = im.convert("RGB").quantize(255, method=QUANTIZE)
    palette = image.getpalette()
    index = len(palette) // 3
    image.putpalette(palette + [0, 0, 0])
    image.paste(index, mask=alpha.point(lambda a: 255 - a))
    return image, index


class WebPWriter:
    """An animated WebP fed frame by frame to libwebp's animation encoder."""

    def __init__(self, size, loop, quality, icc_profile):
        from PIL import _webp

        self.size = size
        self.quality = 80 if quality is None else quality
        self.icc_profile = icc_profile or ""
        # Transparent background; kmin/kmax (key frame spacing) are gif2webp's and Pillow's defaults.
        self.encoder = _webp.WebPAnimEncoder(size, 0, 1 if loop is None else loop, False, 3, 5, False, False)
        self.timestamp = 0

    def add(self, frame, duration):
        frame = _colour_mode(frame)
        if frame.size != self.size:  # every frame of one animation has the first one's size
            frame = frame.crop((0, 0, *self.size))
        self.encoder.add(frame.getim(), self.timestamp, False, self.quality, 100, 0)
        self.timestamp += duration

    def finish(self):
        self.encoder.add(None, self.timestamp, False, self.quality, 100, 0)
        data = self.encoder.assemble(self.icc_profile, b"", b"")
        if data is None:
            raise OSError("the WebP encoder returned nothing")
        return data
