"""
The ffmpeg layer: what a video is (``probe``) and the frame shown at a time (``grab_frame``).

Pure functions over a *local file path*: no HTTP, keys or requests. The caller
(``processing/operations.py``) resolves a source to a locally cached file first,
so the SSRF rules and size limits of the resolvers hold and ffmpeg itself never
opens the network.

Why it looks the way it does:

- **No ffprobe, no system packages.** The binary is the one shipped by the
  PyPI package imageio-ffmpeg (or ``ISTORE_FFMPEG_BINARY``), checked once with
  ``-version``. ``probe`` parses the stream dump ffmpeg prints on stderr when
  it opens an input (what imageio-ffmpeg and moviepy do too); a container
  without a duration in its header (a MediaRecorder WebM, a raw stream) is
  measured by demuxing the packets with ``-c copy -f framecrc`` (no decoding).
- **Input seeking.** ``-ss`` goes before ``-i``, so ffmpeg jumps to the
  keyframe before the target and decodes only from there: the cost is bounded
  by the keyframe interval, not by ``sec`` (see "frames" below for the two
  runs a grab makes and why non-reference frames are dropped).
- **"The frame shown at sec".** ffmpeg's accurate seek returns the first frame
  whose timestamp is *at or after* the seek point; a player shows the last
  frame *at or before* it. So the packet timestamps are read first (demux
  only, cached) and the decode keeps exactly that frame. This also gives the
  right answer after the video stream ends in a longer container (the last
  frame), in variable-frame-rate gaps, and in containers whose seeking lands
  late (MPEG-TS: the decode is retried from further back).
- **Only local files.** The input is always ``file:/absolute/path`` of an
  existing regular file, opened with ``-protocol_whitelist file`` and a
  ``-format_whitelist`` of plain video containers, so playlists (HLS, DASH,
  concat) that would make ffmpeg open other URLs or files are refused.
- **Bounded.** Every ffmpeg runs in its own process group and is killed when
  ``ISTORE_FFMPEG_TIMEOUT`` runs out (504; one deadline per ``probe`` and one
  per ``grab_frame``). One frame goes through the pipe (PPM), and Pillow
  encodes the JPEG so ``quality`` means what it means for images.
- **Errors.** Only ``istore_site.errors`` classes leave this module: 415 not a
  video, 422 ``sec`` past the end, 503 binary missing or broken, 504 timeout,
  400 bad arguments.
"""
import collections
import functools
import io
import math
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import typing

import ffmpeg
from django.conf import settings

from istore_site.errors import (BadRequest, GatewayTimeout, PayloadTooLarge, ServiceUnavailable, Unprocessable,
                                UnsupportedMedia)

__all__ = ["DEFAULT_QUALITY", "ffmpeg_binary", "grab_frame", "probe"]

#: JPEG quality when the caller passes none (same scale as Pillow's, 1..100).
DEFAULT_QUALITY = 85

# Demuxers ffmpeg may use. Matching is per name part, so "mov" admits the demuxer
# "mov,mp4,m4a,3gp,3g2,mj2". Deliberately absent: hls, dash, concat, image2 and
# the *_pipe image demuxers, tee, anything that opens other files or URLs.
_DEMUXERS = "mov,matroska,avi,flv,mpegts,mpeg,ogg,asf,mxf,nut,ivf,h264,hevc,m4v"

_GLOBAL = ["-hide_banner", "-nostdin", "-nostats"]
_VERSION_TIMEOUT = 10.0  # seconds for `ffmpeg -version`, independent of ISTORE_FFMPEG_TIMEOUT
_NOPTS = -(2**63)  # AV_NOPTS_VALUE as framecrc prints it


# ------------------------------------------------------------------ binary


