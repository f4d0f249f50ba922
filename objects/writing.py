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
from typing import NamedTuple

import json_merge_patch
from django.conf import settings
from django.db import connections, router, transaction
from django.utils import timezone

from istore_site.sqlite3.turns import yield_to_writer

from . import content as content_store
from . import jsontext, keyrange, keys, signals, sources
from .errors import ApiError, BadRequest, NotFound
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
    """RFC 7396 JSON Merge Patch of ``patch`` onto ``target`` (a new object;
    ``target`` is not changed, and ``patch`` never is)."""
    return json_merge_patch.merge(copy.deepcopy(target), patch)


def _locked_item(key):
    return Item.objects.by_key(key, for_update=True)


def _updated(item, metadata, replace, stored, owner=None):
    """Apply a write to ``item`` in memory, ``metadata`` already checked (``write``); return the
    blob name it replaced."""
    if owner is not None:
        item.owner = owner
    if replace:
        new_metadata = metadata if metadata is not None else {}
    elif metadata is not None:
        new_metadata = merge_patch(item.metadata, metadata)
        if item.metadata:  # onto nothing, a patch leaves a part of itself: no larger, no deeper
            check_metadata(new_metadata)
    else:
        new_metadata = check_metadata(item.metadata)
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


def _item_to_create(key, metadata, replace, stored, owner):
    """The item a write would create at ``key``, unsaved."""
    item = Item(metadata={})
    item.set_key(key)
    _updated(item, metadata, replace, stored, owner)
    return item


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
        # Built and checked before the transaction: on SQLite every other
        # writer waits while it runs.
        new_item = _item_to_create(key, metadata, replace, stored, owner)
        with transaction.atomic():
            item = _locked_item(key)
            created = item is None and Item.objects.insert_new(new_item)
            if created:
                item = new_item
            else:
                # It existed, or a concurrent writer created it since our look-up.
                item = item or _locked_item(key)
                old_content = _updated(item, metadata, replace, stored, owner)
                Item.objects.save_row(item)
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
        signals.items_deleting.send(sender=Item, ids=[item.id], keys=[item.key])
        item.delete()
        transaction.on_commit(lambda: signals.key_forgotten.send(sender=Item, key=key))
        if name:
            transaction.on_commit(lambda: _forget_content(name))
    return snapshot


def delete_tree(prefix):
    """Delete every item under the directory ``prefix``; return the count."""
    with transaction.atomic():
        ids, deleted_keys, names = [], [], []
        # Locked as read (PostgreSQL): a concurrent delete of the tree waits, then finds the rows
        # gone, rather than deleting and recording them a second time.
        rows = Item.objects.filter(keyrange.under(prefix)).select_for_update().values("id", "key", "content_name")
        for row in keyrange.walk(rows):
            ids.append(row["id"])
            deleted_keys.append(row["key"])
            if row["content_name"]:
                names.append(row["content_name"])
        signals.items_deleting.send(sender=Item, ids=ids, keys=deleted_keys)
        deleted = 0
        for start in range(0, len(ids), 500):
            deleted += Item.objects.filter(id__in=ids[start : start + 500])._raw_delete(Item.objects.db)
        transaction.on_commit(lambda: signals.tree_forgotten.send(sender=Item, prefix=prefix))
        transaction.on_commit(lambda: [_forget_content(name) for name in names])
    return deleted


class Write(NamedTuple):
    """One write of a batch: merge ``metadata`` into ``key`` (RFC 7396), or
    with ``replace`` replace it (None: ``{}``), or with ``delete`` delete the key.
    (A named tuple: ``_bulk`` makes one a line, faster than a frozen dataclass.)"""

    key: str
    metadata: dict | None = None
    replace: bool = False
    delete: bool = False


def distinct_batches(writes, size):
    """Lists of at most ``size`` writes whose keys are distinct, in order: a key
    written again starts a new batch, so each batch can be applied as a set."""
    batch, seen = [], set()
    for write_ in writes:
        if len(batch) >= size or write_.key in seen:
            yield batch
            batch, seen = [], set()
        batch.append(write_)
        seen.add(write_.key)
    if batch:
        yield batch


