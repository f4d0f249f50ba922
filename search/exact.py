"""
Exact similarity search: one vectorised numpy pass over the packed vectors.

The rows of one field and length under a directory (a bytewise key range
read as every listing reads it, ``objects.keyrange``) come straight off the
database cursor, their float32 blobs joined into one matrix, and are ranked
by one matrix-vector product. The few rows that can be among the nearest
are then re-scored in float64 and ties are broken by key, so the order is
deterministic and the same on every database and with or without an ANN
index (search.ann ranks its candidates with the same functions).

Reading 100k blobs costs more than ranking them, so each process keeps the
packed rows of recently searched directories (``Snapshot``, LRU, at most
``ISTORE_SEARCH_CACHE_BYTES``) and keeps every answer exact the way an ANN
index is kept exact: a snapshot holds the rows with ``id <= watermark``
(rows are never updated, only inserted and deleted, so ids order changes);
each search adds the rows with ``id > watermark`` under the directory (one
indexed query, usually empty), and checks that its shortlisted rows still
exist (one query on a few ids); rows found gone are dropped from the
snapshot. No correctness depends on the cache: it is a copy validated on
every search, and several processes or hosts each hold their own. Searches
inside a transaction (``atomic``) neither use nor fill it: what they read may
be rolled back.

Distance is the field's (``search.spaces``): angular, 0.5 − 0.5·cos θ, from
0 (same direction) to 1 (opposite), for metadata vectors; normalised Hamming
for the built-in hashes. A query is one or more rows; an item's distance is
to the nearest row.
"""
import threading
from collections import OrderedDict

import numpy as np
from django.conf import settings
from django.db import connections, router, transaction

from objects import keyrange
from objects.models import Item

from .models import Vector
from .spaces import ANGULAR, space_of

FETCH = 20000
# A cached snapshot is read afresh once more rows than this (or a 16th of it)
# were written since.
RELOAD_AFTER = 1024


def rows_under(field, dim, directory, after=None):
    """The Vector rows of ``field`` with ``dim`` numbers (any, for None)
    under ``directory``; only those with ``id > after`` if given.

    Each is ordered as an index holds it, so that read inside
    ``keyrange.index_walk`` it is a walk of that index whatever the
    statistics say: a whole directory through (field, dim, key_prefix), the
    rows written since a watermark through (field, dim, id), a query that
    names no ``key_prefix`` range the planner could prefer.
    """
    rows = Vector.objects.filter(field=field)
    if dim is not None:
        rows = rows.filter(dim=dim)
    if after is None:
        return rows.filter(keyrange.under(directory)).order_by("key_prefix")
    return rows.filter(keyrange.under(directory, indexed=False), id__gt=after).order_by("id")


class Packed:
    """Row ids, item ids and the matrix of some Vector rows: (n, dim) float32,
    or (n, dim / 8) bytes of packed bits (``search.spaces``)."""

    def __init__(self, row_ids, item_ids, matrix):
        self.row_ids = row_ids
        self.item_ids = item_ids
        self.matrix = matrix

    def __len__(self):
        return len(self.row_ids)

    @classmethod
    def empty(cls, dim, space=ANGULAR):
        return cls(np.empty(0, np.int64), np.empty(0, np.int64), np.empty((0, space.width(dim)), space.dtype))

    @classmethod
    def concat(cls, parts, dim, space=ANGULAR):
        parts = [part for part in parts if len(part)]
        if not parts:
            return cls.empty(dim, space)
        if len(parts) == 1:
            return parts[0]
        return cls(
            np.concatenate([p.row_ids for p in parts]),
            np.concatenate([p.item_ids for p in parts]),
            np.concatenate([p.matrix for p in parts]),
        )

    def take(self, index):
        return Packed(self.row_ids[index], self.item_ids[index], self.matrix[index])