def ffmpeg_binary():
    """Path of a working ffmpeg: ``ISTORE_FFMPEG_BINARY`` if set, else imageio-ffmpeg's.

    ServiceUnavailable (503) when it is missing, not executable or does not
    answer ``-version`` like an ffmpeg.
    """
    configured = getattr(settings, "ISTORE_FFMPEG_BINARY", "") or ""
    if configured:
        path = configured if os.sep in configured else shutil.which(configured)
        if not path:
            raise ServiceUnavailable(
                "the ffmpeg binary named by ISTORE_FFMPEG_BINARY is not on PATH; video processing is "
                "unavailable (install it, or leave the setting empty to use imageio-ffmpeg's)"
            )
        source = "ISTORE_FFMPEG_BINARY"
    else:
        try:
            import imageio_ffmpeg

            path = imageio_ffmpeg.get_ffmpeg_exe()
        except Exception as exc:  # noqa: BLE001 - ImportError, RuntimeError("No ffmpeg exe could be found"), ...
            raise ServiceUnavailable(
                f"no ffmpeg binary available ({exc}); reinstall imageio-ffmpeg or set ISTORE_FFMPEG_BINARY"
            ) from None
        source = "imageio-ffmpeg"
    try:
        st = os.stat(path)
    except OSError:
        raise ServiceUnavailable(f"ffmpeg binary from {source} does not exist; video processing is unavailable") from None
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise ServiceUnavailable(f"ffmpeg binary from {source} is not an executable file; video processing is unavailable")
    _check_binary(path, st.st_mtime_ns, st.st_size)
    return path


@functools.lru_cache(maxsize=8)
def _check_binary(path, mtime_ns, size):
    """Run ``ffmpeg -version`` once per binary version (only successes are cached)."""
    try:
        code, out, _ = _run([path, "-hide_banner", "-version"], time.monotonic() + _VERSION_TIMEOUT)
    except GatewayTimeout:
        raise ServiceUnavailable(
            f"the ffmpeg binary did not answer -version within {_VERSION_TIMEOUT:g} s; video processing is unavailable"
        ) from None
    first = out.decode("utf-8", "replace").strip().splitlines()[:1]
    if code != 0 or not first or not first[0].startswith("ffmpeg version"):
        raise ServiceUnavailable(
            "the ffmpeg binary is broken (`ffmpeg -version` did not answer like an ffmpeg); "
            "video processing is unavailable"
        )
    return first[0]


# ------------------------------------------------------------------ running


def _timeout():
    return float(getattr(settings, "ISTORE_FFMPEG_TIMEOUT", 30.0))


def _run(args, deadline):
    """Run one ffmpeg; (returncode, stdout, stderr text). Killed (504) at ``deadline`` (monotonic)."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise GatewayTimeout(_timeout_detail())
    try:
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, so a kill takes any children too
        )
    except OSError as exc:
        raise ServiceUnavailable(f"the ffmpeg binary cannot run ({exc.strerror or exc})") from None
    try:
        out, err = proc.communicate(timeout=remaining)
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise GatewayTimeout(_timeout_detail()) from None
    except BaseException:
        _kill(proc)
        raise
    return proc.returncode, out, err.decode("utf-8", "replace")


def _kill(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        try:
            proc.kill()
        except OSError:
            pass
    for pipe in (proc.stdout, proc.stderr):
        try:
            pipe.close()
        except OSError:
            pass
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover - unkillable process
        pass


def _timeout_detail():
    return (f"ffmpeg did not finish within {_timeout():g} s (ISTORE_FFMPEG_TIMEOUT) and was stopped; "
            "the video may be too large or damaged")


def _compile(binary, stream, loglevel="error"):
    return ffmpeg.compile(stream, cmd=[binary, *_GLOBAL, "-loglevel", loglevel])


def _input(path, **options):
    """An ffmpeg-python input that can only be the local file ``path``."""
    return ffmpeg.input("file:" + path, protocol_whitelist="file", format_whitelist=_DEMUXERS, **options)


def _ts(seconds):
    return f"{max(seconds, 0.0):.6f}"


def _local_path(path):
    """Absolute path of an existing regular local file, else BadRequest."""
    try:
        text = os.fsdecode(path)
    except TypeError:
        raise BadRequest("video: expected a local file path") from None
    if not text or "\x00" in text:
        raise BadRequest("video: expected a local file path")
    absolute = os.path.abspath(text)
    if not os.path.isfile(absolute):
        # A URL lands here too: ffmpeg is only ever given local files.
        raise BadRequest("video: the source is not an existing local file (ffmpeg reads only local copies)")
    return absolute


def _ffmpeg_reason(stderr, path):
    """The last meaningful ffmpeg error line, without the server's file path."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    reason = ""
    for ln in reversed(lines):
        if ln.startswith("Error opening input files:"):
            reason = ln.split(":", 1)[1].strip()
            break
    if not reason:
        for ln in reversed(lines):
            if "Error" in ln or "Invalid" in ln or "not found" in ln:
                reason = ln
                break
    reason = reason.replace("file:" + path, "<input>").replace(path, "<input>")
    reason = re.sub(r"^\[[^\]]*\]\s*", "", reason)
    return reason[:200]