def write_many(batch, *, owner=None):
    """Apply a batch of ``Write`` with distinct, valid keys in the current
    transaction (or one of its own); return one outcome per write, in order:
    ``"created"``, ``"updated"``, ``"deleted"``, or the ApiError that failed
    that write alone (merged metadata over the size limit, deleting a key
    that is not registered).

    The rows are locked (PostgreSQL), new keys inserted with ``ON CONFLICT DO
    NOTHING``, and a key another writer created meanwhile is then updated:
    the same outcome as N concurrent single writes.

    ``_bulk`` spends most of its time here, so the items are built without
    the ORM (``Item.objects.for_write``, ``built``) and each new metadata is
    checked and serialised once (``_metadata_text``), that text stored as it
    is. On SQLite, where one writer at a time holds the database, what each
    write leaves is worked out before the transaction, from the rows as
    they are then (``_plan``); inside it, a write whose row still has the
    same id and metadata text keeps its plan, any other is worked out again.
    """
    now = timezone.now()
    owner_id = owner.pk if owner is not None else None
    hashes = [hash_key(write_.key) for write_ in batch]
    connection_ = connections[router.db_for_write(Item)]
    plans = {}
    if connection_.vendor == "sqlite" and not connection_.in_atomic_block:
        plans = _plan(batch, hashes, Item.objects.for_write(hashes, lock=False), owner_id)
    outcomes = [None] * len(batch)
    with transaction.atomic():
        rows = Item.objects.for_write(hashes)
        fresh = _plan(batch, hashes, rows, owner_id, plans)
        new = {index: plan for index, plan in fresh.items() if plan[0] is None and not isinstance(plan[1], ApiError)}
        inserted = Item.objects.insert_many([plan[3] for plan in new.values()], [plan[2] for plan in new.values()])
        raced = [hashes[index] for index in new if hashes[index] not in inserted]
        if raced:  # created by another writer since our look-up (PostgreSQL): update them instead
            rows.update(Item.objects.for_write(raced))
            fresh.update(_plan([batch[i] for i in new], [hashes[i] for i in new], rows, owner_id, {}, list(new)))
        changed, changed_texts, created, doomed = [], [], [], []
        for index, (write_, key_hash) in enumerate(zip(batch, hashes)):
            row = rows.get(key_hash)
            if write_.delete:
                if row is None:
                    outcomes[index] = NotFound(f"No item is registered at {write_.key!r}.", code="no_such_key")
                else:
                    doomed.append(row[0])
                    outcomes[index] = "deleted"
                continue
            basis, result, text, item = fresh[index]
            if isinstance(result, ApiError):
                outcomes[index] = result
            elif basis is None and key_hash in inserted:
                created.append(item)
                outcomes[index] = "created"
            elif row is None:
                # Created by another writer after our look-up, and deleted again before we could lock it.
                outcomes[index] = ApiError(f"{write_.key!r} was deleted by another writer while this one "
                                           "wrote it; send the line again.", status=409, code="write_conflict")
            else:
                item = row[0]
                item.metadata, item.updated = result, now
                if owner_id is not None:
                    item.owner_id = owner_id
                changed.append(item)
                changed_texts.append(text)
                outcomes[index] = "updated"
        Item.objects.update_many(changed, changed_texts, owner=owner, updated=now)
        if created or changed:
            signals.items_saved.send(sender=Item, items=created + changed, created_ids={item.id for item in created})
        if doomed:
            _delete_items(doomed)
    return outcomes


def _plan(batch, hashes, rows, owner_id, planned=None, indexes=None):
    """``{index: (basis, metadata or ApiError, text, new Item or None)}``: what each write that is
    not a delete leaves on its key, given ``rows`` (``Item.objects.for_write``); ``basis`` is
    ``(id, metadata text)`` of the row it was worked out from, None for a new key. A plan in
    ``planned`` with the same basis is kept."""
    planned = planned or {}
    plans = {}
    for index, write_, key_hash in zip(indexes or range(len(batch)), batch, hashes):
        if write_.delete:
            continue
        yield_to_writer()
        row = rows.get(key_hash)
        basis = None if row is None else (row[0].id, row[1])
        plan = planned.get(index)
        if plan is None or plan[0] != basis:
            try:
                metadata, text = _merged(None if row is None else json.loads(row[1]), write_)
            except ApiError as exc:
                plan = (basis, exc, None, None)
            else:
                plan = (basis, metadata, text, _new_item(write_.key, key_hash, metadata, owner_id) if row is None
                        else None)
        plans[index] = plan
    return plans


