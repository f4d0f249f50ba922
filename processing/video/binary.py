"""
Which ffmpeg: ``ISTORE_FFMPEG_BINARY`` if set, else the static binary shipped
by the PyPI package imageio-ffmpeg; checked once per binary version with
``-version``, 503 when none works.
"""
import functools
import os
import shutil
import time

from django.conf import settings

from ..errors import TimedOut, ToolUnavailable

from . import runner

_VERSION_TIMEOUT = 10.0  # seconds for `ffmpeg -version`, independent of ISTORE_FFMPEG_TIMEOUT


def ffmpeg_binary():
    """Path of a working ffmpeg: ``ISTORE_FFMPEG_BINARY`` if set, else imageio-ffmpeg's.

    ToolUnavailable (503) when it is missing, not executable or does not
    answer ``-version`` like an ffmpeg.
    """
    configured = getattr(settings, "ISTORE_FFMPEG_BINARY", "") or ""
    if configured:
        path = configured if os.sep in configured else shutil.which(configured)
        if not path:
            raise ToolUnavailable(
                "the ffmpeg binary named by ISTORE_FFMPEG_BINARY is not on PATH; video processing is "
                "unavailable (install it, or leave the setting empty to use imageio-ffmpeg's)"
            )
        source = "ISTORE_FFMPEG_BINARY"
    else:
        try:
            import imageio_ffmpeg

            path = imageio_ffmpeg.get_ffmpeg_exe()
        except Exception as exc:  # noqa: BLE001 - ImportError, RuntimeError("No ffmpeg exe could be found"), ...
            raise ToolUnavailable(
                f"no ffmpeg binary available ({exc}); reinstall imageio-ffmpeg or set ISTORE_FFMPEG_BINARY"
            ) from None
        source = "imageio-ffmpeg"
    try:
        st = os.stat(path)
    except OSError:
        raise ToolUnavailable(f"ffmpeg binary from {source} does not exist; video processing is unavailable") from None
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise ToolUnavailable(f"ffmpeg binary from {source} is not an executable file; video processing is unavailable")
    _check_binary(path, st.st_mtime_ns, st.st_size)
    return path


@functools.lru_cache(maxsize=8)
def _check_binary(path, mtime_ns, size):
    """Run ``ffmpeg -version`` once per binary version (only successes are cached)."""
    try:
        code, out, _ = runner._run([path, "-hide_banner", "-version"], time.monotonic() + _VERSION_TIMEOUT)
    except TimedOut:
        raise ToolUnavailable(
            f"the ffmpeg binary did not answer -version within {_VERSION_TIMEOUT:g} s; video processing is unavailable"
        ) from None
    first = out.decode("utf-8", "replace").strip().splitlines()[:1]
    if code != 0 or not first or not first[0].startswith("ffmpeg version"):
        raise ToolUnavailable(
            "the ffmpeg binary is broken (`ffmpeg -version` did not answer like an ffmpeg); "
            "video processing is unavailable"
        )
    return first[0]
