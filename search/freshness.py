"""
The rows of a directory written since a watermark (an index's build, an
exact-search snapshot), remembered per process.

Rows written since a watermark are found through the ``(field, dim, id)``
index: a walk from the watermark up. That walk passes every row of the field
written since, in every directory, and reads each one's key to tell whether
it is under the directory: in a store where other directories keep getting
vectors (a million rows written after a 100,000-row directory's index was
built), one search walked them all, half a second each time.

So each process remembers, per (directory, field, dim, watermark), how far
it has walked (``scanned``) and the rows under the directory it found, and
walks only what was written past ``scanned``. ``scanned`` only ever moves to
a watermark (``exact.watermark``: no lower id is still uncommitted, which on
PostgreSQL takes its brief SHARE lock, and only when something was written
since the last walk), so no row is stepped over while uncommitted. The rows
remembered are checked to still exist on every call (one query on their ids:
rows are never updated, a changed vector is a new row). Nothing here is
needed for correctness: a process that forgot walks again from the
watermark.
"""
import threading
from collections import OrderedDict

import numpy as np
from django.db import connections, router

from . import exact
from .models import Vector
from .spaces import space_of

# Remembered (directory, field, dim, watermark) walks per process, and rows
# remembered per walk (more than that are read afresh on every search).
ENTRIES = 64
ROWS = 4096

_walks = OrderedDict()  # (directory, field, dim, mark) -> (scanned, Packed)
_lock = threading.Lock()


def clear_cache():
    with _lock:
        _walks.clear()


def _highest_id():
    """The highest Vector id visible now (the primary key's last entry)."""
    connection = connections[router.db_for_read(Vector)]
    table = connection.ops.quote_name(Vector._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT MAX(id) FROM {table}")
        return cursor.fetchone()[0] or 0


def written_since(directory, field, dim, mark, most):
    """The rows of (directory, field, dim) with ``id > mark`` as a Packed, or
    None when there are more than ``most``."""
    space = space_of(field)
    if connections[router.db_for_read(Vector)].in_atomic_block:
        # Inside a transaction rows read may be its own writes, yet to be rolled
        # back (and their ids reused, on SQLite): read afresh, remember nothing.
        rows = exact.rows_under(field, dim, directory, after=mark)
        found = exact.fetch(rows[: most + 1], dim, space=space)
        return None if len(found) > most else found
    key = (directory, field, dim, mark)
    with _lock:
        scanned, known = _walks.get(key, (mark, None))
    if known is not None and len(known):
        present = exact.fetch_present(known.row_ids)
        if len(present) < len(known):
            known = known.take(np.flatnonzero(np.isin(known.row_ids, present)))
    new = exact.Packed.empty(dim, space)
    if _highest_id() > scanned:
        horizon = exact.watermark()
        rows = exact.rows_under(field, dim, directory, after=scanned).filter(id__lte=horizon)
        new = exact.fetch(rows[: most + 1], dim, space=space)
        scanned = horizon
    found = exact.Packed.concat([part for part in (known, new) if part is not None], dim, space)
    if len(found) > most:
        return None
    with _lock:
        if len(found) <= ROWS and (key not in _walks or _walks[key][0] <= scanned):
            _walks[key] = (scanned, found)
            _walks.move_to_end(key)
            while len(_walks) > ENTRIES:
                _walks.popitem(last=False)
    return found