def _merged(metadata, write_):
    """The metadata ``write_`` leaves on an item that holds ``metadata`` (None: a new item), and its text.

    As ``_updated`` does, without copying ``metadata``: it was just read
    from the database for this write alone.
    """
    if write_.replace:
        merged = write_.metadata if write_.metadata is not None else {}
    elif write_.metadata is not None:
        merged = json_merge_patch.merge(metadata if metadata is not None else {}, write_.metadata)
    else:
        merged = metadata if metadata is not None else {}
    return merged, _metadata_text(merged)


def _metadata_text(metadata):
    """``check_metadata(metadata)``, and the text to store: compact JSON, non-ASCII escaped.

    One ``json.dumps`` serves the size check, the database and, through
    ``jsontext.may_fail_check``, the decision to walk the value (only
    where its text shows it may fail): the walk costs more than the dump.
    The size is that of the compact UTF-8 form, as ``check_metadata``
    counts it: the same text unless it holds a ``\\u`` escape.
    """
    try:
        text = json.dumps(metadata, separators=(",", ":"), allow_nan=False)
    except (ValueError, RecursionError):  # NaN or infinity, too deep
        text = None
    if text is None or "\\u" in text or len(text) > settings.ISTORE_MAX_METADATA_BYTES or (
            jsontext.may_fail_check(text)):
        check_metadata(metadata)  # raises what a single write would, or finds nothing wrong
    return text if text is not None else json.dumps(metadata)


def upsert_many(entries, *, batch_size=1000, progress=None):
    """Merge metadata into many keys in one transaction: ``[(key, metadata)]``.

    Returns ``(created, updated)``. Used by bulk writers such as ``_expand``,
    which register thousands of keys at once; the first bad entry raises
    before anything is written. ``progress(done, total)`` is called after
    each batch, inside the transaction (an exception it raises rolls the
    whole call back).
    """
    writes = []
    for key, metadata in entries:
        keys.validate_key(key)
        sources.check_scheme(key)
        writes.append(Write(key, check_metadata(metadata)))
    outcomes = []
    with transaction.atomic():
        for batch in distinct_batches(writes, batch_size):
            outcomes += write_many(batch)
            failed = next((outcome for outcome in outcomes if isinstance(outcome, ApiError)), None)
            if failed is not None:
                raise failed
            if progress is not None:
                progress(len(outcomes), len(writes))
    return outcomes.count("created"), outcomes.count("updated")


def _new_item(key, key_hash, metadata, owner_id):
    """A new Item, unsaved, with every column set (``Item.objects.built``)."""
    return Item.objects.built({
        "key": key, "key_hash": key_hash, "key_prefix": key[: keys.PREFIX_CHARS], "dir": keys.dir_of(key),
        "metadata": metadata, "content_name": "", "content_size": None, "content_type": "", "content_etag": "",
        "content_md5": "", "content_headers": {}, "content_checksums": {}, "owner_id": owner_id,
        "created": None, "updated": None,
    })


def _delete_items(items):
    """Delete ``items`` (rows already locked) in the current transaction; their content and
    cached answers go after commit."""
    signals.items_deleting.send(sender=Item, ids=[item.id for item in items], keys=[item.key for item in items])
    Item.objects.filter(id__in=[item.id for item in items])._raw_delete(Item.objects.db)
    for item in items:
        transaction.on_commit(lambda key=item.key: signals.key_forgotten.send(sender=Item, key=key))
        if item.content_name:
            transaction.on_commit(lambda name=item.content_name: _forget_content(name))


def _forget_content(name):
    content_store.delete_content(name)
    signals.content_forgotten.send(sender=Item, name=name)