def fetch(queryset, dim, progress=None, space=ANGULAR):
    """Read ``(id, item_id, vector)`` of ``queryset`` into a Packed, fast.

    The SQL comes from the ORM (so quoting, collations and lookups are the
    ORM's), the rows straight from the database cursor in large batches.
    ``progress(rows_read)`` is called after each batch.
    """
    sql, params = queryset.values_list("id", "item_id", "vector").query.sql_with_params()
    parts = []
    with keyrange.index_walk(queryset.db), connections[queryset.db].cursor() as cursor:
        cursor.execute(sql, params)
        while True:
            rows = cursor.fetchmany(FETCH)
            if not rows:
                break
            row_ids, item_ids, blobs = zip(*rows)
            matrix = np.frombuffer(b"".join(blobs), dtype=space.dtype).reshape(len(rows), space.width(dim))
            parts.append(Packed(np.array(row_ids, np.int64), np.array(item_ids, np.int64), matrix))
            if progress is not None:
                progress(sum(len(part) for part in parts))
    return Packed.concat(parts, dim, space)


def stream(queryset, dim, space=ANGULAR, batch=FETCH):
    """Yield the ``(id, item_id, vector)`` rows of ``queryset`` as Packed
    batches of at most ``batch`` rows, never holding more than one batch.

    For reads too large to hold at once (``search.ann`` building an index
    of millions of vectors). On PostgreSQL the rows come through a
    server-side cursor inside a read-only transaction (psycopg would
    otherwise receive the whole result before the first row), planned as
    ``keyrange.index_walk`` plans (``enable_sort`` off for the
    transaction); SQLite's cursor steps through the statement as rows are
    fetched.
    """
    sql, params = queryset.values_list("id", "item_id", "vector").query.sql_with_params()
    connection = connections[queryset.db]
    width = space.width(dim)

    def packed(rows):
        row_ids, item_ids, blobs = zip(*rows)
        matrix = np.frombuffer(b"".join(blobs), dtype=space.dtype).reshape(len(rows), width)
        return Packed(np.array(row_ids, np.int64), np.array(item_ids, np.int64), matrix)

    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            while rows := cursor.fetchmany(batch):
                yield packed(rows)
        return
    with transaction.atomic(using=queryset.db):
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_sort = off")
        try:
            # Inside a transaction Django's chunked cursor is a named (server-side)
            # cursor without HOLD: rows are sent as they are fetched.
            with connection.chunked_cursor() as cursor:
                cursor.itersize = batch
                cursor.execute(sql, params)
                while rows := cursor.fetchmany(batch):
                    yield packed(rows)
        except GeneratorExit:  # the reader stopped early (an error rolls the setting back itself)
            _default_sort(connection)
            raise
        _default_sort(connection)


