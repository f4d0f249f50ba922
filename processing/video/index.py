"""
The frame index: step 1 of a grab (see ``frames``), usually answered from memory.

Demux only, no decoding (~20-40 ms; cached per stretch of video): the video
packets from where an input seek to ``sec`` lands up to ``sec + _INDEX_AHEAD``,
with their timestamps (-copyts), keyframe flags and, for H.264, which frames
are references (the stream mapped twice, the copy through
``filter_units=discard=nonref``: the packets that survive are the references).
It names the target exactly: the last frame with pts <= sec, and the keyframe
to decode it from.
"""
import collections
import math
import threading
import typing

import ffmpeg

from ..errors import UnsupportedInput

from . import runner
from .framecrc import _packet_times
from .inputs import _ffmpeg_reason, _input
from .runner import _compile, _ts

_INDEX_AHEAD = 20.0  # seconds indexed past `sec`; later grabs in that stretch reuse the index
_REORDER_MARGIN = 1.0  # seconds: frames up to (end of index - margin) are surely all listed
_TIME_SLACK = 1e-6  # seconds: float noise of pts * tb - start (a frame at exactly sec counts)
_INDEX_VIDEOS = 16  # videos whose index is kept (LRU) ...
_INDEX_SEGMENTS = 8  # ... and stretches per video: a few MB at most
_INDEX_MAX_PACKETS = 20000  # a longer stretch (a far step back) is used once, not kept
_index_lock = threading.Lock()
_index = collections.OrderedDict()  # (path, mtime_ns, size) -> [_Segment, ...] most recent last


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
    code, out, err = runner._run(_compile(binary, stream), deadline)
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
        times = _packet_times(fields)
        if times is None:
            continue
        dts, pts = times
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
                raise UnsupportedInput(f"this video cannot be read ({reason})")
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

