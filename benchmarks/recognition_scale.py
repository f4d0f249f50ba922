"""
``_duplicates`` and ``_search`` by the built-in features at scale (run by
hand; results in benchmarks/README.md and docs/recognition.md).

    flock -x /tmp/istore-bench.lock .venv/bin/python benchmarks/recognition_scale.py --items 100000

Computing real features for 100k pictures takes an hour of CPU, so the
features here are synthetic and written straight into the tables the
recognition app fills (``recognition.models.Features`` and the search side
table's ``_pdq`` and ``_embedding`` rows), for items registered through
``objects.writing.upsert_many``:

- PDQ: uniformly random 256-bit hashes (real PDQ hashes of different
  pictures are close to that: the closest pair of different photographs in
  the robustness set is 80 bits apart), plus ``--groups`` planted groups of
  4 copies of a base hash, each with 4..64 random bits flipped (within the
  default threshold of 76 bits of the base, so each group must come back
  whole);
- embeddings: 1280 numbers, clustered like real ones (2000 Gaussian
  centres; a copy is its base plus noise at angular distance ~0.02).

Then through Django's full request stack (test client, in process, SQLite):

- ``POST /scale/N/_duplicates`` by ``_pdq`` and by ``_embedding``: wall and
  CPU time, the process's peak resident memory growth during the call
  (``/proc/self/clear_refs``), and how many planted groups came back whole;
- ``_create_index`` by ``_embedding``, then ``_search`` by ``_embedding`` with
  ``vector`` queries (fresh draws near the data): p50/p95 latency and
  recall@10 against an exact brute force (float32).
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup(data_dir):
    os.environ.setdefault("SECRET_KEY", "istore-benchmark-secret-key-0123456789-abcdefghijklmnop")
    os.environ["ISTORE_DATA_DIR"] = str(data_dir)
    os.environ["ISTORE_ALLOW_ANONYMOUS_WRITES"] = "true"
    # The verbs run in the request, timed as such (not handed to a job however long they take).
    os.environ["ISTORE_JOBS_SYNC_SECONDS"] = "1e9"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "istore_site.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def synthetic(n, groups, seed=7):
    """(pdq codes (n, 32) uint8, unit embeddings (n, 1280) float32, planted groups [[row, ...]])."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    centres = rng.standard_normal((2000, 1280), dtype=np.float32)
    vectors = np.empty((n, 1280), dtype=np.float32)  # filled in chunks: no n x 1280 temporaries
    for start in range(0, n, 50000):
        stop = min(n, start + 50000)
        vectors[start:stop] = centres[rng.integers(0, 2000, stop - start)]
        vectors[start:stop] += 0.7 * rng.standard_normal((stop - start, 1280), dtype=np.float32)
    planted = []
    rows = rng.permutation(n)[: groups * 4].reshape(groups, 4)
    for group in rows:
        base = group[0]
        for copy in group[1:]:
            bits = np.unpackbits(codes[base])
            flip = rng.choice(256, size=rng.integers(4, 65), replace=False)
            bits[flip] ^= 1
            codes[copy] = np.packbits(bits)
            vectors[copy] = vectors[base] + 0.15 * rng.standard_normal(1280, dtype=np.float32)
        planted.append(sorted(group.tolist()))
    for start in range(0, n, 50000):
        vectors[start : start + 50000] /= np.linalg.norm(vectors[start : start + 50000], axis=1, keepdims=True)
    return codes, vectors.astype(np.float32), planted


def populate(directory, codes, vectors, batch=2000):
    from django.db import transaction

    from objects import writing
    from objects.models import Item
    from processing import features
    from recognition.models import Features
    from objects.keys import PREFIX_CHARS
    from search.models import Vector

    if Vector.objects.filter(key__startswith=directory, field="_pdq").count() == len(codes):
        print(f"  {directory}: already there", flush=True)
        return
    writing.delete_tree(directory)
    start = time.perf_counter()
    for first in range(0, len(codes), batch):
        keys = [f"{directory}{i:07d}.jpg" for i in range(first, min(len(codes), first + batch))]
        writing.upsert_many([(key, {}) for key in keys])
        ids = dict(Item.objects.filter(key__in=keys).values_list("key", "id"))
        with transaction.atomic():
            Features.objects.bulk_create([
                Features(item_id=ids[key], version=features.VERSION, pdq=codes[first + n].tobytes(),
                         pdq_mirror=np.random.default_rng(first + n).integers(0, 256, 32, np.uint8).tobytes(),
                         phash=b"\0" * 8, phash_mirror=b"\0" * 8, pdq_quality=100, labels=[])
                for n, key in enumerate(keys)
            ])
            Vector.objects.bulk_create([
                Vector(item_id=ids[key], field=field, dim=dim, key=key, key_prefix=key[:PREFIX_CHARS], vector=blob)
                for n, key in enumerate(keys)
                for field, dim, blob in (("_pdq", 256, codes[first + n].tobytes()),
                                         ("_embedding", 1280, vectors[first + n].tobytes()))
            ])
    print(f"  {directory}: {len(codes)} items in {time.perf_counter() - start:.0f} s", flush=True)


