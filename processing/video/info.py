"""
``probe``: what a video is (what ``?apply=info`` shows for one).

There is no ffprobe: the stream dump ffmpeg prints on stderr when it opens an
input (the ``Input #0`` section) is parsed, as imageio-ffmpeg and moviepy do,
for the format, frame size, rate and codec. That dump is free text that the
file itself can write into (a metadata tag may hold newlines and a line that
looks like ``Duration: 02:46:40.00``), so nothing that bounds work is taken
from it: the duration is the end of the last packet of the video and audio
streams, read from the structured packet list of a demux (``-c copy -f
framecrc``, no decoding). The container's own duration only says where to
start reading (about ``_END_WINDOW`` seconds before it claims the end is);
when no packet lies there, the whole file is read. The frame size a decoder
may produce is bounded separately (``frames``: ``-max_pixels``). Results are
cached in-process by (path, mtime, size, binary).
"""
import functools
import os
import re
import time

import ffmpeg

from ..errors import BadParameter, UnsupportedInput

from . import runner
from .binary import ffmpeg_binary
from .framecrc import _packet_times
from .inputs import _ffmpeg_reason, _input, _local_path
from .runner import _compile, _timeout, _ts

_RE_INPUT = re.compile(r"^Input #0, (.*?), from ", re.MULTILINE)
_RE_DURATION = re.compile(r"Duration: (?:(\d+):(\d\d):(\d\d(?:\.\d+)?)|N/A)")
_RE_START = re.compile(r"start: (-?\d+(?:\.\d+)?)")
_RE_STREAM = re.compile(r"^\s*Stream #0:\d+\S*: Video: (.*)$", re.MULTILINE)
_RE_SIZE = re.compile(r"^(\d+)x(\d+)(?:\s|$)")
_RE_RATE = re.compile(r"^(\d+(?:\.\d+)?)(k?) (fps|tbr)$")
_RE_ROTATION = re.compile(r"display ?matrix: rotation of (-?\d+(?:\.\d+)?) degrees", re.IGNORECASE)

_PUBLIC = ("format", "width", "height", "duration", "fps", "codec")
_END_WINDOW = 30.0  # seconds before the container's claimed end from which its packets are read


def probe(path):
    """What the video at local ``path`` is.

    ``{"format": "mp4", "width": 1280, "height": 720, "duration": 120.0,
    "fps": 25.0, "codec": "h264"}``; width/height as displayed (a 90° display
    rotation swaps them), duration in seconds (centisecond precision, the
    container's), fps the stream's average rate (0.0 when unknown).
    Cached by (path, mtime, size). UnsupportedInput (415) when there is no
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
        raise BadParameter("video: the source is not an existing local file") from None
    return _probe_cached(path, st.st_mtime_ns, st.st_size, binary)


@functools.lru_cache(maxsize=256)
def _probe_cached(path, mtime_ns, size, binary):
    if size == 0:
        raise UnsupportedInput("not a video: the file is empty")
    deadline = time.monotonic() + _timeout()
    # `-i` alone is enough for the dump; the copy-to-null output (no decoding, -t 0)
    # only gives ffmpeg-python an output to compile and ffmpeg a clean exit.
    cmd = _compile(binary, ffmpeg.output(_input(path)["V:0?"], "-", f="null", c="copy", t=0), loglevel="info")
    _, _, err = runner._run(cmd, deadline)
    info = _parse_probe(err, path)
    claimed = info.pop("duration")  # from the free text: only where to look for the end
    end = None
    if claimed is not None and claimed > _END_WINDOW:
        end = _stream_end(binary, path, info["start"], deadline, seek=claimed - _END_WINDOW)
    if end is None:
        end = _stream_end(binary, path, info["start"], deadline)
    if end is None:
        raise UnsupportedInput("not a video: no video frames could be read")
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
        raise UnsupportedInput(f"not a video: ffmpeg cannot read it ({reason})")
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
        raise UnsupportedInput(f"not a video: the file has no video stream ({', '.join(k.lower() for k in kinds)})")
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
        raise UnsupportedInput("not a video: the video stream has no frame size ffmpeg can read")
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


def _stream_end(binary, path, start, deadline, seek=0.0):
    """End of the last video or audio packet (pts + duration, seconds), from the packets read
    from where an input seek to ``seek`` lands to the end of the file; None if there are none.

    Demuxes without decoding. With ``seek``, None also when the seek landed past every packet.
    """
    options = {"copyts": None}
    if seek > 0:
        options["ss"] = _ts(seek)
    source = _input(path, **options)
    stream = ffmpeg.output(source["V:0"], source["a:0?"], "-", f="framecrc", c="copy")
    _, out, _ = runner._run(_compile(binary, stream), deadline)
    tbs, best = {}, None
    for line in out.decode("ascii", "replace").splitlines():
        if line.startswith("#tb "):
            index, _, fraction = line[4:].partition(":")
            num, _, den = fraction.strip().partition("/")
            try:
                tbs[index.strip()] = int(num) / int(den)
            except (ValueError, ZeroDivisionError):
                pass
            continue
        fields = [f.strip() for f in line.split(",")]
        if line.startswith("#") or len(fields) < 4 or fields[0] not in tbs:
            continue
        times = _packet_times(fields)
        if times is None:
            continue
        try:
            dur = int(fields[3])
        except ValueError:
            continue
        t = (times[1] + max(dur, 0)) * tbs[fields[0]] - start
        if best is None or t > best:
            best = t
    if best is not None and seek > 0 and best < seek:
        return None
    return best
