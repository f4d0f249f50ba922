"""
Compare ANN libraries (usearch, faiss-cpu, hnswlib) on this machine: build
time, single-query latency and recall@10 against exact search, all on unit
float32 vectors with inner-product (= cosine) distance, the way istore's
search/ann.py uses them. Run by hand:

    .venv/bin/pip install faiss-cpu hnswlib     # the comparison only
    .venv/bin/python benchmarks/ann_libraries.py --n 100000 --dim 128
    .venv/bin/python benchmarks/ann_libraries.py --n 1000000 --dim 128 --libs usearch,faiss

Data (--data): "clustered" (default) is a Gaussian mixture like real
embeddings (1000 centres, noise sigma 0.5 per unit-variance centre
coordinate); "uniform" is isotropic Gaussian noise, the worst case for every
graph index. Queries are fresh draws from the same distribution.
"""
import argparse
import gc
import time

import numpy as np


def make_data(n, dim, kind, seed, centres=None):
    rng = np.random.default_rng(seed)
    if kind == "uniform":
        x = rng.standard_normal((n, dim), dtype=np.float32)
    else:
        if centres is None:
            centres = np.random.default_rng(12345).standard_normal((1000, dim), dtype=np.float32)
        labels = rng.integers(0, len(centres), n)
        x = centres[labels] + 0.5 * rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def exact_topk(data, queries, k):
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), 100):
        sims = queries[start:start + 100] @ data.T
        part = np.argpartition(-sims, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1)
        out[start:start + 100] = np.take_along_axis(part, order, axis=1)
    return out


def recall(found, truth):
    return np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)])


def time_queries(search_one, queries):
    found, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        found.append(search_one(q))
        times.append(time.perf_counter() - t0)
    times = np.array(times) * 1000
    return found, float(np.median(times)), float(np.percentile(times, 99))


def bench_usearch(data, queries, k, efs, M, efc, dtype):
    from usearch.index import Index

    ids = np.arange(len(data), dtype=np.uint64)
    t0 = time.perf_counter()
    index = Index(ndim=data.shape[1], metric="ip", dtype=dtype, connectivity=M, expansion_add=efc)
    index.add(ids, data, threads=0)
    build = time.perf_counter() - t0
    rows = []
    for ef in efs:
        index.expansion_search = ef
        found, p50, p99 = time_queries(lambda q: index.search(q, k, threads=1).keys, queries)
        rows.append((f"usearch {dtype} M={M}", ef, build, p50, p99, found, index.memory_usage / 2**20))
    return rows


def bench_faiss(data, queries, k, efs, M, efc):
    import faiss

    faiss.omp_set_num_threads(0 or 2)
    t0 = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(data.shape[1], M, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = efc
    index = faiss.IndexIDMap(hnsw)
    index.add_with_ids(data, np.arange(len(data), dtype=np.int64))
    build = time.perf_counter() - t0
    faiss.omp_set_num_threads(1)
    rows = []
    for ef in efs:
        hnsw.hnsw.efSearch = ef
        found, p50, p99 = time_queries(lambda q: index.search(q[None, :], k)[1][0], queries)
        size = faiss.serialize_index(index).nbytes / 2**20
        rows.append((f"faiss HNSWFlat M={M}", ef, build, p50, p99, found, size))
    faiss.omp_set_num_threads(2)
    return rows


def bench_hnswlib(data, queries, k, efs, M, efc):
    import hnswlib

    t0 = time.perf_counter()
    index = hnswlib.Index(space="ip", dim=data.shape[1])
    index.init_index(max_elements=len(data), M=M, ef_construction=efc)
    index.add_items(data, np.arange(len(data)), num_threads=2)
    build = time.perf_counter() - t0
    index.set_num_threads(1)
    rows = []
    for ef in efs:
        index.set_ef(max(ef, k))
        found, p50, p99 = time_queries(lambda q: index.knn_query(q, k)[0][0], queries)
        rows.append((f"hnswlib M={M}", ef, build, p50, p99, found, None))
    return rows


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--data", choices=["clustered", "uniform"], default="clustered")
    parser.add_argument("--libs", default="usearch,faiss,hnswlib")
    parser.add_argument("--ef", default="32,64,128")
    parser.add_argument("--M", type=int, default=16)
    parser.add_argument("--efc", type=int, default=128)
    args = parser.parse_args()
    k = 10
    efs = [int(e) for e in args.ef.split(",")]
    data = make_data(args.n, args.dim, args.data, seed=1)
    queries = make_data(args.queries, args.dim, args.data, seed=2)
    truth = exact_topk(data, queries, k)
    print(f"n={args.n} dim={args.dim} data={args.data} queries={args.queries} "
          f"M={args.M} efConstruction={args.efc}")
    print(f"| library | ef | build s | query p50 ms | query p99 ms | recall@10 | index MiB |")
    print("|---|---|---|---|---|---|---|")
    for lib in args.libs.split(","):
        if lib == "usearch":
            rows = bench_usearch(data, queries, k, efs, args.M, args.efc, "f32")
        elif lib == "usearch-f16":
            rows = bench_usearch(data, queries, k, efs, args.M, args.efc, "f16")
        elif lib == "faiss":
            rows = bench_faiss(data, queries, k, efs, args.M, args.efc)
        elif lib == "hnswlib":
            rows = bench_hnswlib(data, queries, k, efs, args.M, args.efc)
        else:
            raise SystemExit(f"unknown library {lib}")
        for name, ef, build, p50, p99, found, size in rows:
            size = f"{size:.0f}" if size is not None else "—"
            print(f"| {name} | {ef} | {build:.1f} | {p50:.3f} | {p99:.3f} "
                  f"| {recall(found, truth):.4f} | {size} |",
                  flush=True)
        gc.collect()


if __name__ == "__main__":
    main()
