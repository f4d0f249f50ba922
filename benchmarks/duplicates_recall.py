"""
How many of the near-duplicate pairs the graph path of ``_duplicates`` finds
(``recognition.duplicates._graph_pairs``, used above ``EXACT_MAX`` items),
against every pair compared exactly (``_exact_pairs``), on synthetic
embeddings. Run by hand; results in benchmarks/README.md:

    .venv/bin/python benchmarks/duplicates_recall.py [--items 6000] [--pairs 300]

The embeddings: 1280 numbers, non-negative-heavy and sharing a mean
direction as CNN features do, unit length; ``--pairs`` of them get a copy
(the base plus noise) near the default threshold of 0.12. Prints both pair
counts, the graph's recall and the time of each.
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "istore_site.settings")
os.environ.setdefault("SECRET_KEY", "bench-" + "x" * 50)
os.environ.setdefault("ISTORE_DATA_DIR", tempfile.mkdtemp(prefix="istore-duplicates-"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=6000)
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--max-distance", type=float, default=0.12)
    args = parser.parse_args()
    import django

    django.setup()
    import numpy as np

    from recognition import duplicates
    from search import spaces

    rng = np.random.default_rng(1)
    base = np.abs(rng.normal(size=(args.items, args.dim))) + 0.5 * rng.normal(size=(1, args.dim))
    chosen = rng.choice(args.items, 2 * args.pairs, replace=False)
    for original, copy in zip(chosen[::2], chosen[1::2]):
        base[copy] = base[original] + 0.35 * np.abs(base[original]).mean() * rng.normal(size=args.dim)
    matrix = (base / np.linalg.norm(base, axis=1, keepdims=True)).astype(np.float32)

    def quiet(done, total):
        pass

    started = time.perf_counter()
    exact = set(duplicates._exact_pairs(spaces.ANGULAR, matrix, None, args.max_distance, quiet))
    exact_seconds = time.perf_counter() - started
    started = time.perf_counter()
    graph = set(duplicates._graph_pairs(spaces.ANGULAR, args.dim, matrix, None, args.max_distance, quiet))
    graph_seconds = time.perf_counter() - started
    print(f"{args.items} items: exact {len(exact)} pairs in {exact_seconds:.1f} s, graph {len(graph)} pairs in "
          f"{graph_seconds:.1f} s, recall {len(graph & exact) / max(1, len(exact)):.4f}, "
          f"{len(graph - exact)} not in the exact set")


if __name__ == "__main__":
    main()
