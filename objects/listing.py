"""
Listing a directory (§4): every item under a prefix in bytewise key order.

The rows come from ``objects.keyrange``, keyset-based on ``(key_prefix, key)``
(see models.Item), one indexed range query per batch, so memory and cost
follow the size of the answer, never the size of the store. ``delimiter=/``
folds deeper keys into ``{"_prefix": ...}`` entries with a skip-scan: after
emitting a prefix the next query starts past everything under it, so a
directory with few children over millions of deeper keys costs one query per
child.
"""
from urllib.parse import urlencode, quote

from . import jsontext, keyrange, keys
from .errors import BadRequest
from .models import RENDERED_FIELDS, Item
from .models import render as render_row

MAX_LIMIT = 10000


class InvalidListing(BadRequest):
    code = "invalid_listing"


def iter_items(prefix, after=None, batch_size=None, rendered=False, fields=None):
    """Yield every item under ``prefix`` (after ``after`` if given) in key order.

    With ``rendered`` the items come as their API rendering, built from the
    few columns it needs rather than from model instances (the bulk of a
    long listing's time otherwise); with ``fields``, as dicts of those
    columns and ``key`` (the S3 listings).
    """
    rows = Item.objects.filter(keyrange.under(prefix, after))
    if rendered:
        return map(render_row, keyrange.walk(rows.values(*RENDERED_FIELDS), batch_size))
    if fields:
        return keyrange.walk(rows.values("key", *fields), batch_size)
    return keyrange.walk(rows, batch_size)


def directory_fold(prefix):
    """The native folding of ``delimiter=/`` (§4): an item whose directory is
    ``prefix``, or with no "/" past it, is a direct child; a deeper key folds
    into the child directory it lies in."""

    def fold(key, directory):
        rest = key[len(prefix):]
        if directory == prefix or "/" not in rest:
            return None
        return prefix + rest.split("/", 1)[0] + "/"

    return fold


def delimiter_fold(prefix, delimiter):
    """S3's folding (CommonPrefixes): a key with ``delimiter`` past ``prefix``
    folds into the prefix up to and including its first occurrence."""

    def fold(key, directory=None):
        at = key.find(delimiter, len(prefix))
        return None if at < 0 else key[: at + len(delimiter)]

    return fold


def iter_entries(prefix, after=None, batch_size=None, *, fold=None, fields=None):
    """Yield items and folded ``{"_prefix": ...}`` dicts directly under ``prefix``.

    ``fold(key, dir)`` says which prefix a key folds into (None: it is an
    entry itself): ``directory_fold`` by default, ``delimiter_fold`` for S3.
    With ``fields`` items come as dicts of those columns (and ``key``, ``dir``).
    """
    batch_size = batch_size or keyrange.BATCH
    fold = fold or directory_fold(prefix)
    upper = keys.prefix_upper_bound(prefix)
    lower, inclusive = prefix, True
    if after is not None and after >= prefix:
        if after.startswith(prefix) and fold(after, keys.dir_of(after)) == after:
            # `after` names a folded prefix: resume past everything under it.
            lower, inclusive = keys.prefix_upper_bound(after), True
        else:
            lower, inclusive = after, False
    columns = fields and ("key", "dir", *fields)
    # After a fold the next rows are often deeper keys of the next child, so
    # the skip-scan reads a couple of rows first and grows the batch while it
    # keeps finding direct children.
    size = batch_size
    while True:
        rows = Item.objects.filter(keyrange.span(lower, upper, inclusive=inclusive))
        batch = keyrange.fetch(rows.values(*columns) if columns else rows, size)
        if not batch:
            return
        for item in batch:
            key, directory = (item["key"], item["dir"]) if columns else (item.key, item.dir)
            child = fold(key, directory)
            if child is None:
                yield item
                lower, inclusive = key, False
                continue
            yield {"_prefix": child}
            lower, inclusive = keys.prefix_upper_bound(child), True
            size = 2
            break
        else:
            if len(batch) < size:
                return
            size = min(size * 4, batch_size)


def entry_key(entry):
    return entry["_prefix"] if isinstance(entry, dict) else entry.key


def render(entry):
    return entry if isinstance(entry, dict) else entry.as_dict()


def parse_params(query):
    """Validate ``limit``, ``after`` and ``delimiter`` from a query mapping."""
    limit = query.get("limit")
    if limit is not None:
        try:
            limit = int(limit)
        except ValueError:
            raise InvalidListing(f"limit must be an integer from 1 to {MAX_LIMIT}, not {limit!r}.") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidListing(f"limit must be from 1 to {MAX_LIMIT}, not {limit}.")
    after = query.get("after")
    if after is not None:
        if not after.startswith("/"):
            raise InvalidListing("after must be a key (starting with '/') returned by an earlier page.")
        keys.validate_key(after)
    delimiter = query.get("delimiter")
    if delimiter not in (None, "/"):
        raise InvalidListing(f"Only delimiter=/ is supported, not {delimiter!r}.")
    return limit, after, delimiter


def entries(prefix, after=None, delimiter=None, batch_size=None):
    iterate = iter_entries if delimiter else iter_items
    return iterate(prefix, after, batch_size)


def page(prefix, limit, after=None, delimiter=None):
    """Return ``(entries, next_after)``: at most ``limit`` entries, and the
    ``after`` of the next page when more remain (else None)."""
    result = []
    # One row more than the page tells whether a next page exists.
    for entry in entries(prefix, after, delimiter, batch_size=limit + 1):
        if len(result) == limit:
            return result, entry_key(result[-1])
        result.append(entry)
    return result, None


def next_link(path, limit, after, delimiter):
    params = {"limit": limit, "after": after}
    if delimiter:
        params["delimiter"] = delimiter
    return f'<{quote(path, safe="/")}?{urlencode(params)}>; rel="next"'


def stream(prefix, delimiter=None):
    """The whole listing as JSON text chunks, one batch of entries at a time."""
    yield "["
    first = True
    chunk = []
    rendered = entries(prefix, None, delimiter) if delimiter else iter_items(prefix, rendered=True)
    for entry in rendered:
        chunk.append(jsontext.dumps(render(entry)))
        if len(chunk) >= 200:
            yield ("" if first else ",") + ",".join(chunk)
            first = False
            chunk = []
    if chunk:
        yield ("" if first else ",") + ",".join(chunk)
    yield "]"
