"""
Signals sent by ``objects.writing`` so that other parts (vector side table,
caches) stay current without the write path importing them.

All are sent with ``sender=Item``. The ``*_saved`` and ``*_deleting`` signals
are sent inside the write transaction, so a receiver's own database writes
commit or roll back with it; the ``*_forgotten`` ones are sent after commit.
Bulk writes send them too (Django's ``post_save`` is not sent by bulk_create).
"""
from django.dispatch import Signal

items_saved = Signal()  # items=[Item, ...], created_ids={ids of items that are new}
items_deleting = Signal()  # ids=[int, ...], keys=[str, ...] (the same items' keys)
key_forgotten = Signal()  # key=str
tree_forgotten = Signal()  # prefix=str
content_forgotten = Signal()  # name=str