# ------------------------------------------------------------------ probe

_RE_INPUT = re.compile(r"^Input #0, (.*?), from ", re.MULTILINE)
_RE_DURATION = re.compile(r"Duration: (?:(\d+):(\d\d):(\d\d(?:\.\d+)?)|N/A)")
_RE_START = re.compile(r"start: (-?\d+(?:\.\d+)?)")
_RE_STREAM = re.compile(r"^\s*Stream #0:\d+\S*: Video: (.*)$", re.MULTILINE)
_RE_SIZE = re.compile(r"^(\d+)x(\d+)(?:\s|$)")
_RE_RATE = re.compile(r"^(\d+(?:\.\d+)?)(k?) (fps|tbr)$")
_RE_ROTATION = re.compile(r"display ?matrix: rotation of (-?\d+(?:\.\d+)?) degrees", re.IGNORECASE)

_PUBLIC = ("format", "width", "height", "duration", "fps", "codec")


def probe(path):
    """What the video at local ``path`` is.

    ``{"format": "mp4", "width": 1280, "height": 720, "duration": 120.0,
    "fps": 25.0, "codec": "h264"}``; width/height as displayed (a 90° display
    rotation swaps them), duration in seconds (centisecond precision, the
    container's), fps the stream's average rate (0.0 when unknown).
    Cached by (path, mtime, size). UnsupportedMedia (415) when there is no
    video stream or the file is not a readable container.
    """
    path = _local_path(path)
    binary = ffmpeg_binary()
    info = _probe_file(path, binary)
    return {key: info[key] for key in _PUBLIC}


def _probe_file(path, binary):
    try:
        st = os.stat(path)
    except OSError:
        raise BadRequest("video: the source is not an existing local file") from None
    return _probe_cached(path, st.st_mtime_ns, st.st_size, binary)


@functools.lru_cache(maxsize=256)
def _probe_cached(path, mtime_ns, size, binary):
    if size == 0:
        raise UnsupportedMedia("not a video: the file is empty")
    deadline = time.monotonic() + _timeout()
    # `-i` alone is enough for the dump; the copy-to-null output (no decoding, -t 0)
    # only gives ffmpeg-python an output to compile and ffmpeg a clean exit.
    cmd = _compile(binary, ffmpeg.output(_input(path)["V:0?"], "-", f="null", c="copy", t=0), loglevel="info")
    _, _, err = _run(cmd, deadline)
    info = _parse_probe(err, path)
    if info["duration"] is None:
        end = _stream_end(binary, path, info["start"], deadline)
        if end is None:
            raise UnsupportedMedia("not a video: no video frames could be read")
        info["duration"] = round(end, 6)
    info["format"] = _format_name(info.pop("demuxer"), path)
    return info


