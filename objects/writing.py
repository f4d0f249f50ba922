"""
Writes to the namespace: create, merge, replace, delete, delete a tree, and
bulk upserts.

These functions own transactions and locking; the views, the admin and the
management commands all call them. On PostgreSQL a row lock serialises writers
of one key and a unique violation inside a savepoint turns a racing creator
into an updater; on SQLite every write transaction is IMMEDIATE (settings), so
writers are serialised by the database itself. Either way, N concurrent
creators of one key give exactly one ``created`` and no lost field.
"""
import copy
import json

import json_merge_patch
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import content as content_store
from . import jsontext, keyrange, keys, signals, sources
from .errors import BadRequest, NotFound
from .models import Item, hash_key


class InvalidMetadata(BadRequest):
    code = "invalid_metadata"


def check_metadata(metadata):
    """Raise InvalidMetadata unless ``metadata`` is a JSON object within the size limit."""
    if not isinstance(metadata, dict):
        raise InvalidMetadata(
            f"metadata must be a JSON object, not {type(metadata).__name__}: "
            'send metadata=\'{"name": "value"}\'.'
        )
    try:
        jsontext.check(metadata, "metadata")
    except jsontext.InvalidJson as exc:
        raise InvalidMetadata(exc.detail) from None
    size = len(json.dumps(metadata, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    if size > settings.ISTORE_MAX_METADATA_BYTES:
        raise InvalidMetadata(
            f"metadata is {size} bytes; ISTORE_MAX_METADATA_BYTES allows "
            f"{settings.ISTORE_MAX_METADATA_BYTES}.",
            code="metadata_too_large",
        )
    return metadata


def merge_patch(target, patch):
    """RFC 7396 JSON Merge Patch of ``patch`` onto ``target`` (a new object)."""
    return json_merge_patch.merge(copy.deepcopy(target), copy.deepcopy(patch))


def _locked_item(key):
    return Item.objects.by_key(key, for_update=True)


def _updated(item, metadata, replace, stored, owner=None):
    """Apply a write to ``item`` in memory; return the blob name it replaced."""
    if owner is not None:
        item.owner = owner
    if replace:
        new_metadata = metadata if metadata is not None else {}
    elif metadata is not None:
        new_metadata = merge_patch(item.metadata, metadata)
    else:
        new_metadata = item.metadata
    check_metadata(new_metadata)
    item.metadata = new_metadata
    if stored is None:
        return None
    old_content = item.content_name
    item.content_name = stored.name
    item.content_size = stored.size
    item.content_type = stored.content_type
    item.content_etag = stored.etag
    item.content_md5 = stored.md5
    item.content_headers = stored.headers
    item.content_checksums = stored.checksums
    return old_content


def _create(key, metadata, replace, stored, owner):
    """Insert a new item, or return None when another writer created the key first."""
    item = Item(metadata={})
    item.set_key(key)
    _updated(item, metadata, replace, stored, owner)
    return item if Item.objects.insert_new(item) else None


def write(key, metadata=None, *, replace=False, stored=None, owner=None):
    """Create or update the item at ``key``; return ``(item, created)``.

    ``metadata`` is merged (RFC 7396) or, with ``replace``, replaces the old
    metadata (``None`` then means ``{}``). ``stored`` is new uploaded content
    (objects.content.StoredContent) that replaces the old content. ``owner``
    is the user writing (None: anonymous, the item keeps its owner).
    """
    keys.validate_key(key)
    sources.check_scheme(key)
    if metadata is not None:
        check_metadata(metadata)
    try:
        with transaction.atomic():
            item = _locked_item(key)
            created = item is None and (item := _create(key, metadata, replace, stored, owner)) is not None
            if not created:
                # It existed, or a concurrent writer created it since our look-up.
                item = item or _locked_item(key)
                old_content = _updated(item, metadata, replace, stored, owner)
                item.save()
                if old_content:
                    transaction.on_commit(lambda: _forget_content(old_content))
            signals.items_saved.send(sender=Item, items=[item], created_ids={item.id} if created else set())
    except BaseException:
        if stored is not None:
            content_store.delete_content(stored.name)
        raise
    return item, created


def delete(key):
    """Delete the item at ``key`` and its content; return the deleted item."""
    with transaction.atomic():
        item = _locked_item(key)
        if item is None:
            raise NotFound(f"No item is registered at {key!r}.", code="no_such_key")
        snapshot = item.as_dict()
        name = item.content_name
        signals.items_deleting.send(sender=Item, ids=[item.id])
        item.delete()
        transaction.on_commit(lambda: signals.key_forgotten.send(sender=Item, key=key))
        if name:
            transaction.on_commit(lambda: _forget_content(name))
    return snapshot


def delete_tree(prefix):
    """Delete every item under the directory ``prefix``; return the count."""
    with transaction.atomic():
        ids, names = [], []
        for row in keyrange.walk(Item.objects.filter(keyrange.under(prefix)).values("id", "key", "content_name")):
            ids.append(row["id"])
            if row["content_name"]:
                names.append(row["content_name"])
        signals.items_deleting.send(sender=Item, ids=ids)
        deleted = 0
        for start in range(0, len(ids), 500):
            deleted += Item.objects.filter(id__in=ids[start : start + 500])._raw_delete(Item.objects.db)
        transaction.on_commit(lambda: signals.tree_forgotten.send(sender=Item, prefix=prefix))
        transaction.on_commit(lambda: [_forget_content(name) for name in names])
    return deleted


def upsert_many(entries, *, batch_size=1000, progress=None):
    """Merge metadata into many keys in one transaction: ``[(key, metadata)]``.

    Returns ``(created, updated)``. Used by bulk writers such as ``_expand``,
    which register thousands of keys at once. ``progress(done, total)`` is
    called after each batch, inside the transaction (an exception it raises
    rolls the whole call back).
    """
    entries = list(entries)
    for key, metadata in entries:
        keys.validate_key(key)
        sources.check_scheme(key)
        check_metadata(metadata)
    created = updated = 0
    now = timezone.now()
    with transaction.atomic():
        for start in range(0, len(entries), batch_size):
            batch = entries[start : start + batch_size]
            hashes = [hash_key(key) for key, _ in batch]
            existing = {
                item.key_hash: item
                for item in Item.objects.select_for_update().filter(key_hash__in=hashes)
            }
            new_items, changed = [], []
            for (key, metadata), key_hash in zip(batch, hashes):
                item = existing.get(key_hash)
                if item is None:
                    item = Item(metadata=merge_patch({}, metadata))
                    item.set_key(key)
                    new_items.append(item)
                    existing[key_hash] = item
                else:
                    item.metadata = merge_patch(item.metadata, metadata)
                    item.updated = now
                    changed.append(item)
            Item.objects.bulk_create(new_items, batch_size=batch_size)
            if changed:
                Item.objects.bulk_update(changed, ["metadata", "updated"], batch_size=batch_size)
            created += len(new_items)
            updated += len(changed)
            saved = new_items + changed
            if any(item.id is None for item in saved):
                # Backends without RETURNING on bulk insert: read the ids back.
                ids = dict(
                    Item.objects.filter(key_hash__in=[i.key_hash for i in saved]).values_list("key_hash", "id")
                )
                for item in saved:
                    item.id = ids[item.key_hash]
            signals.items_saved.send(sender=Item, items=saved, created_ids={item.id for item in new_items})
            if progress is not None:
                progress(start + len(batch), len(entries))
    return created, updated


def _forget_content(name):
    content_store.delete_content(name)
    signals.content_forgotten.send(sender=Item, name=name)