def _default_sort(connection):
    """Inside an outer transaction a SET LOCAL would outlive ``stream``'s savepoint."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_sort TO DEFAULT")


def fetch_ids(row_ids, dim, space=ANGULAR):
    """The Vector rows with these ids that still exist, as a Packed."""
    row_ids = [int(i) for i in row_ids]
    parts = [
        fetch(Vector.objects.filter(id__in=row_ids[start : start + 500]), dim, space=space)
        for start in range(0, len(row_ids), 500)
    ]
    return Packed.concat(parts, dim, space)


def fetch_present(row_ids, using=None):
    """The subset of ``row_ids`` whose rows still exist, as a numpy array."""
    row_ids = [int(i) for i in row_ids]
    found = []
    for start in range(0, len(row_ids), 500):
        found.extend(Vector.objects.filter(id__in=row_ids[start : start + 500]).values_list("id", flat=True))
    return np.array(found, np.int64)


def fetch_row_ids(queryset):
    sql, params = queryset.values_list("id").query.sql_with_params()
    with keyrange.index_walk(queryset.db), connections[queryset.db].cursor() as cursor:
        cursor.execute(sql, params)
        return np.array([row[0] for row in cursor.fetchall()], np.int64)


def watermark(using=None):
    """The highest committed Vector id such that no lower id is uncommitted.

    Rows with ``id <= watermark`` read after this call are all there is up to
    it; later writes get higher ids. SQLite runs one writer at a time (and
    AUTOINCREMENT never reuses an id). On PostgreSQL ids are taken in order
    but may commit out of order, so the maximum is read under a brief SHARE
    lock, which waits for the writers in flight and holds new ones off for
    one statement.
    """
    using = using or router.db_for_write(Vector)
    connection = connections[using]
    table = connection.ops.quote_name(Vector._meta.db_table)
    if connection.vendor != "postgresql":
        # (No transaction: on SQLite istore's transactions take the write lock.)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT MAX(id) FROM {table}")
            return cursor.fetchone()[0] or 0
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {table} IN SHARE MODE")
        cursor.execute(f"SELECT MAX(id) FROM {table}")
        return cursor.fetchone()[0] or 0


def shortlist(packed, queries, limit, alive=None, space=ANGULAR):
    """Indexes of the rows that may be among the ``limit`` nearest (float32
    pass), among the ``alive`` ones if a mask is given."""
    count = len(packed) if alive is None else int(alive.sum())
    if count <= limit:
        return np.arange(len(packed)) if alive is None else np.flatnonzero(alive)
    similarity = space.similarity(packed.matrix, queries)
    if alive is not None:
        similarity[~alive] = -np.inf
    kth = np.partition(similarity, len(similarity) - limit)[len(similarity) - limit]
    return np.flatnonzero(similarity >= kth - space.tolerance(packed.matrix.shape[1]))


def nearest(packed, queries, limit, space=ANGULAR, max_distance=None):
    """The ``limit`` nearest rows of ``packed`` as ``[(Item, distance)]``,
    nearest first, ties broken by key; only those within ``max_distance``
    if given."""
    if not len(packed):
        return []
    candidates = packed.take(shortlist(packed, queries, limit, space=space))
    dist = space.distances(candidates.matrix, queries)
    if max_distance is not None:
        close = np.flatnonzero(dist <= max_distance)
        candidates, dist = candidates.take(close), dist[close]
    if len(dist) > limit:
        cut = np.partition(dist, limit - 1)[limit - 1]
        keep = np.flatnonzero(dist <= cut)  # the limit nearest and any exact ties with the last
    else:
        keep = np.arange(len(dist))
    item_ids = candidates.item_ids[keep].tolist()
    dist = dist[keep].tolist()
    if len(keep) > limit:
        # Exact ties at the cut: read only the keys of the tied rows to break them.
        key_of = {}
        for start in range(0, len(item_ids), 500):
            key_of.update(Item.objects.filter(id__in=item_ids[start : start + 500]).values_list("id", "key"))
        order = sorted((d, key_of[i], i) for i, d in zip(item_ids, dist) if i in key_of)[:limit]
        items = Item.objects.in_bulk([i for _, _, i in order])
        return [(items[i], d) for d, _, i in order if i in items]
    items = Item.objects.in_bulk(item_ids)
    found = [(items[i], d) for i, d in zip(item_ids, dist) if i in items]
    found.sort(key=lambda pair: (pair[1], pair[0].key))
    return found


class Snapshot:
    """The packed rows of (directory, field, dim) with ``id <= watermark``,
    and which of them are known to be gone."""

    def __init__(self, watermark, packed, dim):
        self.watermark = watermark
        self.packed = packed
        self.dim = dim
        self.alive = None  # None: all alive, else a boolean mask
        self.nbytes = packed.matrix.nbytes + packed.row_ids.nbytes + packed.item_ids.nbytes

    def __len__(self):
        return len(self.packed)

    def drop(self, row_ids):
        gone = np.isin(self.packed.row_ids, row_ids)
        if gone.any():
            self.alive = ~gone if self.alive is None else self.alive & ~gone

    def keep_only(self, row_ids):
        self.alive = np.isin(self.packed.row_ids, row_ids)


_snapshots = OrderedDict()  # (directory, field, dim) -> Snapshot
_snapshots_lock = threading.Lock()


def cache_bytes():
    return settings.ISTORE_SEARCH_CACHE_BYTES


def clear_cache():
    with _snapshots_lock:
        _snapshots.clear()


def load_snapshot(directory, field, dim):
    """Read the rows of (directory, field, dim) into a Snapshot and cache it
    if it fits in ISTORE_SEARCH_CACHE_BYTES."""
    mark = watermark()
    rows = rows_under(field, dim, directory).filter(id__lte=mark)
    snapshot = Snapshot(mark, fetch(rows, dim, space=space_of(field)), dim)
    budget = cache_bytes()
    with _snapshots_lock:
        key = (directory, field, dim)
        _snapshots.pop(key, None)
        if snapshot.nbytes <= budget:
            _snapshots[key] = snapshot
            total = sum(s.nbytes for s in _snapshots.values())
            while total > budget:
                _, evicted = _snapshots.popitem(last=False)
                total -= evicted.nbytes
    return snapshot


def cached_snapshot(directory, field, dim):
    with _snapshots_lock:
        snapshot = _snapshots.get((directory, field, dim))
        if snapshot is not None:
            _snapshots.move_to_end((directory, field, dim))
        return snapshot


def changed_since(directory, field, dim, mark):
    """The rows of (directory, field, dim) written after the watermark."""
    return fetch(rows_under(field, dim, directory, after=mark), dim, space=space_of(field))


def verified_shortlist(snapshot, directory, field, queries, limit):
    """The snapshot's shortlist, every row of it checked to still exist."""
    space = space_of(field)
    for attempt in range(4):
        alive = snapshot.alive
        candidates = snapshot.packed.take(shortlist(snapshot.packed, queries, limit, alive, space))
        present = fetch_present(candidates.row_ids)
        if len(present) == len(candidates):
            return candidates
        if attempt == 0:
            # Rows were deleted since the snapshot: learn all that went at once.
            rows = rows_under(field, snapshot.dim, directory).filter(id__lte=snapshot.watermark)
            snapshot.keep_only(fetch_row_ids(rows))
        else:
            snapshot.drop(np.setdiff1d(candidates.row_ids, present))
    return None


