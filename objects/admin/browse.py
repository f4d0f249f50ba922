"""
The queries behind the admin's folder browser and find box.

Each costs what the page shows, not what the store holds:

- a folder page is ``objects.listing.page`` with ``delimiter=/`` (the keyset
  skip-scan over ``(key_prefix, key)``), one page at a time, never OFFSET;
- counts per folder stop at ``COUNT_CAP`` ("1000+"): a bounded walk of the
  folder's key range (``objects.keyrange``), never COUNT(*) over the table or
  the subtree;
- a key-prefix find is a walk of the same index (no ``LIKE '%...%'``);
- a metadata find (``name=my video``) walks the folder's key range in key
  order and stops at one page of matches (see docs/admin.md for the index
  that makes sparse matches fast on PostgreSQL).
"""
import json
from dataclasses import dataclass

from django.db import connection
from django.db.models import Q
from django.db.models.fields.json import KeyTransform

from .. import expand, keyrange, keys, listing
from ..models import Item, hash_key
from . import extensions, previews

PAGE_SIZE = 100
COUNT_CAP = 1000
FRAME_LIMIT = 240


class FindError(ValueError):
    """The find box holds something that is neither a key prefix nor field=value."""


@dataclass
class Count:
    """How many items a folder holds, exact below the cap."""

    value: int
    capped: bool

    def __str__(self):
        return f"{self.value}+" if self.capped else str(self.value)


@dataclass
class Row:
    """One line of a folder or find page: a folded folder or an item."""

    key: str
    name: str
    item: Item | None = None
    count: Count | None = None
    kind: str = "folder"
    thumb: str = ""
    summary: str = ""  # metadata on one line
    detail: str = ""  # what the key holds: content type and size, a source, ...
    url: str = ""  # the admin page it links to, set by the view

    @property
    def is_folder(self):
        return self.item is None


def parent_of(prefix):
    """The folder above ``prefix`` ("/a/b/" -> "/a/"); None for the root."""
    if prefix == "/":
        return None
    head = prefix[:-1]
    return head[: head.rfind("/") + 1]


def breadcrumbs(prefix):
    """``[(label, folder)]`` from the root down to ``prefix``."""
    crumbs = [("/", "/")]
    start = 1
    while start < len(prefix):
        end = prefix.find("/", start)
        if end < 0:
            break
        crumbs.append((prefix[start:end] + "/", prefix[: end + 1]))
        start = end + 1
    return crumbs


def count_under(prefix, cap=None):
    """How many items are under ``prefix``, reading at most ``cap`` + 1 of them."""
    cap = COUNT_CAP if cap is None else cap
    value = keyrange.count(Item.objects.filter(keyrange.under(prefix)), cap + 1)
    return Count(min(value, cap), value > cap)


def exact_count(prefix):
    """The exact number of items under ``prefix``: for a delete confirmation only."""
    return Item.objects.filter(keyrange.under(prefix)).count()


def item_row(item, prefix):
    name = item.key[len(prefix):] if item.key.startswith(prefix) else item.key
    kind = previews.kind(item)
    thumb = previews.thumb_url(item.key) if kind in ("image", "frame") else ""
    return Row(key=item.key, name=name or item.key, item=item, kind=kind, thumb=thumb,
               summary=previews.short_json(item.metadata), detail=previews.describe(item, kind))


def folder_page(prefix, after=None, size=None):
    """``(rows, next_after)`` for one page of the folder ``prefix``."""
    size = size or PAGE_SIZE
    entries, next_after = listing.page(prefix, size, after, delimiter="/")
    rows = []
    for entry in entries:
        if isinstance(entry, dict):
            child = entry["_prefix"]
            rows.append(Row(key=child, name=child[len(prefix):], count=count_under(child)))
        else:
            rows.append(item_row(entry, prefix))
    return rows, next_after


def add_posters(rows):
    """Give each video row the thumbnail of its first frame, when it has frames."""
    for row in rows:
        if row.item is not None and row.kind == "video":
            frames, _ = frames_of(row.item, limit=1)
            if frames:
                row.thumb = previews.thumb_url(frames[0].key)