def _parse_probe(err, path):
    """The ``Input #0`` dump of ``ffmpeg -i`` → dict (duration None when the container has none)."""
    m = _RE_INPUT.search(err)
    if not m:
        reason = _ffmpeg_reason(err, path)
        if "Invalid argument" in reason or not reason:
            reason = "not a supported video container"
        raise UnsupportedMedia(f"not a video: ffmpeg cannot read it ({reason})")
    section = err[m.start():]
    for marker in ("\nOutput #0", "\nStream mapping:"):
        cut = section.find(marker)
        if cut >= 0:
            section = section[:cut]
    description, stream_block = None, ""
    for sm in _RE_STREAM.finditer(section):
        if "(attached pic)" in sm.group(1):  # cover art, not the video
            continue
        description = sm.group(1)
        following = section[sm.end():]
        nxt = re.search(r"^\s*Stream #0:", following, re.MULTILINE)
        stream_block = following[: nxt.start()] if nxt else following
        break
    if description is None:
        kinds = sorted(set(re.findall(r"^\s*Stream #0:\d+\S*: (\w+):", section, re.MULTILINE))) or ["no streams"]
        raise UnsupportedMedia(f"not a video: the file has no video stream ({', '.join(k.lower() for k in kinds)})")
    parts = _split_top(description)
    codec = parts[0].split()[0].strip(",") if parts and parts[0].split() else ""
    width = height = 0
    fps = tbr = None
    for part in parts[1:]:
        if not width:
            sm = _RE_SIZE.match(part)
            if sm:
                width, height = int(sm.group(1)), int(sm.group(2))
                continue
        rm = _RE_RATE.match(part)
        if rm:
            value = float(rm.group(1)) * (1000 if rm.group(2) else 1)
            if rm.group(3) == "fps" and fps is None:
                fps = value
            elif rm.group(3) == "tbr" and tbr is None:
                tbr = value
    if not width or not height:
        raise UnsupportedMedia("not a video: the video stream has no frame size ffmpeg can read")
    rot = _RE_ROTATION.search(stream_block)
    if rot and round(abs(float(rot.group(1)))) % 180 == 90:
        width, height = height, width
    dm = _RE_DURATION.search(section)
    duration = None
    if dm and dm.group(1) is not None:
        duration = int(dm.group(1)) * 3600 + int(dm.group(2)) * 60 + float(dm.group(3))
    st = _RE_START.search(section)
    return {
        "demuxer": m.group(1),
        "width": width,
        "height": height,
        "duration": duration,
        "fps": float(fps if fps is not None else tbr if tbr is not None else 0.0),
        "codec": codec,
        "start": float(st.group(1)) if st else 0.0,
    }


def _split_top(text):
    """Split on commas outside () and []: 'yuv420p(tv, bt709)' stays one part."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth = max(0, depth - 1)
        if ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur).strip())
    return [p for p in parts if p]


def _format_name(demuxer, path):
    """A short container name: ffmpeg's demuxer name made specific (mp4/mov, webm/matroska)."""
    names = demuxer.split(",")
    if names[0] == "mov":
        brand = _major_brand(path)
        if brand.startswith("qt"):
            return "mov"
        if brand.startswith("3g"):
            return "3gp"
        return "mp4"
    if names[0] == "matroska":
        try:
            with open(path, "rb") as fh:
                head = fh.read(64)
        except OSError:
            head = b""
        return "webm" if b"webm" in head else "matroska"
    return names[0]


def _major_brand(path):
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except OSError:
        return ""
    if len(head) == 12 and head[4:8] == b"ftyp":
        return head[8:12].decode("latin-1").strip().lower()
    return ""


def _stream_end(binary, path, start, deadline):
    """End of the last video frame (pts + duration, seconds), from the packets; None if none.

    Demuxes the whole file without decoding: only for containers whose header has no duration.
    """
    stream = ffmpeg.output(_input(path, copyts=None)["V:0"], "-", f="framecrc", c="copy")
    _, out, _ = _run(_compile(binary, stream), deadline)
    tb, best = None, None
    for line in out.decode("ascii", "replace").splitlines():
        if line.startswith("#tb 0:"):
            num, _, den = line.split(":", 1)[1].strip().partition("/")
            try:
                tb = int(num) / int(den)
            except (ValueError, ZeroDivisionError):
                tb = None
            continue
        fields = [f.strip() for f in line.split(",")]
        if line.startswith("#") or tb is None or len(fields) < 4 or fields[0] != "0":
            continue
        try:
            dts, pts, dur = int(fields[1]), int(fields[2]), int(fields[3])
        except ValueError:
            continue
        if pts == _NOPTS:
            pts = dts
        if pts == _NOPTS:
            continue
        t = (pts + max(dur, 0)) * tb - start
        if best is None or t > best:
            best = t
    return best


# ------------------------------------------------------------------ frames
#
# A grab is two ffmpeg runs, the first one usually answered from memory:
#
# 1. Index (demux only, no decoding, ~20-40 ms; cached per stretch of video):
#    the video packets from where an input seek to `sec` lands up to
#    `sec + _INDEX_AHEAD`, with their timestamps (-copyts), keyframe flags and,
#    for H.264, which frames are references (the stream mapped twice, the
#    copy through `filter_units=discard=nonref`: the packets that survive are
#    the references). It names the target exactly: the last frame with
#    pts <= sec, and the keyframe to decode it from.
# 2. Decode: `-ss` on that keyframe before `-i` (input seeking: the cost is
#    bounded by the keyframe interval, whatever `sec` is), then
#    `trim=start:end` around the target's own timestamp and `-frames:v 1`, so
#    exactly that frame comes out or none does (then the decode is retried
#    from further back). For H.264 the non-reference frames other than the
#    target are dropped before the decoder (`-bsf:v noise=drop=...` on the
#    input, ffmpeg >= 7): nothing depends on them, so the target is
#    bit-identical, and a 10 s GOP of x264 output decodes ~40% faster.

