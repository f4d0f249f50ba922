"""
Items under a prefix: the one key-range query behind every listing.

Keys sort bytewise (UTF-8 byte order: ``str`` order in Python, ``COLLATE "C"``
on PostgreSQL, BINARY on SQLite). A key may be 4096 bytes, more than a
PostgreSQL b-tree entry holds, so each table that lists keys (``objects.Item``,
``search.Vector``) has a ``key`` column and an indexed ``key_prefix`` column,
the key's first ``keys.PREFIX_CHARS`` characters. A range of keys is a range
of ``key_prefix``, which the index serves, plus a comparison of whole keys
only where a bound is longer than the prefix.

Whatever reads "the items under a prefix" builds its range here (``under``,
``span``) and reads it in key order here (``fetch``, ``walk``, ``exists``,
``count``): the listing API (pages, streams, the ``delimiter=/`` skip-scan),
the admin's folder pages, counts and finds, ``writing.delete_tree``, the
similarity search's candidate scans, and the S3 listings. The rule of order
and the shape of the query live in this module alone.

**A page costs a page, whatever the planner believes.** The query asks for
``ORDER BY key_prefix`` with a ``LIMIT``: the order of the index itself, so
walking the index from the lower bound and stopping after the page needs no
sort. PostgreSQL may still prefer to collect the whole range (a bitmap or
sequential scan) and sort it, and it does whenever its statistics make the
range look small: a table never analyzed (autovacuum off or behind, a bulk
load), or analyzed while it was small. A directory of a million keys then
costs its million rows on every page. No shape of the query avoids that on
its own: ``ORDER BY key_prefix, key`` makes the planner sort on ``key`` (and,
believing the range tiny, it sorts all of it), and a ``(key_prefix, key) >
(...)`` row comparison only moves its estimates. So on PostgreSQL each of these statements
is sent as ``SET LOCAL enable_sort = off; SELECT ...; SET LOCAL enable_sort
TO DEFAULT`` (``index_walk``): one round trip, the setting holding for that
one statement. A plan that sorts is then priced far above any other, and the
ordered index scan is the plan whatever the statistics say. SQLite's planner
walks the index for this query shape with or without ``ANALYZE``.
``tests/objects/test_keyrange.py`` checks both by EXPLAINing the statements
istore sends against tables whose statistics are missing, tiny, huge or
stale.

Keys that share their first ``PREFIX_CHARS`` characters have equal
``key_prefix`` values, which the index holds in no particular order: ``fetch``
orders them by the whole key in Python, reading the whole run of such keys
when a page would end inside one. Only keys of ``PREFIX_CHARS`` characters
or more can form such runs.
"""
from contextlib import contextmanager, nullcontext

from django.db import connections
from django.db.models import Q

from . import keys

BATCH = 1000


def span(lower=None, upper=None, *, inclusive=True, indexed=True):
    """The keys ``k`` with ``lower <= k < upper`` (``lower < k`` when not
    ``inclusive``) as a condition on ``key_prefix`` and ``key``; a bound of
    None is open.

    A bound of at most ``PREFIX_CHARS`` characters is decided on
    ``key_prefix`` alone (comparing a key's first characters with a shorter
    string gives the same answer as comparing the key); a longer one adds a
    comparison of the whole key. ``indexed=False`` compares whole keys only,
    for a query that another index must serve: it names no ``key_prefix``
    range that a planner could prefer.
    """
    if not indexed:
        condition = Q() if lower is None else Q(key__gte=lower) if inclusive else Q(key__gt=lower)
        return condition if upper is None else condition & Q(key__lt=upper)
    size = keys.PREFIX_CHARS
    condition = Q()
    if lower is not None:
        if len(lower) < size or (inclusive and len(lower) == size):
            condition &= Q(key_prefix__gte=lower) if inclusive else Q(key_prefix__gt=lower)
        else:
            condition &= Q(key_prefix__gte=lower[:size]) & (Q(key__gte=lower) if inclusive else Q(key__gt=lower))
    if upper is not None:
        if len(upper) <= size:
            condition &= Q(key_prefix__lt=upper)
        else:
            condition &= Q(key_prefix__lte=upper[:size], key__lt=upper)
    return condition


