"""
Compute an item's features, store them, and read them back.

``compute(item)`` reads the item's bytes the way a GET does
(``objects.reading.read``: its upload, or its source through the cache) and
runs ``processing.features.extract`` on them. ``save`` writes the
``Features`` row and the item's ``search.models.Vector`` rows of the three
searchable features in one transaction: a row whose value did not change is
kept (and so keeps its place in a built index), a changed one is replaced by
a new row (rows are never updated: their ids are the search app's change
sequence). ``forget`` drops them. ``current(item)`` is the stored row when it was computed by this
version of the features code and model, else None.
"""
import numpy as np
from django.db import IntegrityError, transaction
from django.db.models import Q

from objects import keyrange, keys, reading
from objects.models import Item
from objects.errors import ApiError, translated
from processing import features as processing_features
from processing.features import extract, hashes
from search.models import Vector
from search.vectors import as_unit, pack

from .models import TAG_MIN_SCORE, Features, Tag

EMBEDDING, PHASH, PDQ = "_embedding", "_phash", "_pdq"
DIMS = {EMBEDDING: 1280, PHASH: hashes.PHASH_BITS, PDQ: hashes.PDQ_BITS}
FIELDS = tuple(DIMS)


def wants_features(item):
    """True for an item whose content may be a picture: an upload typed
    ``image/*``, or a key that embeds a source (what it is shows when it is
    read). Directories, metadata-only items and other uploads have none."""
    if item.key.endswith("/"):
        return False
    if item.content_name:
        return (item.content_type or "").startswith("image/")
    return keys.parse_key(item.key).source is not None


def upload_version(item):
    """The version ``objects.reading`` gives an upload's bytes (what ``source_version`` records)."""
    return f"upload:{item.content_etag}"


def candidates(prefix):
    """The items under ``prefix`` that ``wants_features``, as a queryset."""
    uploads = ~Q(content_name="") & Q(content_type__startswith="image/")
    sources = Q(content_name="", key__contains="://")
    return Item.objects.filter(keyrange.under(prefix)).exclude(key__endswith="/").filter(uploads | sources)


def compute(item, video=True):
    """``(extract.Features, source version)`` of the item's content (for a
    video, of its first frame unless ``video`` is false).

    Raises ApiError: 404 when the item has no content or source, the source's
    errors (502, 504, ...), 415 when the bytes are not a picture (or video).
    """
    body = reading.read(item.key, None, 0, item=item)
    try:
        with body.local_file(None) as path, translated():
            return extract.of_file(path, body.content_type or "", video=video), body.version
    finally:
        body.close()


def searchable(found):
    """``{field: packed bytes}`` of the three searchable features."""
    rows = {PHASH: bytes.fromhex(found.phash), PDQ: bytes.fromhex(found.pdq)}
    unit = as_unit(found.embedding.astype(np.float64).tolist())
    if unit is not None:  # an all-zero embedding has no direction: not searchable
        rows[EMBEDDING] = pack(unit)
    return rows


def _version_text(source_version):
    """A source version as the text column keeps it: opaque, NUL-free (PostgreSQL's
    text refuses NUL; a file source's version has one), at most 300 characters."""
    return source_version.replace("\0", "\\0")[:300]


def save(item, found, source_version):
    """Store ``found`` (extract.Features) for ``item``; False when the item is gone."""
    values = {
        "version": processing_features.VERSION,
        "source_version": _version_text(source_version),
        "error": "",
        "phash": bytes.fromhex(found.phash),
        "phash_mirror": bytes.fromhex(found.phash_mirror),
        "pdq": bytes.fromhex(found.pdq),
        "pdq_mirror": bytes.fromhex(found.pdq_mirror),
        "pdq_quality": found.pdq_quality,
        "labels": found.labels,
    }
    return _store(item, values, searchable(found))


def save_failure(item, error, source_version=""):
    """Record why ``item`` has no features (so it is not tried again until it changes)."""
    values = {"version": processing_features.VERSION, "source_version": _version_text(source_version), "error": error,
              "phash": None, "phash_mirror": None, "pdq": None, "pdq_mirror": None, "pdq_quality": None,
              "labels": []}
    return _store(item, values, {})


def _store(item, values, rows):
    try:
        with transaction.atomic():
            # Computed from bytes the item still holds? A write that replaced
            # them meanwhile scheduled their own computation.
            still = Item.objects.select_for_update().filter(id=item.id, content_name=item.content_name)
            if not still.exists():
                return False
            Features.objects.update_or_create(item_id=item.id, defaults=values)
            Tag.objects.filter(item_id=item.id).delete()
            Tag.objects.bulk_create(tags_of(item, values["labels"]))
            existing = dict(
                (field, (row_id, bytes(blob)))
                for row_id, field, blob in Vector.objects.filter(item_id=item.id, field__in=FIELDS).values_list(
                    "id", "field", "vector"
                )
            )
            stale = [row_id for field, (row_id, blob) in existing.items() if rows.get(field) != blob]
            if stale:
                Vector.objects.filter(id__in=stale)._raw_delete(Vector.objects.db)
            Vector.objects.bulk_create([
                Vector(item_id=item.id, field=field, dim=DIMS[field], key=item.key,
                       key_prefix=item.key_prefix, vector=blob)
                for field, blob in rows.items()
                if field not in existing or existing[field][1] != blob
            ])
    except IntegrityError:  # the item was deleted meanwhile
        return False
    return True


def refresh(item):
    """Compute and store the features of the picture ``item``; the stored
    Features row (None if the item is gone). A failure that is the content's
    (not a picture, no content) is stored as such; a source or server
    failure (5xx) is raised, to be tried again later."""
    try:
        found, version = compute(item, video=False)
    except ApiError as error:
        if error.status >= 500:
            raise  # a source or server failure: worth trying again later
        version = upload_version(item) if item.content_name else ""
        saved = save_failure(item, f"{error.code}: {error.detail}", version)
    else:
        saved = save(item, found, version)
    return Features.objects.filter(item_id=item.id).first() if saved else None


def tags_of(item, labels):
    """The Tag rows of ``labels`` (``[{"label", "score"}]``): those scoring at least TAG_MIN_SCORE."""
    return [Tag(item_id=item.id, label=label["label"].lower(), score=label["score"])
            for label in labels if label["score"] >= TAG_MIN_SCORE]


def forget(item_ids, vectors=True):
    """Delete the stored features of the items, their tags and (unless the
    search app does it, as when the items are deleted) their search rows."""
    Tag.objects.filter(item_id__in=item_ids)._raw_delete(Tag.objects.db)
    Features.objects.filter(item_id__in=item_ids)._raw_delete(Features.objects.db)
    if vectors:
        Vector.objects.filter(item_id__in=item_ids, field__in=FIELDS)._raw_delete(Vector.objects.db)


def current(item_id):
    """The stored Features of the item if this version of the code computed them, else None."""
    return Features.objects.filter(item_id=item_id, version=processing_features.VERSION).first()
