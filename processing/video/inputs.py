"""
What ffmpeg may read: only ``file:/absolute/path`` of an existing regular file,
opened with ``-protocol_whitelist file`` and a ``-format_whitelist`` of plain
video containers, so playlists (HLS, DASH, concat) that would make ffmpeg open
other URLs or files are refused; and ffmpeg's error reasons, told without the
server's file path.
"""
import os
import re

import ffmpeg

from ..errors import BadParameter

# Demuxers ffmpeg may use. Matching is per name part, so "mov" admits the demuxer
# "mov,mp4,m4a,3gp,3g2,mj2". Deliberately absent: hls, dash, concat, image2 and
# the *_pipe image demuxers, tee, anything that opens other files or URLs.
_DEMUXERS = "mov,matroska,avi,flv,mpegts,mpeg,ogg,asf,mxf,nut,ivf,h264,hevc,m4v"


def _input(path, **options):
    """An ffmpeg-python input that can only be the local file ``path``."""
    return ffmpeg.input("file:" + path, protocol_whitelist="file", format_whitelist=_DEMUXERS, **options)


def _local_path(path):
    """Absolute path of an existing regular local file, else BadParameter."""
    try:
        text = os.fsdecode(path)
    except TypeError:
        raise BadParameter("video: expected a local file path") from None
    if not text or "\x00" in text:
        raise BadParameter("video: expected a local file path")
    absolute = os.path.abspath(text)
    if not os.path.isfile(absolute):
        # A URL lands here too: ffmpeg is only ever given local files.
        raise BadParameter("video: the source is not an existing local file (ffmpeg reads only local copies)")
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
