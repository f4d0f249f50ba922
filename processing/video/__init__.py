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
  it opens an input (what imageio-ffmpeg and moviepy do too) for what it
  shows, but measures the duration from the packets (``-c copy -f
  framecrc``, no decoding): the dump is free text that a file's tags can
  write into.
- **Input seeking.** ``-ss`` goes before ``-i``, so ffmpeg jumps to the
  keyframe before the target and decodes only from there: the cost is bounded
  by the keyframe interval, not by ``sec`` (see ``frames`` for the two
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
- **Bounded.** Every decode runs with ``-max_pixels ISTORE_MAX_SOURCE_PIXELS``
  (a stream's later frames may be larger than its first). Every ffmpeg runs in
  its own process group and is killed when
  ``ISTORE_FFMPEG_TIMEOUT`` runs out (504; one deadline per ``probe`` and one
  per ``grab_frame``). One frame goes through the pipe (PPM), and Pillow
  encodes the JPEG so ``quality`` means what it means for images.
- **Errors.** Only ``processing.errors`` classes leave this package: 415 not a
  video, 422 ``sec`` past the end, 503 binary missing or broken, 504 timeout,
  400 bad arguments.

One module per part:

- ``binary``: which ffmpeg, checked once with ``-version``;
- ``runner``: running one ffmpeg under its deadline, in its own process group;
- ``inputs``: what ffmpeg may read (local files, the demuxer whitelist) and
  its error reasons without the server's path;
- ``info``: ``probe``, parsing ffmpeg's stream dump;
- ``index``: the packet index a grab reads first (cached per stretch of video);
- ``framecrc``: reading the packet list of a demux-only run (for ``info`` and ``index``);
- ``frames``: ``grab_frame``, the decode and the JPEG.

Tests spy on every ffmpeg run by patching ``runner._run``, and turn the
non-reference drop off by patching ``frames._fast_decode_supported``: those
are the names looked up at run time (the ones here are only re-exports).
"""
from .binary import ffmpeg_binary
from .frames import DEFAULT_QUALITY, _fast_decode_supported, grab_frame
from .index import _index
from .info import _probe_cached, probe
from .runner import _run

__all__ = ["DEFAULT_QUALITY", "ffmpeg_binary", "grab_frame", "probe"]
