"""
Groups of near-duplicates under a directory (``POST {dir}/_duplicates``).

Two items are near-duplicates when their distance by the chosen feature is at
most ``max_distance`` (for the hashes, the nearer of the picture's hash and
its mirror image's); a group is a connected set of such pairs (union-find),
so a chain of close copies lands in one group. Items whose features are not
computed yet are not considered.

Finding the pairs:

- up to ``EXACT_MAX`` items, every pair is compared exactly, in blocks (bit
  counts per 64-bit word for the hashes, one matrix product for embeddings);
- above, an HNSW graph of the directory's vectors is built in memory with
  usearch (binary Hamming for the hashes, cosine over 8-bit quantised
  embeddings, each row rescaled to use the 8 bits)
  and each item asks it for its ``NEIGHBOURS`` nearest (and the hashes their
  mirror's); the candidate pairs within the threshold are then checked
  exactly. An item with more than NEIGHBOURS copies still joins their group
  through the copies it does find.

Default thresholds (``DEFAULT_MAX_DISTANCE``) come from
``benchmarks/recognition_robustness.py`` (docs/recognition.md has the
figures).
"""
import numpy as np
from django.conf import settings

from objects.models import Item
from search import exact, spaces

from . import store
from .models import Features

DEFAULT_MAX_DISTANCE = {store.PDQ: 0.30, store.PHASH: 0.19, store.EMBEDDING: 0.12}
EXACT_MAX = 4096
BLOCK = 256
NEIGHBOURS = 32
THREADS = 1  # one core for a request or job; the other serves the rest


class _UnionFind:
    def __init__(self, size):
        self.parent = np.arange(size)

    def find(self, i):
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, i, j):
        a, b = self.find(i), self.find(j)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def _mirrors(field, item_ids):
    """The mirror-image hashes of the items, row for row (None for the embedding)."""
    column = {store.PHASH: "phash_mirror", store.PDQ: "pdq_mirror"}.get(field)
    if column is None:
        return None
    found = {}
    ids = [int(i) for i in item_ids]
    for start in range(0, len(ids), 500):
        found.update(Features.objects.filter(item_id__in=ids[start : start + 500]).values_list("item_id", column))
    width = store.DIMS[field] // 8
    return np.stack([np.frombuffer(bytes(found.get(i) or b"\0" * width), np.uint8) for i in ids])


def _exact_pairs(space, matrix, mirrors, max_distance, progress):
    """(i, j) index pairs, i < j, within max_distance: every pair compared."""
    n = len(matrix)
    pairs = []
    if space is spaces.HAMMING:
        words = np.ascontiguousarray(matrix).view(np.uint64)
        mirror_words = np.ascontiguousarray(mirrors).view(np.uint64)
        limit = int(max_distance * matrix.shape[1] * 8)
    for start in range(0, n, BLOCK):
        stop = min(n, start + BLOCK)
        if space is spaces.HAMMING:
            counts = np.zeros((stop - start, n), np.uint16)
            flipped = np.zeros((stop - start, n), np.uint16)
            for w in range(words.shape[1]):
                counts += np.bitwise_count(words[start:stop, w : w + 1] ^ words[None, :, w])
                flipped += np.bitwise_count(mirror_words[start:stop, w : w + 1] ^ words[None, :, w])
            close = np.minimum(counts, flipped) <= limit
        else:
            cosine = matrix[start:stop].astype(np.float32) @ matrix.T.astype(np.float32)
            close = 0.5 - 0.5 * cosine <= max_distance + 1e-6
        rows, cols = np.nonzero(close)
        rows += start
        keep = rows < cols
        pairs.extend(zip(rows[keep].tolist(), cols[keep].tolist()))
        progress(stop, n)
    return pairs


def _close(space, matrix, mirrors, rows, cols, max_distance):
    """Which of the (rows[k], cols[k]) pairs are within ``max_distance``, exactly
    (as ``_exact_pairs`` decides), for arrays of index pairs."""
    if space is spaces.HAMMING:
        limit = int(max_distance * matrix.shape[1] * 8)
        counts = np.bitwise_count(matrix[rows] ^ matrix[cols]).sum(axis=1, dtype=np.int32)
        flipped = np.bitwise_count(mirrors[rows] ^ matrix[cols]).sum(axis=1, dtype=np.int32)
        return np.minimum(counts, flipped) <= limit
    cosine = np.einsum("ij,ij->i", matrix[rows].astype(np.float32), matrix[cols].astype(np.float32))
    return 0.5 - 0.5 * cosine <= max_distance + 1e-6


