"""
Approximate nearest-neighbour indexes (HNSW, by the usearch library) for
``_create_index``, and searches that use them yet stay exact for every change
since the index was built.

Build: the watermark W is the highest ``Vector.id`` committed (on PostgreSQL
read under a brief ``SHARE`` lock on the table, so no writer with a lower id
is still in flight); the index holds the rows of (dir, field, dim) with
``id <= W``, labelled by row id. It is saved in Django's default storage
(local disk or S3), so every worker and host uses the same file, durably
(``objects.content.save_durably``) before it is recorded in ``VectorIndex``
(one per dir, field and vector length). Rebuilding replaces the record and
deletes the old file once the new record is committed.

Search: ask the index for more candidates than ``limit``, keep those whose
row still exists (a deleted or changed vector has lost its row: rows are never
updated), add an exact scan of the rows with ``id > W`` under the directory
(written since), and rank the union exactly with ``search.exact.nearest``. If
too many candidates have gone since the build, fall back to the exact scan.

Each process caches loaded indexes keyed by storage name and watermark; a
rebuild has a new name, so a stale index is never used. On local disk the
file is memory-mapped (``view``): workers share the page cache.
"""
import logging
import os
import tempfile
import threading
import uuid
from collections import OrderedDict

import numpy as np
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction

from . import exact, freshness
from .models import Vector, VectorIndex, slot_of
from .spaces import space_of
from objects import content
from objects.errors import NotFound

logger = logging.getLogger(__name__)

LIBRARY = "usearch"


def expansion_search():
    return settings.ISTORE_SEARCH_EXPANSION


# --- Building -----------------------------------------------------------------


def _storage_name(slot, dim, watermark):
    return f"search-indexes/{slot[:2]}/{slot}/{dim}-{watermark}-{uuid.uuid4().hex[:12]}.usearch"


def _new_index(params):
    from usearch.index import Index

    return Index(
        ndim=params["ndim"],
        metric=params["metric"],
        dtype=params["dtype"],
        connectivity=params["connectivity"],
        expansion_add=params["expansion_add"],
    )


def _reporter(report, base, step):
    """usearch's progress callback for one batch (usearch checks its annotations)."""

    def added(done: int, total: int) -> bool:
        return done % step != 0 or report(base + done)

    return added


