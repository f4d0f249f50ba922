"""
Features computed in the background for every picture that is written.

Every write path (native writes and uploads, the admin, ``_expand`` frames,
bulk writes, the S3 protocol) goes through ``objects.writing``, which sends
``items_saved`` inside its transaction. The receiver here, in that same
transaction:

- drops the stored features of an item whose uploaded content changed (or
  is no longer a picture), with their search rows, so that neither
  ``?meta=1`` nor a search ever answers features of bytes the item no longer
  holds;
- and, with ``ISTORE_FEATURES`` on, queues the items that need features
  (new pictures, changed uploads, items with none or with features of
  another model version) as jobs of the jobs app (``recognition.tasks``).
  The job is written in the write's transaction: a write that rolls back
  leaves none, one that commits cannot lose it, and any host's worker runs
  it. The write itself never waits for the features.

After ``migrate``, ``queue_stale`` queues the items whose features a
previous model computed. ``refresh_items`` is that job's body: it skips what is already
current (a job may run twice, or after a newer one) and computes the rest
through ``store.refresh``, which stores nothing when the content changed
meanwhile (the newer write scheduled its own job).

A key that embeds a source is computed when it is registered; its origin's
bytes may change later without a write to istore, which
``manage.py compute_features --again`` catches up with.
"""
from django.conf import settings
from django.db import transaction
from django.dispatch import receiver

from objects import keys, signals
from objects.errors import ApiError
from objects.models import Item
from processing import features as processing_features

from . import store, tasks
from .models import Features

BATCH = 500
# Items per job: several workers share a large write (an hour of video frames).
JOB_SIZE = 50


def _chunks(values, size=BATCH):
    values = list(values)
    for start in range(0, len(values), size):
        yield values[start : start + size]


def may_have_features(item, created):
    """Whether an item that was just saved can hold stored features: only an
    older item with content or a source ever had them computed."""
    return not created and (bool(item.content_name) or keys.parse_key(item.key).source is not None)


def is_current(item, row):
    """Whether the stored ``row`` (Features) describes the item's content now."""
    if row.version != processing_features.VERSION:
        return False
    return not item.content_name or row.source_version == store.upload_version(item)


@receiver(signals.items_saved, sender=Item, dispatch_uid="recognition.items_saved")
def items_saved(sender, items, created_ids=(), **kwargs):
    todo = [item.id for item in items if item.id in created_ids and store.wants_features(item)]
    older = [item for item in items if may_have_features(item, item.id in created_ids)]
    stored = {}
    for chunk in _chunks(item.id for item in older):
        stored.update((row.item_id, row) for row in Features.objects.filter(item_id__in=chunk).only(
            "item_id", "version", "source_version"))
    dropped = []
    for item in older:
        row = stored.get(item.id)
        if not store.wants_features(item):
            if row is not None:
                dropped.append(item.id)
        elif row is None or not is_current(item, row):
            todo.append(item.id)
            if row is not None and item.content_name:
                dropped.append(item.id)  # they describe bytes the item no longer holds
    for chunk in _chunks(dropped):
        store.forget(chunk)
    if todo and settings.ISTORE_FEATURES:
        for chunk in _chunks(todo, JOB_SIZE):
            tasks.enqueue_features(chunk)


def queue_stale(sender, using="default", **kwargs):
    """After ``migrate`` (which every upgrade runs), with ``ISTORE_FEATURES`` on:
    queue the items whose stored features came from another model or
    version of the code, so a model change recomputes them by itself."""
    if not settings.ISTORE_FEATURES:
        return
    stale = Features.objects.using(using).exclude(version=processing_features.VERSION)
    item_ids = list(stale.values_list("item_id", flat=True))
    with transaction.atomic(using=using):
        for chunk in _chunks(item_ids, JOB_SIZE):
            tasks.enqueue_features(chunk)


def refresh_items(item_ids, progress=None):
    """Compute and store the features of the items that still lack current
    ones; return ``{"computed": n, "skipped": m, "failed": [(id, error)]}``.
    A failure of a source (5xx) is reported, not raised: the other items go on."""
    done = {"computed": 0, "skipped": 0, "failed": []}
    ids = list(item_ids)
    for index, item_id in enumerate(ids):
        item = Item.objects.filter(id=item_id).first()
        row = Features.objects.filter(item_id=item_id).first()
        if item is None or not store.wants_features(item) or (row is not None and is_current(item, row)):
            done["skipped"] += 1
        else:
            try:
                store.refresh(item)
            except ApiError as error:
                done["failed"].append((item_id, f"{error.code}: {error.detail}"))
            else:
                done["computed"] += 1
        if progress is not None:
            progress(index + 1, len(ids))
    return done