def peak_rss_reset():
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def peak_rss_mib():
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def current_rss_mib():
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def timed_duplicates(client, directory, by, planted, offset_keys):
    peak_rss_reset()
    before = current_rss_mib()
    wall, cpu = time.perf_counter(), time.process_time()
    response = client.post(directory + "_duplicates", json.dumps({"by": by}), content_type="application/json")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert response.status_code == 200, response.content[:300]
    groups = {tuple(group) for group in response.json()["groups"]}
    whole = sum(1 for group in planted if tuple(offset_keys[i] for i in group) in groups)
    print(f"| `_duplicates` by {by} | {len(offset_keys):,} | {wall:.1f} | {cpu:.1f} | "
          f"{peak_rss_mib() - before:.0f} | {whole}/{len(planted)} | {len(groups)} |", flush=True)


def search_figures(client, directory, vectors, queries):
    wall, cpu = time.perf_counter(), time.process_time()
    response = client.post(directory + "_create_index", json.dumps({"similar": {"by": "_embedding"}}),
                           content_type="application/json")
    assert response.status_code == 201, response.content[:300]
    print(f"_create_index by _embedding: {time.perf_counter() - wall:.0f} s wall, "
          f"{time.process_time() - cpu:.0f} s CPU", flush=True)
    latencies, hits = [], 0
    for query in queries:
        body = json.dumps({"similar": {"vector": query.tolist(), "by": "_embedding", "limit": 10}})
        start = time.perf_counter()
        response = client.post(directory + "_search", body, content_type="application/json")
        latencies.append((time.perf_counter() - start) * 1000)
        got = {entry["_filepath"] for entry in response.json()}
        want = np.argsort(-(vectors @ query.astype(np.float32)))[:10]  # exact (float32: 1M x 1280 fits)
        hits += len(got & {f"{directory}{i:07d}.jpg" for i in want.tolist()})
    latencies.sort()
    return statistics.median(latencies), latencies[int(0.95 * (len(latencies) - 1))], hits / (10 * len(queries))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100000)
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--data-dir", default="/tmp/istore-scale")
    parser.add_argument("--skip", default="", help="comma-separated: duplicates,search")
    parser.add_argument("--by", default="_pdq,_embedding", help="the features _duplicates is timed with")
    parser.add_argument("--index-dtype", default="", help="ISTORE_SEARCH_INDEX_DTYPE for _create_index (f32, f16, i8)")
    args = parser.parse_args()
    if args.index_dtype:
        os.environ["ISTORE_SEARCH_INDEX_DTYPE"] = args.index_dtype
    setup(args.data_dir)
    from django.test import Client

    client = Client(HTTP_HOST="localhost")
    directory = f"/scale/{args.items}/"
    codes, vectors, planted = synthetic(args.items, args.groups)
    populate(directory, codes, vectors)
    keys = [f"{directory}{i:07d}.jpg" for i in range(args.items)]
    skip = set(args.skip.split(","))
    if "duplicates" not in skip:
        print("| verb | items | wall s | CPU s | peak RSS growth MiB | planted groups whole | groups |")
        print("|---|---|---|---|---|---|---|")
        for by in args.by.split(","):
            timed_duplicates(client, directory, by, planted, keys)
    if "search" not in skip:
        rng = np.random.default_rng(11)
        picks = rng.integers(0, args.items, args.queries)
        queries = vectors[picks] + 0.02 * rng.standard_normal((args.queries, 1280), dtype=np.float32)
        p50, p95, recall = search_figures(client, directory, vectors, queries)
        print(f"\n_search by _embedding over {args.items:,}: p50 {p50:.1f} ms, p95 {p95:.1f} ms, "
              f"recall@10 {recall:.4f} ({args.queries} queries); max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