_INDEX_AHEAD = 20.0  # seconds indexed past `sec`; later grabs in that stretch reuse the index
_REORDER_MARGIN = 1.0  # seconds: frames up to (end of index - margin) are surely all listed
_TIME_SLACK = 1e-6  # seconds: float noise of pts * tb - start (a frame at exactly sec counts)
_MAX_DROP_TERMS = 4000  # beyond that the drop expression is not worth it: plain decode
_INDEX_VIDEOS = 16  # videos whose index is kept (LRU) ...
_INDEX_SEGMENTS = 8  # ... and stretches per video: a few MB at most
_INDEX_MAX_PACKETS = 20000  # a longer stretch (a far step back) is used once, not kept
_index_lock = threading.Lock()
_index = collections.OrderedDict()  # (path, mtime_ns, size) -> [_Segment, ...] most recent last
_caps = {}  # binary -> bool: takes bitstream filters on inputs (the non-reference drop)
_caps_lock = threading.Lock()


class _Packet(typing.NamedTuple):
    dts: int
    pts: int
    t: float  # seconds from the start of the video (pts * tb - container start)
    key: bool
    ref: bool  # False only when known to be a non-reference frame


class _Segment(typing.NamedTuple):
    seek: float  # the -ss that produced it (a decode seeking there lands where the index starts)
    first: float  # time of its first keyframe: frames from there on are decodable
    until: float  # every frame with t <= until is listed
    packets: tuple  # in decode order
    tb_num: int
    tb_den: int
    has_refs: bool  # the ref flags are real (H.264 with filter_units)

    def covers(self, sec):
        return self.first <= sec + _TIME_SLACK and sec <= self.until

    def target(self, sec):
        """The packet shown at `sec`: the last one with t <= sec; None if none is."""
        best = None
        for p in self.packets:
            if p.t <= sec + _TIME_SLACK and (best is None or p.t > best.t):
                best = p
        return best

    def seconds(self, pts):
        return pts * self.tb_num / self.tb_den


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
        raise PayloadTooLarge(
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


def _segment_for(binary, path, video_key, sec, info, want_refs, deadline):
    with _index_lock:
        segments = _index.get(video_key)
        if segments is not None:
            _index.move_to_end(video_key)
            for seg in reversed(segments):
                if seg.covers(sec) and (seg.has_refs or not want_refs):
                    return seg
    seek, back = sec, _INDEX_AHEAD
    while True:
        seg = _scan(binary, path, seek, sec - seek + _INDEX_AHEAD, info, want_refs, deadline)
        if seek == 0.0 or (seg is not None and seg.first <= sec + _TIME_SLACK and seg.target(sec) is not None):
            break
        # The seek landed after the last keyframe before sec (containers without an
        # index, e.g. MPEG-TS) or past the end of a shorter video stream: step back.
        seek, back = max(sec - back, 0.0), back * 2
    if seg is None or len(seg.packets) > _INDEX_MAX_PACKETS:
        return seg  # used once, not kept
    with _index_lock:
        segments = _index.setdefault(video_key, [])
        _index.move_to_end(video_key)
        segments.append(seg)
        del segments[:-_INDEX_SEGMENTS]
        while len(_index) > _INDEX_VIDEOS:
            _index.popitem(last=False)
    return seg


def _scan(binary, path, seek, span, info, want_refs, deadline):
    """Index the video packets from where a seek to ``seek`` lands to ``seek + span``."""
    options = {"copyts": None, "t": _ts(span)}
    if seek > 0:
        options["ss"] = _ts(seek)
    source = _input(path, **options)
    out_options = {"f": "framecrc", "c": "copy", "copypriorss": 1}
    if want_refs:
        out_options["bsf:v:1"] = "filter_units=discard=nonref"
        stream = ffmpeg.output(source["V:0"], source["V:0"], "pipe:1", **out_options)
    else:
        stream = ffmpeg.output(source["V:0"], "pipe:1", **out_options)
    code, out, err = _run(_compile(binary, stream), deadline)
    tbs, rows, refs = {}, [], set()
    for line in out.decode("ascii", "replace").splitlines():
        if line.startswith("#tb "):
            idx, _, frac = line[4:].partition(":")
            num, _, den = frac.strip().partition("/")
            try:
                tbs[idx.strip()] = (int(num), int(den))
            except ValueError:
                pass
            continue
        if line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 6:
            continue
        try:
            dts, pts = int(fields[1]), int(fields[2])
        except ValueError:
            continue
        if pts == _NOPTS:
            pts = dts
        if pts == _NOPTS:
            continue
        flags = 1  # framecrc prints F=0x.. only when the flags are not just "key"
        for extra in fields[6:]:
            if extra.startswith("F=0x"):
                try:
                    flags = int(extra[4:], 16)
                except ValueError:
                    flags = 0
        if fields[0] == "0":
            rows.append((dts, pts, bool(flags & 1)))
        elif fields[0] == "1":
            refs.add((dts, pts))
    if code != 0 and want_refs:
        # The reference filter choked on this stream: index it without (plain decodes).
        return _scan(binary, path, seek, span, info, False, deadline)
    if "0" not in tbs or not tbs["0"][0] or not tbs["0"][1]:
        if code != 0 and not rows:
            reason = _ffmpeg_reason(err, path)
            if reason:
                raise UnsupportedMedia(f"this video cannot be read ({reason})")
        return None
    num, den = tbs["0"]
    packets = tuple(
        _Packet(dts, pts, pts * num / den - info["start"], key, (not want_refs) or (dts, pts) in refs)
        for dts, pts, key in rows
    )
    keys = [p.t for p in packets if p.key]
    first = min(keys) if keys else math.inf
    until = seek + span - _REORDER_MARGIN
    if code != 0:  # demuxing stopped early (a damaged file): trust only what was listed
        until = min(until, max((p.t for p in packets), default=-math.inf) - _REORDER_MARGIN)
    return _Segment(seek, first, until, packets, num, den, want_refs)


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
    code, out, _ = _run([binary, *_GLOBAL, "-bsfs"], deadline)
    ok = code == 0 and {"noise", "filter_units"} <= set(out.decode("ascii", "replace").split())
    if ok:
        test = ffmpeg.input("color=s=16x16:d=0.12", f="lavfi", **{"bsf:v": "noise=drop=not(pts-1)"})
        ok = _run(_compile(binary, ffmpeg.output(test, "-", f="null")), deadline)[0] == 0
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
    code, out, err = _run(_compile(binary, stream), deadline)
    if out.startswith(b"P6"):
        return out
    if code < 0:
        raise UnsupportedMedia(f"ffmpeg crashed (signal {-code}) while decoding this video")
    if drop:
        return None  # the caller retries without dropping anything
    if code != 0 and not re.search(r"Output file is empty|nothing was encoded|does not contain any stream", err):
        reason = _ffmpeg_reason(err, path)
        if reason:
            raise UnsupportedMedia(f"this video cannot be decoded ({reason})")
    return None


def _encode_jpeg(ppm, quality):
    from PIL import Image

    try:
        with Image.open(io.BytesIO(ppm)) as im:
            im = im.convert("RGB")
            buf = io.BytesIO()
            im.save(buf, "JPEG", quality=quality)
    except Exception as exc:  # noqa: BLE001 - a Pillow limit (decompression bomb) or a malformed frame
        raise Unprocessable(f"the video frame could not be encoded as JPEG ({exc})") from None
    return buf.getvalue()


def _seconds(sec):
    try:
        value = float(sec)
    except (TypeError, ValueError):
        raise BadRequest("sec: expected a number of seconds ≥ 0 (decimals allowed)") from None
    if not math.isfinite(value) or value < 0:
        raise BadRequest("sec: expected a number of seconds ≥ 0 (decimals allowed)")
    return value


def _quality(quality):
    if quality is None:
        return DEFAULT_QUALITY
    if isinstance(quality, bool):
        raise BadRequest("quality: expected an integer 1..100")
    try:
        value = int(quality)
    except (TypeError, ValueError):
        raise BadRequest("quality: expected an integer 1..100") from None
    if not 1 <= value <= 100 or (isinstance(quality, float) and value != quality):
        raise BadRequest("quality: expected an integer 1..100")
    return value
