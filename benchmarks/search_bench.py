"""
Similarity search benchmark (run by hand; see docs/search.md for results).

    .venv/bin/python benchmarks/search_bench.py --sizes 10000,100000 --index-sizes 100000
    .venv/bin/python benchmarks/search_bench.py --sizes 1000000 --index-sizes 1000000 --exact-queries 3

For each size N it registers N items under /bench/<data>-<dim>/<N>/ with a
`emb` vector of --dim numbers (through objects.writing.upsert_many, so the
search side table is maintained as in production; a directory already
filled is reused), then measures through the HTTP stack (Django's test
client, in process, no network):

- exact `_search` latency (no index): the first query of the process (it
  reads the directory's packed vectors into the per-process snapshot, or
  every query does when they exceed ISTORE_SEARCH_CACHE_BYTES), then p50 and
  p95 of the following ones;
- `_create_index` build time (search.ann.build, as the verb and the command);
- indexed `_search` latency, p50 and p95, and recall@10 against the true
  nearest neighbours (float64 numpy over the same vectors).

The database is SQLite under --data-dir unless DATABASE_URL is set.
Data: "clustered" (default, a Gaussian mixture like real embeddings) or
"uniform" (isotropic Gaussian, the worst case for graph indexes). Queries are
fresh draws from the same distribution.
"""
import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup(data_dir):
    os.environ.setdefault("SECRET_KEY", "istore-benchmark-secret-key-0123456789-abcdefghijklmnop")
    os.environ.setdefault("ISTORE_DATA_DIR", str(data_dir))
    os.environ["ISTORE_ALLOW_ANONYMOUS_WRITES"] = "true"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "istore_site.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def make_vectors(n, dim, kind, seed):
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        x = rng.standard_normal((n, dim), dtype=np.float32)
    else:
        centres = np.random.default_rng(12345).standard_normal((1000, dim), dtype=np.float32)
        x = centres[rng.integers(0, 1000, n)] + 0.5 * rng.standard_normal((n, dim), dtype=np.float32)
    return np.round(x, 4)


def populate(directory, vectors, batch=5000):
    from objects import writing
    from search.models import Vector

    existing = Vector.objects.filter(key__startswith=directory, field="emb").count()
    if existing == len(vectors):
        print(f"  {directory}: {existing} items already there", flush=True)
        return None
    if existing:
        writing.delete_tree(directory)
    t0 = time.perf_counter()
    for start in range(0, len(vectors), batch):
        chunk = vectors[start:start + batch]
        writing.upsert_many(
            [(f"{directory}{start + i:08d}", {"emb": v.tolist(), "n": start + i})
             for i, v in enumerate(chunk)],
            batch_size=1000,
        )
        if (start // batch) % 20 == 19:
            print(f"  {start + len(chunk)} items, {time.perf_counter() - t0:.0f} s", flush=True)
    elapsed = time.perf_counter() - t0
    print(f"  {directory}: wrote {len(vectors)} items in {elapsed:.1f} s", flush=True)
    return elapsed


def truth(vectors, queries, k=10):
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    found = []
    for q in queries:
        sims = unit @ (q / np.linalg.norm(q))
        part = np.argpartition(-sims, k)[:k]
        found.append(set(part.tolist()))
    return found


def timed_searches(client, directory, queries, limit=10):
    times, answers = [], []
    for q in queries:
        body = json.dumps({"similar": {"vector": q.tolist(), "by": "emb", "limit": limit}})
        t0 = time.perf_counter()
        response = client.post(directory + "_search", body, content_type="application/json")
        times.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, response.content[:300]
        answers.append({item["metadata"]["n"] for item in response.json()})
    return times, answers


def pct(values, p):
    return float(np.percentile(values, p))


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="directory sizes for exact search")
    parser.add_argument("--index-sizes", default="100000", help="sizes (among --sizes) to index")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--data", choices=["clustered", "uniform"], default="clustered")
    parser.add_argument("--exact-queries", type=int, default=20)
    parser.add_argument("--index-queries", type=int, default=200)
    parser.add_argument("--data-dir", default="/tmp/istore-search-bench")
    parser.add_argument("--cache-bytes", type=int, help="ISTORE_SEARCH_CACHE_BYTES for this run")
    args = parser.parse_args()
    setup(args.data_dir)
    from django.conf import settings

    if args.cache_bytes is not None:
        settings.ISTORE_SEARCH_CACHE_BYTES = args.cache_bytes

    from django.test import Client

    from search import ann, exact

    client = Client()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    index_sizes = {int(s) for s in args.index_sizes.split(",") if s}
    rows = []
    for n in sorted(set(sizes) | index_sizes):
        directory = f"/bench/{args.data}-{args.dim}/{n}/"
        vectors = make_vectors(n, args.dim, args.data, seed=n)
        populate(directory, vectors)
        count = max(args.exact_queries, args.index_queries) + 1
        queries = make_vectors(count, args.dim, args.data, seed=n + 1)
        want = truth(vectors, queries[1:])
        row = {"n": n, "dim": args.dim, "data": args.data}
        from search.models import VectorIndex

        for record in VectorIndex.objects.filter(dir=directory):
            ann.drop(record)
        exact.clear_cache()
        row["exact_cold"] = timed_searches(client, directory, queries[:1])[0][0]  # reads the snapshot
        times, answers = timed_searches(client, directory, queries[1:args.exact_queries + 1])
        row["exact_p50"], row["exact_p95"] = statistics.median(times), pct(times, 95)
        row["exact_recall"] = np.mean([len(a & w) / 10 for a, w in zip(answers, want)])
        print(f"  exact   n={n}: first {row['exact_cold']:.0f} ms, then p50 {row['exact_p50']:.1f} ms, "
              f"p95 {row['exact_p95']:.1f} ms, recall@10 {row['exact_recall']:.4f}", flush=True)
        if n in index_sizes:
            t0 = time.perf_counter()
            ann.build(directory, "emb")
            row["build_s"] = time.perf_counter() - t0
            print(f"  build   n={n}: {row['build_s']:.1f} s", flush=True)
            timed_searches(client, directory, queries[:1])  # loads the index
            times, answers = timed_searches(client, directory, queries[1:args.index_queries + 1])
            row["ann_p50"], row["ann_p95"] = statistics.median(times), pct(times, 95)
            row["ann_recall"] = float(np.mean([len(a & w) / 10 for a, w in zip(answers, want)]))
            print(f"  indexed n={n}: p50 {row['ann_p50']:.2f} ms, p95 {row['ann_p95']:.2f} ms, "
                  f"recall@10 {row['ann_recall']:.4f}", flush=True)
        rows.append(row)

    print()
    print("| items | dim | data | exact first ms | exact p50 ms | exact p95 ms | build s | indexed p50 ms "
          "| indexed p95 ms | indexed recall@10 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        def f(name, fmt):
            return format(r[name], fmt) if name in r else "—"

        print(f"| {r['n']:,} | {r['dim']} | {r['data']} | {f('exact_cold', '.0f')} | {f('exact_p50', '.1f')} "
              f"| {f('exact_p95', '.1f')} | {f('build_s', '.1f')} | {f('ann_p50', '.2f')} "
              f"| {f('ann_p95', '.2f')} | {f('ann_recall', '.4f')} |")


if __name__ == "__main__":
    main()