def parse_find(text, prefix):
    """Read the find box: ``("prefix", key_prefix)`` or ``("field", name, value)``.

    ``/photos/ca`` is an absolute key prefix, ``ca`` one relative to the
    folder, ``name=my video`` a metadata field (top level) and its value.
    """
    text = text.strip()
    if not text:
        raise FindError("Type a key prefix (such as cat or /photos/ca) "
                        "or field=value (such as name=my video).")
    if text.startswith("/"):
        return ("prefix", keys.validate_key(text))
    name, equals, value = text.partition("=")
    if equals:
        name = name.strip()
        if not name:
            raise FindError("Name the metadata field before '=', as in name=my video.")
        return ("field", name, value.strip())
    return ("prefix", keys.validate_key(prefix + text))


def field_values(value):
    """The JSON values that ``field=value`` matches: the text, and what it parses to.

    ``n=5`` finds 5 and "5"; ``done=true`` finds true and "true"; ``name="x"``
    finds "x"; anything that does not parse is matched as text.
    """
    values = [value]
    try:
        parsed = json.loads(value)
    except ValueError:
        return values
    if not isinstance(parsed, (dict, list)) and parsed != value:
        values.append(parsed)
    return values


def with_field(query, name, value):
    """Narrow ``query`` to items whose top-level metadata field ``name`` is ``value``."""
    condition = Q()
    if connection.vendor == "postgresql":
        # jsonb containment (@>): a GIN index on metadata serves it when the
        # deployment has one (docs/admin.md); otherwise a scan in key order
        # that stops at the first page of matches.
        for candidate in field_values(value):
            condition |= Q(metadata__contains={name: candidate})
        return query.filter(condition)
    for candidate in field_values(value):
        condition |= Q(_field=candidate)
    return query.alias(_field=KeyTransform(name, "metadata")).filter(condition)


def find(text, prefix, after=None, size=None):
    """``(rows, next_after, description)`` for the find box within ``prefix``."""
    size = size or PAGE_SIZE
    parsed = parse_find(text, prefix)
    if parsed[0] == "prefix":
        query = Item.objects.filter(keyrange.under(parsed[1], after))
        description = f"keys starting with {parsed[1]}"
    else:
        _, name, value = parsed
        query = Item.objects.filter(keyrange.under(prefix, after))
        if name in extensions.FIND_FIELDS:
            query = extensions.FIND_FIELDS[name](query, value)
            description = f"items under {prefix} whose {name} has {value!r}"
        else:
            query = with_field(query, name, value)
            description = f"items under {prefix} whose metadata field {name!r} is {value!r}"
    # A metadata find is left to the planner: where a GIN index on metadata
    # exists (docs/admin.md), sparse matches are found through it.
    items = keyrange.fetch(query, size + 1, walk_index=parsed[0] == "prefix")
    next_after = items[size - 1].key if len(items) > size else None
    return [item_row(item, prefix) for item in items[:size]], next_after, description


def frame_prefix(item):
    """The key prefix ``_expand`` gives the frames of ``item`` in its own folder (§8)."""
    return expand.frames_prefix(item.dir, item.key)


def frames_of(item, limit=None):
    """``(frames, more)``: the frame items ``_expand`` registered for the video ``item``.

    They sort in time order by key (zero-padded seconds); a range scan finds
    them, and ``metadata.video`` confirms each belongs to this video.
    """
    limit = limit or FRAME_LIMIT
    if keys.is_directory(item.key):
        return [], False
    found = keyrange.fetch(Item.objects.filter(keyrange.under(frame_prefix(item))), limit + 1)
    frames = [frame for frame in found if frame.metadata.get("video") == item.key]
    return frames[:limit], len(found) > limit


def video_of(frame):
    """The registered item a frame was cut from, or None."""
    video = frame.metadata.get("video") if isinstance(frame.metadata, dict) else None
    if not isinstance(video, str):
        return None
    return Item.objects.filter(key_hash=hash_key(video)).first()
