"""
What an item looks like in the admin: its kind (image, video, frame, ...) and
the istore URLs that show it.

Previews always go through istore's own URLs (``<key>?apply=fit&w=160&h=160``)
so the browser gets cached derivatives from the same pipeline API users get,
never a file path or the source URL itself (which could be private, or slow).
"""
import json
import posixpath
from urllib.parse import quote, urlencode

from .. import keys

# Characters left as they are in a key's URL path. Everything else, "?", "#"
# and "%" above all, is percent-encoded, so the server decodes the exact key.
PATH_SAFE = "/:@!$&'()*+,;=~"
THUMB_SIZE = 160
PREVIEW_SIZE = 640

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif", ".bmp", ".tif", ".tiff"}
VIDEO_EXTENSIONS = {".webm", ".mp4", ".m4v", ".mov", ".mkv", ".avi", ".ogv", ".mpg", ".mpeg"}


def key_url(key):
    """The path that addresses ``key`` on this server (§1: decoded once)."""
    path = quote(key, safe=PATH_SAFE)
    if path.startswith("//"):
        # "//host/..." would be a scheme-relative URL to another host; "/%2F"
        # decodes to the same key.
        path = "/%2F" + path[2:]
    return path


def apply_url(key, **params):
    return f"{key_url(key)}?{urlencode(params)}"


def thumb_url(key, size=THUMB_SIZE):
    return apply_url(key, apply="fit", w=size, h=size)


def meta_url(key):
    return f"{key_url(key)}?meta=1"


def is_frame(item):
    """A frame item registered by ``_expand`` (§8): ``self://video?apply=frame``."""
    parsed = keys.parse_key(item.key)
    if parsed.scheme == "self" and "apply=frame" in (parsed.source or "").partition("?")[2]:
        return True
    metadata = item.metadata if isinstance(item.metadata, dict) else {}
    return isinstance(metadata.get("video"), str) and "timestamp" in metadata


def _extension(item):
    parsed = keys.parse_key(item.key)
    name = parsed.source or item.key
    if parsed.source:
        # A source URL's query and fragment are not part of its file name.
        name = name.split("?", 1)[0].split("#", 1)[0]
    return posixpath.splitext(name.rstrip("/").rsplit("/", 1)[-1])[1].lower()


def kind(item):
    """One of "folder", "frame", "image", "video", "data" (metadata or other bytes)."""
    if keys.is_directory(item.key):
        return "folder"
    if is_frame(item):
        return "frame"
    content_type = (item.content_type or "").lower()
    if content_type.startswith("image/"):
        return "image"
    if content_type.startswith("video/"):
        return "video"
    if item.has_content and content_type:
        return "data"
    extension = _extension(item)
    if extension in IMAGE_EXTENSIONS:
        return "image"
    if extension in VIDEO_EXTENSIONS:
        return "video"
    return "data"


def has_thumbnail(item):
    return kind(item) in ("image", "frame")


def describe(item, item_kind=None):
    """What the key holds, in a few words: content, a source, or metadata only."""
    item_kind = item_kind or kind(item)
    if item.has_content:
        return f"{item.content_type or 'bytes'}, {human_size(item.content_size)}"
    if item_kind == "folder":
        return "folder metadata"
    if item_kind == "frame":
        timestamp = item.metadata.get("timestamp") if isinstance(item.metadata, dict) else None
        return f"video frame at {timestamp}" if timestamp else "video frame"
    scheme = keys.parse_key(item.key).scheme
    if scheme:
        return f"{scheme} source" + (f" ({item_kind})" if item_kind != "data" else "")
    return "metadata only"


def short_json(metadata, limit=120):
    """Metadata as one line of JSON for a table cell, cut at ``limit`` characters."""
    text = json.dumps(metadata, ensure_ascii=False, separators=(", ", ": "))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def human_size(size):
    if size is None:
        return ""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)