def under(prefix, after=None, *, indexed=True):
    """The keys that start with ``prefix`` (any string: a directory such as
    ``/a/b/``, or a partial key such as ``/photos/ca``), only those past
    ``after`` when it is given (keyset paging: the last key of the previous
    page, or anything before ``prefix`` to start at the beginning).
    ``indexed`` as for ``span``."""
    upper = keys.prefix_upper_bound(prefix)
    if after is not None and after >= prefix:
        return span(after, upper, inclusive=False, indexed=indexed)
    return span(prefix, upper, indexed=indexed)


def key_of(row):
    """The key of a row as ``fetch`` returns it: a model instance or a dict
    from ``values()`` that includes ``key``."""
    return row["key"] if isinstance(row, dict) else row.key


def fetch(rows, size=None, *, walk_index=True):
    """The first ``size`` rows of the queryset ``rows`` in bytewise key order
    (all of them when ``size`` is None), as a list.

    ``rows`` is narrowed by ``under`` or ``span`` (and any other filter) and
    yields model instances or ``values()`` dicts that include ``key``. The
    next page is ``rows.filter(span(key_of(last), inclusive=False))``: keyset
    continuation, never OFFSET. A page may hold more than ``size`` rows when
    its last keys share their first ``PREFIX_CHARS`` characters with the
    next ones (the whole run is read to order it).

    ``walk_index=False`` leaves the plan to the database, for a query whose
    other filters an index of their own may serve better (the admin's
    metadata find).
    """
    ordered = rows.order_by("key_prefix")
    with index_walk(rows.db) if walk_index else nullcontext():
        found = list(ordered if size is None else ordered[:size])
        if size is not None and len(found) == size:
            last = key_of(found[-1])[: keys.PREFIX_CHARS]
            if len(last) == keys.PREFIX_CHARS:
                found = [row for row in found if key_of(row)[: keys.PREFIX_CHARS] != last]
                found += ordered.filter(key_prefix=last)
    found.sort(key=key_of)
    return found


def walk(rows, size=None):
    """Yield every row of the queryset ``rows`` in bytewise key order, reading
    ``size`` rows per query (``BATCH`` by default), each query starting past
    the last key of the one before."""
    size = size or BATCH
    batch = fetch(rows, size)
    while batch:
        yield from batch
        if len(batch) < size:
            return
        batch = fetch(rows.filter(span(key_of(batch[-1]), inclusive=False)), size)


def exists(rows):
    """Whether the queryset ``rows`` holds a row: the first one in key order,
    found by walking the index (``QuerySet.exists()`` leaves the plan to the
    database, which may read the whole range to find one row)."""
    return bool(fetch(rows.values("key"), 1))


def count(rows, at_most):
    """How many rows the queryset ``rows`` holds, counting no further than
    ``at_most``: the first ``at_most`` rows in key order are counted, however
    many follow."""
    with index_walk(rows.db):
        return rows.order_by("key_prefix").values("pk")[:at_most].count()


@contextmanager
def index_walk(using):
    """Plan every statement run inside on database ``using`` as a walk of the
    index its ``ORDER BY`` names, whatever the table's statistics say.

    On PostgreSQL each statement is sent as ``SET LOCAL enable_sort = off;
    <statement>; SET LOCAL enable_sort TO DEFAULT`` (one simple query, one
    round trip; outside a transaction the three run as one implicit
    transaction, inside one the last restores the setting), and its rows are
    read from the second result. A plan that must sort is then priced out,
    so the planner reads the index in order and stops at the ``LIMIT``. The
    statements must be plain reads on a client-side-binding cursor (Django's
    default for psycopg). Elsewhere this does nothing.
    """
    connection = connections[using]
    if connection.vendor != "postgresql":
        yield
        return
    with connection.execute_wrapper(_without_sort):
        yield


def _without_sort(execute, sql, params, many, context):
    result = execute(f"SET LOCAL enable_sort = off; {sql}; SET LOCAL enable_sort TO DEFAULT", params, many, context)
    context["cursor"].nextset()
    return result
