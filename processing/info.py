"""
``?apply=info``: JSON facts about a source. Pillow's for an image (from the
header: nothing is decoded; an animation's frames and duration from its
blocks, ``processing.animation.scan``), ffprobe's (``processing.video``) for a
video, or for anything Pillow cannot read that ffprobe can.
"""
from processing import animation, imaging

from .errors import ToolUnavailable, UnsupportedInput


def video():
    """``processing.video``, imported lazily: it pulls in ffmpeg tooling that image-only
    deployments and the image tests do not need."""
    try:
        from processing import video as module
    except ImportError as err:
        raise ToolUnavailable(f"video support is not available on this server: {err}") from None
    return module


def facts(path, content_type):
    """The facts ``info`` answers about the source in the local file ``path``, as a dict."""
    if content_type.lower().startswith("video/"):
        return video().probe(path)
    try:
        im = imaging.open_image(path)
    except UnsupportedInput as not_image:
        try:
            return video().probe(path)
        except UnsupportedInput:
            raise UnsupportedInput(f"{not_image.detail}; nor is it a video") from None
        except ToolUnavailable:  # no ffmpeg here: what we know is that it is not an image
            raise not_image from None
    with im:
        width, height = imaging.oriented_size(im, imaging.orientation(im))
        found = {"format": imaging.source_format(im).lower(), "width": width, "height": height, "mode": im.mode}
        if getattr(im, "is_animated", False):
            timeline = animation.scan(path, im.format)
            found.update(frames=timeline.frames, duration=timeline.duration)
        return found