def search(directory, field, dim, queries, limit, max_distance=None):
    """Exact search: the ``limit`` items under ``directory`` nearest to the
    ``queries`` rows by the ``dim``-long vectors of ``field``, within
    ``max_distance`` if given."""
    space = space_of(field)

    def ranked(packed):
        return nearest(packed, queries, limit, space, max_distance)

    if connections[router.db_for_read(Vector)].in_atomic_block:
        # Inside a transaction, rows read may be its own writes, yet to be
        # rolled back (and their ids reused, on SQLite): read afresh, cache nothing.
        return ranked(fetch(rows_under(field, dim, directory), dim, space=space))
    from . import freshness  # it reads rows through this module

    snapshot = cached_snapshot(directory, field, dim)
    if snapshot is None:
        snapshot = load_snapshot(directory, field, dim)
    # The rows written since the snapshot, walked once per process (search.freshness) rather
    # than on every search through every directory's rows of the field written since.
    changed = freshness.written_since(directory, field, dim, snapshot.watermark,
                                      max(RELOAD_AFTER, len(snapshot) // 16))
    if changed is None:  # many writes since: start afresh
        snapshot = load_snapshot(directory, field, dim)
        changed = changed_since(directory, field, dim, snapshot.watermark)
    candidates = verified_shortlist(snapshot, directory, field, queries, limit)
    if candidates is None:  # rows vanishing as we look: read everything afresh
        return ranked(fetch(rows_under(field, dim, directory), dim, space=space))
    return ranked(Packed.concat([candidates, changed], dim, space))
