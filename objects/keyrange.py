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
``span``) and reads it in key order here (``fetch``, ``walk``): the listing API
(pages, streams, the ``delimiter=/`` skip-scan), the admin's folder pages,
counts and finds, ``writing.delete_tree``, the similarity search's candidate
scans, and the S3 listings. The rule of order and the shape of the query live
in this module alone.
"""
from django.db.models import Q

from . import keys

BATCH = 1000


def span(lower=None, upper=None, *, inclusive=True):
    """The keys ``k`` with ``lower <= k < upper`` (``lower < k`` when not
    ``inclusive``) as a condition on ``key_prefix`` and ``key``; a bound of
    None is open.

    A bound of at most ``PREFIX_CHARS`` characters is decided on
    ``key_prefix`` alone (comparing a key's first characters with a shorter
    string gives the same answer as comparing the key); a longer one adds a
    comparison of the whole key.
    """
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


def under(prefix, after=None):
    """The keys that start with ``prefix`` (any string: a directory such as
    ``/a/b/``, or a partial key such as ``/photos/ca``), only those past
    ``after`` when it is given (keyset paging: the last key of the previous
    page, or anything before ``prefix`` to start at the beginning)."""
    upper = keys.prefix_upper_bound(prefix)
    if after is not None and after >= prefix:
        return span(after, upper, inclusive=False)
    return span(prefix, upper)


def key_of(row):
    """The key of a row as ``fetch`` returns it: a model instance or a dict
    from ``values()`` that includes ``key``."""
    return row["key"] if isinstance(row, dict) else row.key


def fetch(rows, size=None):
    """The first ``size`` rows of the queryset ``rows`` in bytewise key order
    (all of them when ``size`` is None), as a list.

    ``rows`` is narrowed by ``under`` or ``span`` (and any other filter) and
    yields model instances or ``values()`` dicts that include ``key``. The
    next page is ``rows.filter(span(key_of(last), inclusive=False))``: keyset
    continuation, never OFFSET.
    """
    ordered = rows.order_by("key_prefix", "key")
    return list(ordered if size is None else ordered[:size])


def count(rows, at_most):
    """How many rows the queryset ``rows`` holds, counting no further than
    ``at_most``: the first ``at_most`` rows in key order are counted, however
    many follow."""
    return rows.order_by("key_prefix").values("pk")[:at_most].count()


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
