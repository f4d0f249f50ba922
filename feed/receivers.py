"""
Record every write in the change log, inside the write's own transaction.

``objects.writing`` is the one place the namespace is written (the API, the
S3 protocol, uploads, ``_bulk``, ``_expand``, the admin and the import
commands all call it), and it sends ``items_saved`` and ``items_deleting``
inside its transaction. So a change is committed with its write or not at
all, and no write path can forget it. The rows are numbered after commit
(``feed.sequencing``).
"""
import json

from django.db import connection, transaction
from django.dispatch import receiver

from objects import signals
from objects.batchrows import rows_from_json
from objects.models import Item

from . import pruning
from .models import Change

ROWS_PER_STATEMENT = 5000  # 3 parameters a row: within SQLite's 32,766 and PostgreSQL's 65,535


@receiver(signals.items_saved, sender=Item, dispatch_uid="feed.items_saved")
def items_saved(sender, items, created_ids=(), **kwargs):
    record((item.key, Change.CREATE if item.id in created_ids else Change.UPDATE, item.id) for item in items)


@receiver(signals.items_deleting, sender=Item, dispatch_uid="feed.items_deleting")
def items_deleting(sender, ids, keys, **kwargs):
    record((key, Change.DELETE, item_id) for key, item_id in zip(keys, ids))


def record(changes):
    """INSERT ``(key, op, item_id)`` rows, unnumbered, a few hundred a statement."""
    changes = list(changes)
    if not changes:
        return
    quote = connection.ops.quote_name
    head = f"INSERT INTO {quote(Change._meta.db_table)} ({quote('key')}, {quote('op')}, {quote('item_id')}) VALUES "
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The rows as one JSON text: psycopg splits and quotes a long VALUES list in Python, slower
            # than the insert (objects.models.rows_from_json).
            fields = [Change._meta.get_field(name) for name in ("key", "op", "item_id")]
            cursor.execute(f"INSERT INTO {quote(Change._meta.db_table)} ({quote('key')}, {quote('op')}, "
                           f"{quote('item_id')}) {rows_from_json(connection, fields)}", [json.dumps(changes)])
            changes = []
        for start in range(0, len(changes), ROWS_PER_STATEMENT):
            chunk = changes[start : start + ROWS_PER_STATEMENT]
            cursor.execute(head + ", ".join(["(%s, %s, %s)"] * len(chunk)), [v for row in chunk for v in row])
    transaction.on_commit(pruning.prune_if_due)