def _graph_pairs(space, dim, matrix, mirrors, max_distance, progress):
    """Candidate pairs from an in-memory HNSW graph, checked exactly (see the module docstring)."""
    from usearch.index import Index

    params = space.index_params(dim)
    if space is spaces.ANGULAR:
        # Embeddings go into the graph as 8-bit integers: 5x faster to build and
        # search than floats here, a quarter of the memory, and the candidates it
        # gives are checked exactly afterwards. Each row rescaled as an i8 search
        # index's (spaces.Angular.index_rows): truncated as they are, the numbers
        # of a 1280-long unit vector keep a bit or two.
        params = dict(params, dtype="i8", metric="cos")
    index = Index(ndim=params["ndim"], metric=params["metric"], dtype=params["dtype"],
                  connectivity=params["connectivity"], expansion_add=params["expansion_add"])
    n = len(matrix)
    labels = np.arange(n, dtype=np.uint64)

    def added(done: int, total: int) -> bool:  # usearch checks the annotations
        progress(done // 2, n)
        return True

    index.add(labels, space.index_rows(matrix, params), threads=THREADS, progress=added)
    index.expansion_search = max(settings.ISTORE_SEARCH_EXPANSION, 2 * NEIGHBOURS)
    count = min(n, NEIGHBOURS + 1)
    queries = [space.index_rows(rows, params) for rows in ([matrix] if mirrors is None else [matrix, mirrors])]
    # Each item's neighbours (and its mirror's), as one (n, k) array of row numbers.
    neighbours = np.hstack([index.search(query, count, threads=THREADS).keys for query in queries])
    found = []
    # Rows per block: the candidate pairs' vectors of a block stay within ~100 MB.
    step = max(1, (50 << 20) // (neighbours.shape[1] * matrix.shape[1] * matrix.itemsize))
    for start in range(0, n, step):
        stop = min(n, start + step)
        cols = neighbours[start:stop].ravel().astype(np.int64)
        rows = np.repeat(np.arange(start, stop, dtype=np.int64), neighbours.shape[1])
        keep = (cols >= 0) & (cols < n) & (cols != rows)  # a missing neighbour is a huge label
        rows, cols = rows[keep], cols[keep]
        close = _close(space, matrix, mirrors, rows, cols, max_distance)
        low, high = np.minimum(rows[close], cols[close]), np.maximum(rows[close], cols[close])
        found.append(low * n + high)
        progress(n // 2 + stop // 2, n)
    unique = np.unique(np.concatenate(found)) if found else np.array([], dtype=np.int64)
    return list(zip((unique // n).tolist(), (unique % n).tolist()))


def find_groups(directory, field, max_distance, progress=None):
    """``[[key, ...], ...]``: the near-duplicate groups under ``directory`` by
    ``field``, each in key order, groups ordered by their first key."""
    progress = progress or (lambda done, total: None)
    space, dim = spaces.space_of(field), store.DIMS[field]
    packed = exact.fetch(exact.rows_under(field, dim, directory), dim, space=space)
    n = len(packed)
    progress(0, n)
    if n < 2:
        progress(n, n)
        return []
    mirrors = _mirrors(field, packed.item_ids)
    finder = _exact_pairs if n <= EXACT_MAX else _graph_pairs
    if finder is _exact_pairs:
        pairs = finder(space, packed.matrix, mirrors, max_distance, progress)
    else:
        pairs = finder(space, dim, packed.matrix, mirrors, max_distance, progress)
    sets = _UnionFind(n)
    for i, j in pairs:
        sets.union(i, j)
    members = {}
    for i in {index for pair in pairs for index in pair}:
        members.setdefault(sets.find(i), []).append(int(packed.item_ids[i]))
    item_ids = [item_id for group in members.values() for item_id in group]
    keys = {}
    for start in range(0, len(item_ids), 500):
        keys.update(Item.objects.filter(id__in=item_ids[start : start + 500]).values_list("id", "key"))
    groups = [sorted(keys[i] for i in group if i in keys) for group in members.values()]  # bytewise, as above
    groups = [group for group in groups if len(group) > 1]
    return sorted(groups)  # str order is UTF-8 byte order: keys sort bytewise