def _build_one(directory, field, dim, watermark, total, progress):
    """Index the rows of (directory, field, dim) up to ``watermark``.

    The rows are streamed (``exact.stream``) and added to the index a batch
    at a time, so memory holds the index and one batch, never every vector
    twice. usearch adds each batch on all cores. ``progress`` counts each
    vector once read and once indexed (``2 * total``).
    """
    space = space_of(field)
    rows = exact.rows_under(field, dim, directory).filter(id__lte=watermark)
    params = space.index_params(dim)
    index = _new_index(params)
    count = 0
    step = max(total // 100, 1)
    stopped = []

    def report(done):
        try:
            progress("indexing", min(done, 2 * total), 2 * total)
        except BaseException as exc:  # a job cancelled: stop usearch, raise it below
            stopped.append(exc)
            return False
        return True

    parts = exact.stream(rows, dim, space=space, batch=settings.ISTORE_SEARCH_BUILD_BATCH)
    for part in parts:
        read = count + len(part)
        if not report(count + read):
            break

        try:
            index.add(part.row_ids.astype(np.uint64), space.index_rows(part.matrix, params), threads=0,
                      progress=_reporter(report, count + read, step))
        except RuntimeError:  # usearch's "Operation has been terminated", when added() said stop
            if not stopped:
                raise
        if stopped:
            break
        count = read
        del part
    parts.close()  # on PostgreSQL: ends the read transaction if the loop stopped early
    if stopped:
        raise stopped[0]
    report(2 * count)
    slot = slot_of(directory, field)
    with tempfile.TemporaryDirectory(dir=settings.FILE_UPLOAD_TEMP_DIR) as scratch:
        path = os.path.join(scratch, "index.usearch")
        index.save(path)
        del index
        with open(path, "rb") as handle:
            name = content.save_durably(File(handle), _storage_name(slot, dim, watermark))
    try:
        with transaction.atomic():
            record = VectorIndex.objects.select_for_update().filter(slot=slot, dim=dim).first()
            if record is not None and record.watermark > watermark:
                # A build that started later finished first: keep its index.
                transaction.on_commit(lambda: _delete_file(name))
                return record.count
            old_name = record.storage_name if record else None
            if record is None:
                record = VectorIndex(slot=slot, dim=dim)
            record.dir, record.field = directory, field
            record.storage_name, record.watermark, record.count = name, watermark, count
            record.library, record.params = LIBRARY, params
            record.save()
            if old_name and old_name != name:
                transaction.on_commit(lambda: _delete_file(old_name))
    except BaseException:
        _delete_file(name)
        raise
    return count


def sizes(directory, field, watermark=None):
    """``{dim: count}``: how many vectors of each length ``field`` has under
    ``directory`` (up to ``watermark``); NotFound when there are none."""
    counts = {}
    for dim in Vector.objects.filter(field=field).order_by("dim").values_list("dim", flat=True).distinct():
        rows = exact.rows_under(field, dim, directory)
        count = (rows if watermark is None else rows.filter(id__lte=watermark)).count()
        if count:
            counts[dim] = count
    if not counts:
        raise NotFound(
            f"No item under {directory!r} has a vector in metadata[{field!r}] "
            "(a non-empty list of numbers); POST some first.",
            code="no_vectors",
        )
    return counts


def build(directory, field, progress=None):
    """Build (or rebuild) the indexes of ``field`` under ``directory``, one per
    vector length found; return ``{dim: count}``. NotFound when no item under
    ``directory`` has a vector in ``metadata[field]``. ``progress(stage, done,
    total)`` is called as each length's vectors are read, then indexed."""
    progress = progress or (lambda stage, done, total: None)
    watermark = exact.watermark()
    slot = slot_of(directory, field)
    counts = sizes(directory, field, watermark)
    built = {}
    for dim, total in sorted(counts.items()):
        built[dim] = _build_one(directory, field, dim, watermark, total, progress)
    # Lengths that no longer occur under the directory: their indexes go.
    for record in VectorIndex.objects.filter(slot=slot).exclude(dim__in=list(built)):
        drop(record)
    return built


def drop(record):
    """Forget an index: its record now, its file after commit."""
    name = record.storage_name
    record.delete()
    transaction.on_commit(lambda: _delete_file(name))


def _delete_file(name):
    try:
        default_storage.delete(name)
    except Exception:  # noqa: BLE001 - a leftover file is harmless, a 500 is not
        logger.warning("could not delete index file %s", name, exc_info=True)


# --- Loading -----------------------------------------------------------------

_cache = OrderedDict()  # (storage name, watermark) -> usearch Index
_cache_lock = threading.Lock()
# usearch keeps per-thread search buffers indexed by its own worker number,
# so two request threads must not search at once (a search takes < 1 ms).
_search_lock = threading.Lock()


def clear_cache():
    with _cache_lock:
        _cache.clear()


def _local_path(name):
    """A local file for the stored index: the storage's own file on local
    disk, else a downloaded copy under ISTORE_DATA_DIR."""
    try:
        return default_storage.path(name), False
    except NotImplementedError:
        pass
    local = os.path.join(settings.ISTORE_DATA_DIR, "search-cache", name)
    if not os.path.exists(local):
        os.makedirs(os.path.dirname(local), exist_ok=True)
        with default_storage.open(name, "rb") as source, tempfile.NamedTemporaryFile(
            dir=os.path.dirname(local), delete=False
        ) as target:
            for chunk in iter(lambda: source.read(1 << 20), b""):
                target.write(chunk)
        os.replace(target.name, local)
    return local, True


def load(record):
    """The usearch Index of ``record``, from this process's cache if loaded."""
    from usearch.index import Index

    key = (record.storage_name, record.watermark)
    with _cache_lock:
        index = _cache.get(key)
        if index is not None:
            _cache.move_to_end(key)
            return index
    path, downloaded = _local_path(record.storage_name)
    index = Index.restore(path, view=True)
    if index is None:
        raise ValueError(f"{record.storage_name} is not a usearch index")
    index.expansion_search = expansion_search()
    with _cache_lock:
        _cache[key] = index
        while len(_cache) > settings.ISTORE_SEARCH_INDEX_CACHE:
            _cache.popitem(last=False)
    return index


# --- Searching ---------------------------------------------------------------


def _live_candidates(index, params, queries, limit, dim, space):
    """Index hits (for any of the query rows) whose rows still exist, at least
    ``limit`` of them when the index has that many live; None when too many
    have gone since the build."""
    size = len(index)
    ceiling = max(16 * limit, 1024)
    count = min(size, max(2 * limit, limit + 16))
    while True:
        labels = []
        with _search_lock:
            for query in queries:
                labels.append(index.search(space.index_query(query, params), count, threads=1).keys.astype(np.int64))
        live = exact.fetch_ids(np.unique(np.concatenate(labels)), dim, space)
        if len(live) >= limit or count >= size:
            return live
        if count >= ceiling:
            return None
        count = min(size, ceiling, count * 4)


def search(directory, field, dim, queries, limit, max_distance=None):
    """The ``limit`` items under ``directory`` nearest to the ``queries`` rows
    by the ``dim``-long vectors of ``field`` (within ``max_distance`` if
    given): through the index when one was built for this directory, field
    and length, else by an exact scan."""
    record = VectorIndex.objects.filter(slot=slot_of(directory, field), dim=dim).first()
    if record is None:
        return exact.search(directory, field, dim, queries, limit, max_distance)
    try:
        index = load(record)
    except Exception:  # noqa: BLE001 - a missing or broken file must not fail searches
        logger.warning("index %s unusable; searching exactly", record.storage_name, exc_info=True)
        return exact.search(directory, field, dim, queries, limit, max_distance)
    space = space_of(field)
    live = _live_candidates(index, record.params, queries, limit, dim, space)
    if live is None:  # most of the index's neighbours are gone: rebuild it
        return exact.search(directory, field, dim, queries, limit, max_distance)
    # The rows written since the build, read after the index's hits (a row
    # replaced meanwhile is then seen as new rather than missed).
    changed = freshness.written_since(directory, field, dim, record.watermark,
                                      max(exact.RELOAD_AFTER, record.count // 8))
    if changed is None:
        # Much was written since the build: the exact path (with its cached
        # snapshot) beats scanning all of it on every query. Rebuild the index.
        return exact.search(directory, field, dim, queries, limit, max_distance)
    return exact.nearest(exact.Packed.concat([live, changed], dim, space), queries, limit, space, max_distance)

