"""
``POST {dir}/_duplicates``: the near-duplicate groups under a directory.

    {"by": "_pdq" | "_phash" | "_embedding", "max_distance": d}

``by`` defaults to ``_pdq`` and ``max_distance`` to that feature's default
threshold (``duplicates.DEFAULT_MAX_DISTANCE``). Answers ``{"groups": [[key,
...], ...]}``, each group in key order, groups by their first key.
"""
from objects.errors import BadRequest
from objects.verbs import verb
from search import exact

from . import duplicates, store

FIELDS = {"by", "max_distance"}


class InvalidDuplicates(BadRequest):
    code = "invalid_duplicates"


def parse(body):
    """``(field, max_distance)`` from the verb's body; InvalidDuplicates when bad."""
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise InvalidDuplicates(
            f"Unknown field(s): {', '.join(map(repr, unknown))}; the fields are 'by' and 'max_distance', "
            'for example {"by": "_pdq", "max_distance": 0.3}.'
        )
    by = body.get("by", store.PDQ)
    if by not in duplicates.DEFAULT_MAX_DISTANCE:
        raise InvalidDuplicates(f"'by' must be one of {', '.join(sorted(duplicates.DEFAULT_MAX_DISTANCE))}, not {by!r}.")
    max_distance = body.get("max_distance", duplicates.DEFAULT_MAX_DISTANCE[by])
    if type(max_distance) not in (int, float) or not 0 <= max_distance <= 1:
        raise InvalidDuplicates(f"'max_distance' must be a number from 0 to 1, not {max_distance!r}.")
    return by, float(max_distance)


# Items grouped per second by _duplicates above duplicates.EXACT_MAX items, by
# feature: 100,000 synthetic items on the two-core development machine under
# load (benchmarks/README.md), rounded down. They decide whether a call must
# run as a job (jobs.verbs) rather than outlive the worker's timeout.
DUPLICATES_RATE = {store.PDQ: 700, store.PHASH: 700, store.EMBEDDING: 400}


def plan_duplicates(body, directory):
    """Check a _duplicates body; the seconds grouping the directory's items will take."""
    by, _ = parse(body)
    return exact.rows_under(by, store.DIMS[by], directory).count() / DUPLICATES_RATE[by]


@verb("_duplicates", plan=plan_duplicates)
def find_duplicates(body, directory, progress=None):
    by, max_distance = parse(body)
    return 200, {"groups": duplicates.find_groups(directory, by, max_distance, progress)}
