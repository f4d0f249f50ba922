"""
Running one ffmpeg: in its own process group, killed with the whole group when
its deadline runs out (``ISTORE_FFMPEG_TIMEOUT``, 504), from a command line
compiled by ffmpeg-python.

Every ffmpeg of this package runs through ``_run``. The other modules call it as
``runner._run``, looked up at each call, so a test can watch every run by
patching that one name here.
"""
import os
import signal
import subprocess
import time

import ffmpeg
from django.conf import settings

from ..errors import TimedOut, ToolUnavailable

_GLOBAL = ["-hide_banner", "-nostdin", "-nostats"]


def _timeout():
    return float(getattr(settings, "ISTORE_FFMPEG_TIMEOUT", 30.0))


def _run(args, deadline):
    """Run one ffmpeg; (returncode, stdout, stderr text). Killed (504) at ``deadline`` (monotonic)."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimedOut(_timeout_detail())
    try:
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, so a kill takes any children too
        )
    except OSError as exc:
        raise ToolUnavailable(f"the ffmpeg binary cannot run ({exc.strerror or exc})") from None
    try:
        out, err = proc.communicate(timeout=remaining)
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise TimedOut(_timeout_detail()) from None
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


def _ts(seconds):
    return f"{max(seconds, 0.0):.6f}"
