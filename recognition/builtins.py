"""
The built-in features as ``_search`` fields: ``_embedding`` (angular),
``_phash`` and ``_pdq`` (normalised Hamming, with the mirror image).

For ``"to": KEY`` the query rows come from the item's stored features, or are
computed on the spot when it has none yet (nothing is stored then: the
background computation does that). A hash query has two rows, the picture's
hash and its mirror image's, so a mirrored copy is found at the distance of
its mirror hash. ``"vector"`` may give the query directly: 1280 numbers for
``_embedding``, hex digits for ``_phash`` (16) and ``_pdq`` (64).
"""
import numpy as np

from objects.errors import ApiError
from processing.features import hashes
from search import spaces
from search.vectors import as_unit
from search.verbs import InvalidSearch

from . import store


def _no_vector(item, why):
    return InvalidSearch(f"The item {item.key!r} has no features to search with: {why}", code="no_vector")


def _material(item):
    """``{field: 2-D query rows}`` of the item, stored or computed now."""
    stored = store.current(item.id)
    if stored is not None and stored.error:
        raise _no_vector(item, stored.error)
    if stored is None:
        try:
            found, _ = store.compute(item)
        except ApiError as error:
            raise _no_vector(item, f"{error.code}: {error.detail}") from None
        phash, phash_mirror, pdq, pdq_mirror = (
            bytes.fromhex(found.phash), bytes.fromhex(found.phash_mirror),
            bytes.fromhex(found.pdq), bytes.fromhex(found.pdq_mirror),
        )
        embedding = as_unit(found.embedding.astype(np.float64).tolist())
    else:
        phash, phash_mirror, pdq, pdq_mirror = (
            bytes(stored.phash), bytes(stored.phash_mirror), bytes(stored.pdq), bytes(stored.pdq_mirror),
        )
        row = store.Vector.objects.filter(item_id=item.id, field=store.EMBEDDING).values_list("vector", flat=True)
        blob = row.first()
        embedding = np.frombuffer(bytes(blob), dtype=spaces.DTYPE).astype(np.float64) if blob else None
    codes = lambda *blobs: np.stack([np.frombuffer(b, dtype=np.uint8) for b in blobs])  # noqa: E731
    material = {store.PHASH: codes(phash, phash_mirror), store.PDQ: codes(pdq, pdq_mirror)}
    if embedding is not None:
        material[store.EMBEDDING] = embedding[None, :]
    return material


def query_rows(item, field):
    material = _material(item)
    if field not in material:
        raise _no_vector(item, "its embedding is all zeros (a blank picture)")
    return material[field]


def _parse_embedding(value):
    if not isinstance(value, list) or len(value) != store.DIMS[store.EMBEDDING]:
        raise InvalidSearch(f"'vector' for _embedding must be a list of {store.DIMS[store.EMBEDDING]} numbers.")
    unit = as_unit(value)
    if unit is None:
        raise InvalidSearch("'vector' must hold finite numbers, not all zeros.")
    return unit[None, :]


def _hash_parser(field):
    bits = store.DIMS[field]

    def parse(value):
        try:
            packed = hashes.to_bytes(value, bits)
        except ValueError:
            raise InvalidSearch(f"'vector' for {field} must be a {bits}-bit hash as {bits // 4} hex digits.") from None
        return np.frombuffer(packed, dtype=np.uint8)[None, :]

    return parse


def register():
    spaces.register(spaces.Builtin(store.EMBEDDING, spaces.ANGULAR, store.DIMS[store.EMBEDDING],
                                   query_rows, _parse_embedding))
    for field in (store.PHASH, store.PDQ):
        spaces.register(spaces.Builtin(field, spaces.HAMMING, store.DIMS[field], query_rows, _hash_parser(field)))
