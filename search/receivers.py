"""
Keep the packed vectors (search.models.Vector) current on every write.

``objects.writing`` sends ``items_saved`` and ``items_deleting`` inside the
write transaction, bulk writes included, so these receivers' writes commit or
roll back with the item's. A vector that did not change keeps its row (and its
place in any built index); a changed one gets a new row, a removed one loses
it. Deleting a tree deletes the rows here by item id before
``objects.writing`` deletes the items with a raw queryset delete (no
cascade), one DELETE per batch.
"""
from django.db import connection
from django.dispatch import receiver

from objects import keys as object_keys
from objects import signals
from objects.models import Item

from . import ann, spaces
from .models import Vector, VectorIndex
from .vectors import extract, pack

BATCH = 500


def _chunks(values, size=BATCH):
    values = list(values)
    for start in range(0, len(values), size):
        yield values[start : start + size]


@receiver(signals.items_saved, sender=Item, dispatch_uid="search.items_saved")
def items_saved(sender, items, created_ids=(), **kwargs):
    wanted = {}
    for item in items:
        for field, unit in extract(item.metadata).items():
            wanted[(item.id, field)] = (item, len(unit), pack(unit))
    existing = {}
    # A new item has no rows yet: only older ones need looking up. Rows of
    # built-in fields belong to the app that computes them.
    for chunk in _chunks(item.id for item in items if item.id not in created_ids):
        for row_id, item_id, field, blob in _vector_rows(chunk, skip_fields=list(spaces.BUILTIN)):
            existing[(item_id, field)] = (row_id, bytes(blob))
    stale = [
        row_id
        for slot, (row_id, blob) in existing.items()
        if slot not in wanted or wanted[slot][2] != blob
    ]
    fresh = [
        Vector(item_id=item_id, field=field, dim=dim, key=item.key, key_prefix=item.key_prefix,
               vector=blob)
        for (item_id, field), (item, dim, blob) in wanted.items()
        if (item_id, field) not in existing or existing[(item_id, field)][1] != blob
    ]
    for chunk in _chunks(stale):
        Vector.objects.filter(id__in=chunk)._raw_delete(Vector.objects.db)
    if fresh:
        Vector.objects.bulk_create(fresh, batch_size=BATCH)


def _vector_rows(item_ids, skip_fields):
    """``(id, item_id, field, vector)`` of the rows of these items but those of ``skip_fields``: a
    statement written here, since every merge runs it (under SQLite's write lock), and compiling
    the queryset took longer than the database's lookup."""
    quote = connection.ops.quote_name
    columns = ", ".join(quote(name) for name in ("id", "item_id", "field", "vector"))
    where = f"{quote('item_id')} IN ({', '.join(['%s'] * len(item_ids))})"
    if skip_fields:
        where += f" AND {quote('field')} NOT IN ({', '.join(['%s'] * len(skip_fields))})"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM {quote(Vector._meta.db_table)} WHERE {where}",
                       [*item_ids, *skip_fields])
        return cursor.fetchall()


@receiver(signals.items_deleting, sender=Item, dispatch_uid="search.items_deleting")
def items_deleting(sender, ids, **kwargs):
    for chunk in _chunks(ids):
        Vector.objects.filter(item_id__in=chunk)._raw_delete(Vector.objects.db)


@receiver(signals.tree_forgotten, sender=Item, dispatch_uid="search.tree_forgotten")
def tree_forgotten(sender, prefix, **kwargs):
    """A deleted directory takes the indexes built for it and below with it."""
    upper = object_keys.prefix_upper_bound(prefix)
    for record in VectorIndex.objects.filter(dir__gte=prefix, dir__lt=upper):
        ann.drop(record)
