"""
Keep the Features table consistent with the items on every delete.

``objects.writing`` deletes a directory's items with a raw queryset delete
(no cascade), after sending ``items_deleting`` inside the transaction; the
features and tags of those items go here, one DELETE per batch each. (The search app's
receiver removes their Vector rows, built-in fields included.)
"""
from django.dispatch import receiver

from objects import signals
from objects.models import Item

from . import store

BATCH = 500


@receiver(signals.items_deleting, sender=Item, dispatch_uid="recognition.items_deleting")
def items_deleting(sender, ids, **kwargs):
    ids = list(ids)
    for start in range(0, len(ids), BATCH):
        store.forget(ids[start : start + BATCH], vectors=False)
