"""
How the vectors of a field are packed and compared: its space.

Every ``search.models.Vector`` row is one (item, field) vector; the field
decides how its blob reads and what "near" means:

- ``ANGULAR`` (every metadata field, and the built-in ``_embedding``): unit
  float32 vectors, distance 0.5 - 0.5·cos θ; the ANN index is usearch's inner
  product over them.
- ``Hamming(bits)`` (the built-in ``_phash``, ``_pdq``): packed bit strings,
  distance = differing bits / bits (normalised Hamming, 0..1); the ANN index
  is usearch's binary ``hamming`` metric over ``b1`` vectors, 1 bit a bit.

A query is a matrix of one or more rows (a picture's hash and its mirror
image's, say): an item's distance is its distance to the nearest row.

Built-in fields are registered by the app that computes them
(``register``), with the function that gives the query rows of an item for
``"to"``. Their rows are written by that app, never from metadata: a metadata
field of the same name is not a vector (``search.vectors.extract`` skips it).
"""
from dataclasses import dataclass
from typing import Callable

import numpy as np
from django.conf import settings

DTYPE = np.dtype("<f4")
# float32 dot products of unit vectors are accurate to about dim · 2^-24; rows
# that close to the limit-th best are re-scored in float64 before cutting.
TOLERANCE_PER_DIM = 1.2e-7


class Angular:
    """Unit float32 vectors; distance 0.5 - 0.5·cos θ."""

    name = "angular"
    dtype = DTYPE

    def width(self, dim):
        """Array columns of one row of ``dim`` numbers."""
        return dim

    def similarity(self, matrix, queries):
        """A float32 score per row, higher is nearer (the shortlist pass)."""
        # vecdot: one SIMD pass per row, no BLAS thread pool (whose start-up costs
        # more than the product itself on a busy host) and the same sums every time.
        scores = np.vecdot(matrix, queries[0].astype(DTYPE))
        for query in queries[1:]:
            scores = np.maximum(scores, np.vecdot(matrix, query.astype(DTYPE)))
        return scores

    def tolerance(self, dim):
        return TOLERANCE_PER_DIM * dim

    def distances(self, matrix, queries):
        """Distances in float64 from each row to the nearest query row."""
        rows = matrix.astype(np.float64)
        norms = np.sqrt(np.vecdot(rows, rows))
        best = None
        for query in queries:
            query = query.astype(np.float64)
            cosine = np.vecdot(rows, query) / (norms * np.sqrt(query @ query))
            distance = np.clip(0.5 - 0.5 * cosine, 0.0, 1.0)
            best = distance if best is None else np.minimum(best, distance)
        return best

    def index_params(self, dim):
        dtype = settings.ISTORE_SEARCH_INDEX_DTYPE
        return {
            "ndim": dim,
            # Rows are unit vectors: inner product is cosine. i8 rows are
            # rescaled (index_rows), so there usearch divides by the norms.
            "metric": "cos" if dtype == "i8" else "ip",
            "dtype": dtype,
            "connectivity": settings.ISTORE_SEARCH_CONNECTIVITY,
            "expansion_add": settings.ISTORE_SEARCH_EXPANSION_ADD,
        }

    def index_rows(self, matrix, params):
        """Rows as the index is given them.

        usearch turns a float into i8 as ``trunc(x * 127)``: the numbers of a
        1280-long unit vector (about 0.03 each) would keep one or two bits.
        So for an i8 index each row is scaled to a largest magnitude of 1
        (the cosine does not change) and rounded to the nearest 127th, nudged
        half a step outwards so that the truncation keeps that rounding.
        """
        if params.get("dtype") != "i8":
            return matrix
        rows = np.asarray(matrix, dtype=np.float32)
        peak = np.abs(rows).max(axis=1, keepdims=True)
        steps = np.rint(rows * (127 / np.where(peak > 0, peak, 1)))
        return ((steps + 0.5 * np.sign(steps)) / 127).astype(DTYPE)

    def index_query(self, query, params):
        return self.index_rows(query.astype(DTYPE)[None], params)[0]


class Hamming:
    """Packed bit strings of ``bits`` bits; distance = differing bits / bits."""

    name = "hamming"
    dtype = np.dtype(np.uint8)

    def width(self, dim):
        return dim // 8

    def _differing(self, matrix, queries):
        best = None
        for query in queries:
            count = np.bitwise_count(matrix ^ query.astype(np.uint8)).sum(axis=1, dtype=np.int32)
            best = count if best is None else np.minimum(best, count)
        return best

    def similarity(self, matrix, queries):
        return -self._differing(matrix, queries).astype(np.float32)

    def tolerance(self, dim):
        return 0.0  # bit counts are exact

    def distances(self, matrix, queries):
        return self._differing(matrix, queries).astype(np.float64) / (matrix.shape[1] * 8)

    def index_params(self, dim):
        return {
            "ndim": dim,
            "metric": "hamming",
            "dtype": "b1",
            "connectivity": settings.ISTORE_SEARCH_CONNECTIVITY,
            "expansion_add": settings.ISTORE_SEARCH_EXPANSION_ADD,
        }

    def index_rows(self, matrix, params):
        return matrix

    def index_query(self, query, params):
        return query.astype(np.uint8)


ANGULAR = Angular()
HAMMING = Hamming()


@dataclass(frozen=True)
class Builtin:
    """A field whose vectors an app computes itself."""

    field: str
    space: object
    dim: int
    # query_rows(item, field) -> 2-D array of query rows for "to": item, or raises ApiError
    query_rows: Callable
    # parse_vector(value) -> 2-D array of query rows for "vector": value, or raises ApiError
    parse_vector: Callable


BUILTIN = {}


def register(builtin):
    BUILTIN[builtin.field] = builtin


def space_of(field):
    builtin = BUILTIN.get(field)
    return builtin.space if builtin is not None else ANGULAR


def is_builtin(field):
    return field in BUILTIN
