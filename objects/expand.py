"""
``POST {dir}/_expand``: slice a video into one item per second (§8).

The video is read as a GET of its path would read it (uploaded content, or an
embedded source, registered or not, through the guarded resolvers), probed
with the bundled ffmpeg for its duration (the end of its real streams, never
what its header or tags say: ``processing.video.probe``), in an ``ffmpeg``
capacity slot, and one frame item per whole second
is registered in one bulk transaction. Each frame key is
``{dir}self://{video key, % → %25 and ? → %3F}?apply=frame&sec={i}`` with
``i`` zero-padded to the width of the last second, so that key order is time
order; fetching a frame key reads the frame through ``self://``.
"""
import math
import numbers

from . import cache, capacity, keys, reading, writing
from .errors import BadRequest, translated
from .verbs import verb

MAX_FRAMES = 1_000_000


def frames_prefix(directory, video):
    """What every frame key of ``video`` under ``directory`` starts with: the
    seconds follow, zero-padded to the width of the last one."""
    return f"{directory}self://{keys.escape_for_self(video)}?apply=frame&sec="


def frame_key(directory, video, second, width):
    return f"{frames_prefix(directory, video)}{second:0{width}d}"


def timestamp(second):
    hours, rest = divmod(second, 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def parse_request(body):
    """``(video key, every)`` from the verb's JSON body, or BadRequest."""
    video = body.get("video")
    if not isinstance(video, str) or not video:
        raise BadRequest('The body needs "video": the path of a video, e.g. {"video": "/path/to/video.webm"}.',
                         code="missing_video")
    if not video.startswith("/"):
        raise BadRequest(f'"video" must be a path starting with "/", not {video!r}.', code="invalid_video")
    keys.validate_key(video)
    every = body.get("every", 1)
    if (isinstance(every, bool) or not isinstance(every, numbers.Real) or not math.isfinite(every)
            or every != int(every) or every < 1):
        raise BadRequest(f'"every" must be a whole number of seconds, 1 or more, not {every!r}.',
                         code="invalid_every")
    return video, int(every)


def video_duration(video):
    """The duration in seconds of the video behind ``video`` (a key or source path)."""
    from processing import video as ffmpeg

    body = reading.read(video)
    try:
        # probe answers 415 for anything that is not a video container.
        with body.local_file(cache.get_cache().tmp_dir) as path, capacity.slot("ffmpeg"), translated():
            return ffmpeg.probe(path)["duration"]
    finally:
        body.close()


def frame_entries(directory, video, duration, every=1):
    """``[(key, metadata)]`` for every whole second ``i`` (step ``every``) with i < duration."""
    count = math.ceil(duration)
    seconds = range(0, count, every)
    if len(seconds) > MAX_FRAMES:
        raise BadRequest(f"The video would give {len(seconds)} frames; at most {MAX_FRAMES} per call: "
                         'raise "every".', code="too_many_frames")
    width = len(str(seconds[-1])) if seconds else 1
    return [
        (frame_key(directory, video, second, width), {"timestamp": timestamp(second), "video": video})
        for second in seconds
    ]


def expand(directory, video, every=1, progress=None):
    """Register the frame items of ``video`` under ``directory``; ``(created, updated)``.
    ``progress(done, total)`` counts frames written, in the one transaction."""
    entries = frame_entries(directory, video, video_duration(video), every)
    if progress is not None:
        progress(0, len(entries))
    return writing.upsert_many(entries, progress=progress)


# Frame items written per second (benchmarks/README.md): how long an expand
# will take, to decide whether it must run as a job (jobs.verbs).
FRAMES_RATE = 1000


def plan_expand(body, directory):
    """Check an _expand body and its video (the verb's 4xx); the seconds writing its frames will take."""
    video, every = parse_request(body)
    return math.ceil(video_duration(video) / every) / FRAMES_RATE


@verb("_expand", plan=plan_expand)
def expand_verb(body, directory, progress=None):
    video, every = parse_request(body)
    created, updated = expand(directory, video, every, progress)
    return 201, {"created": created, "updated": updated}
