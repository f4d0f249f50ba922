"""
``_search`` by ``_embedding`` at 100k and 1M items through HTTP (run by hand;
results in benchmarks/README.md and docs/recognition.md).

    # 1. the embeddings' model (real EfficientNet-Lite0 embeddings of the packaged photographs)
    mkdir -p /tmp/photo-wheels && .venv/bin/pip download --no-deps -d /tmp/photo-wheels \\
        scikit-image==0.26.0 scikit-learn==1.9.1 matplotlib==3.11.2
    D=/work/data/recog/s1m
    nice -n 19 .venv/bin/python benchmarks/embedding_search.py model --wheels /tmp/photo-wheels --data $D
    # 2. vectors, store (niced), then a server and a jobs worker on that store
    nice -n 19 .venv/bin/python benchmarks/embedding_search.py vectors populate --items 1000000 --data $D
    ISTORE_DATA_DIR=$D ISTORE_JOBS_WORKERS=0 ISTORE_SEARCH_INDEX_DTYPE=i8 ISTORE_S3_BIND= ISTORE_ACCESS_LOG= \\
        .venv/bin/gunicorn istore_site.wsgi -c gunicorn.conf.py -b 127.0.0.1:8700 &
    ISTORE_DATA_DIR=$D ISTORE_SEARCH_INDEX_DTYPE=i8 nice -n 19 .venv/bin/python manage.py jobs_worker &
    # 3. the index as a job, then the timed queries under the bench lock
    .venv/bin/python benchmarks/embedding_search.py build --items 1000000 --data $D --url http://127.0.0.1:8700
    flock -x /tmp/istore-bench.lock .venv/bin/python benchmarks/embedding_search.py query \\
        --items 1000000 --data $D --url http://127.0.0.1:8700

Computing real features for a million pictures would take five hours of CPU
here (17 ms each), so the vectors are synthetic, drawn from a model fitted to
real ones (``model``): the 893 embeddings istore computes for the 19
photographs scikit-image, scikit-learn and matplotlib ship, their halves,
8 altered copies of each and 20 random crops of each photograph. Those are
non-negative (EfficientNet's last activation clips at 0), half their numbers
are 0, their norms are 15.8 ± 2, and the directions of different
photographs lie 0.29..0.46 apart (angular distance, 1st to 95th percentile;
median 0.41). The model keeps that: each of the 1280 numbers is a Gaussian
latent through a ReLU (its mean and share of zeros fitted per number), raised
to the power 1.6 (real activations are spikier than a clipped Gaussian), with
the latents correlated along the 64 main directions of the real ones; items
are drawn around ``items / 50`` centres (a collection's events: photographs
of one scene lie ~0.11 apart, as the same photograph's crops and copies do
in the real set) and scaled to norms drawn from N(15.8, 2). Synthetic
distances (1st/5th/50th/95th percentile between different centres: 0.28,
0.33, 0.39, 0.43) are close to the real ones (0.29, 0.35, 0.41, 0.46).

``populate`` registers the items through ``objects.writing.upsert_many`` (the
write path of ``_bulk``) and writes their features into the tables
``recognition.store.save`` fills (a ``Features`` row and the ``_embedding``
and ``_pdq`` ``search.models.Vector`` rows, packed as it packs them), in
batches: ``store.save`` itself is one transaction per picture, an hour per
million here. ``build`` starts ``_create_index`` as a job (``Prefer:
respond-async``) and follows it; ``query`` sends 200 ``vector`` queries
(fresh draws from the model: new photographs of known scenes) one at a time
over one keep-alive connection, and compares each answer with the exact 10
nearest, computed batch-wise from the memory-mapped vectors.
"""
import argparse
import http.client
import json
import os
import statistics
import sys
import time
import urllib.parse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

DIM = 1280
POWER = 1.6
COMPONENTS = 64
# Latent scales: centres spread along the main directions and independently,
# items around their centre likewise (fitted by hand to the real distances).
CENTRE_MAIN, CENTRE_IID, ITEM_MAIN, ITEM_IID = 1.5, 2.5, 1.0, 1.2
PER_CENTRE = 50
CHUNK = 20000


def setup(data_dir):
    os.environ.setdefault("SECRET_KEY", "istore-benchmark-secret-key-0123456789-abcdefghijklmnop")
    os.environ["ISTORE_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "istore_site.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


# --- The model of real embeddings ----------------------------------------------


def real_embeddings(wheels, scratch):
    """The embeddings istore computes for the packaged photographs, their copies and crops."""
    import recognition_robustness as robustness
    from processing.features import extract

    scratch.mkdir(parents=True, exist_ok=True)
    items = [entry[4] for entry in robustness.build_set(wheels, scratch)]
    rng = np.random.default_rng(3)
    for name, im in robustness.photographs(wheels).items():
        w, h = im.size
        for k in range(20):
            share = rng.uniform(0.3, 0.8)
            cw, ch = int(w * share), int(h * share)
            x, y = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
            path = scratch / f"{Path(name).stem}.crop{k}.jpg"
            im.crop((x, y, x + cw, y + ch)).save(path, "JPEG", quality=90)
            items.append(str(path))
    return np.array([extract.of_file(path, "image/jpeg").embedding for path in items], np.float64)


def fit(raw):
    """Per number: the latent mean ``a`` and scale ``b`` whose ReLU has the
    real mean and share of zeros; the main directions ``U`` of the real
    (standardised) embeddings and their spreads ``lam``."""
    from statistics import NormalDist

    normal = NormalDist()
    zeros = np.clip((raw <= 1e-6).mean(0), 0.02, 0.98)
    t = np.array([normal.inv_cdf(1 - p) for p in zeros])
    mean = raw.mean(0)
    b = mean / (t * np.array([normal.cdf(x) for x in t]) + np.exp(-t * t / 2) / np.sqrt(2 * np.pi))
    z = (raw - mean) / (raw.std(0) + 1e-9)
    _, s, vt = np.linalg.svd(z - z.mean(0), full_matrices=False)
    return {"a": (t * b).astype(np.float32), "b": b.astype(np.float32),
            "U": vt[:COMPONENTS].T.astype(np.float32), "lam": (s[:COMPONENTS] / np.sqrt(len(z))).astype(np.float32)}


def latent(rng, model, n, main, iid):
    spread = rng.standard_normal((n, COMPONENTS), dtype=np.float32) * model["lam"]
    return main * (spread @ model["U"].T) + iid * rng.standard_normal((n, DIM), dtype=np.float32)


def draw(rng, model, centres, n):
    """``n`` embeddings (raw, as the model gives them) around random centres."""
    z = centres[rng.integers(0, len(centres), n)] + latent(rng, model, n, ITEM_MAIN, ITEM_IID)
    x = np.maximum(0, model["a"] + model["b"] * z) ** POWER
    norms = rng.normal(15.8, 2.0, (n, 1)).astype(np.float32).clip(10, 22)
    return x * (norms / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-6))


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype("<f4")


def distances_report(x, which):
    u = unit(x)
    d = 0.5 - 0.5 * (u @ u.T)
    iu = np.triu_indices(len(u), 1)
    same = which[iu[0]] == which[iu[1]] if which is not None else np.zeros(len(iu[0]), bool)
    d = d[iu]
    return np.percentile(d[~same], [1, 5, 50, 95]).round(3).tolist()


# --- Steps ---------------------------------------------------------------------


def step_model(args):
    setup(args.data)
    raw = real_embeddings(args.wheels, Path(args.data) / "photos")
    model = fit(raw)
    np.savez(Path(args.data) / "model.npz", **model)
    print(f"{len(raw)} real embeddings: norms {np.linalg.norm(raw, axis=1).mean():.1f} ± "
          f"{np.linalg.norm(raw, axis=1).std():.1f}, zeros {(raw <= 1e-6).mean():.2f}; "
          f"distances 1/5/50/95 % (all pairs) {distances_report(raw, None)}")
    rng = np.random.default_rng(1)
    centres = latent(rng, model, 300, CENTRE_MAIN, CENTRE_IID)
    which = rng.integers(0, 300, 1500)
    z = centres[which] + latent(rng, model, 1500, ITEM_MAIN, ITEM_IID)
    x = np.maximum(0, model["a"] + model["b"] * z) ** POWER
    print(f"synthetic: zeros {(x == 0).mean():.2f}; distances 1/5/50/95 % between centres "
          f"{distances_report(x, which)}")


def load_model(args):
    with np.load(Path(args.data) / "model.npz") as saved:
        return {name: saved[name] for name in saved.files}


def vectors_path(args):
    return Path(args.data) / f"vectors-{args.items}.f32"


def step_vectors(args):
    model = load_model(args)
    rng = np.random.default_rng(7)
    centres = latent(rng, model, max(args.items // PER_CENTRE, 1), CENTRE_MAIN, CENTRE_IID)
    out = np.lib.format.open_memmap(vectors_path(args), mode="w+", dtype="<f4", shape=(args.items, DIM))
    for start in range(0, args.items, CHUNK):
        stop = min(args.items, start + CHUNK)
        out[start:stop] = unit(draw(rng, model, centres, stop - start))
    out.flush()
    np.save(Path(args.data) / f"queries-{args.items}.npy", unit(draw(rng, model, centres, args.queries)))
    print(f"{args.items} vectors in {vectors_path(args)}")


def directory(args):
    return f"/emb/{args.items}/"


def step_populate(args):
    setup(args.data)
    from django.db import transaction

    from objects import writing
    from objects.keys import PREFIX_CHARS
    from objects.models import Item
    from processing import features
    from recognition.models import Features
    from search.models import Vector

    vectors = np.load(vectors_path(args), mmap_mode="r")
    base = directory(args)
    done = Vector.objects.filter(field="_embedding", key__startswith=base).count()
    rng = np.random.default_rng(13)
    start = time.perf_counter()
    for first in range(done - done % args.batch, args.items, args.batch):
        keys = [f"{base}{i:07d}.jpg" for i in range(first, min(args.items, first + args.batch))]
        writing.upsert_many([(key, {}) for key in keys])
        ids = dict(Item.objects.filter(key__in=keys).values_list("key", "id"))
        codes = rng.integers(0, 256, (len(keys), 32), np.uint8)
        with transaction.atomic():
            Features.objects.filter(item_id__in=ids.values()).delete()
            Vector.objects.filter(item_id__in=ids.values(), field__in=("_pdq", "_embedding")).delete()
            Features.objects.bulk_create([
                Features(item_id=ids[key], version=features.VERSION, pdq=codes[n].tobytes(),
                         pdq_mirror=codes[n][::-1].tobytes(), phash=codes[n][:8].tobytes(),
                         phash_mirror=codes[n][8:16].tobytes(), pdq_quality=100, labels=[])
                for n, key in enumerate(keys)
            ])
            Vector.objects.bulk_create([
                Vector(item_id=ids[key], field=field, dim=dim, key=key, key_prefix=key[:PREFIX_CHARS], vector=blob)
                for n, key in enumerate(keys)
                for field, dim, blob in (("_pdq", 256, codes[n].tobytes()),
                                         ("_embedding", DIM, vectors[first + n].tobytes()))
            ], batch_size=500)
        if (first // args.batch) % 20 == 0:
            rate = (first + len(keys) - done) / (time.perf_counter() - start)
            print(f"  {first + len(keys)} items, {rate:.0f}/s", flush=True)
    print(f"{args.items} items under {base} in {time.perf_counter() - start:.0f} s", flush=True)


def request(connection, method, path, body=None, headers=None):
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    return response.status, response.read()


def connect(url):
    parsed = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=600)


def step_build(args):
    connection = connect(args.url)
    start = time.perf_counter()
    status, body = request(connection, "POST", directory(args) + "_create_index",
                           json.dumps({"similar": {"by": "_embedding"}}),
                           {"Content-Type": "application/json", "Prefer": "respond-async"})
    assert status == 202, (status, body[:300])
    job = json.loads(body)["job"]
    last = None
    while True:
        time.sleep(5)
        status, body = request(connect(args.url), "GET", f"/_jobs/{job}")  # (keep-alive ends after 5 s)
        data = json.loads(body)
        if data["state"] in ("done", "failed", "cancelled"):
            break
        if data["progress"] != last:
            last = data["progress"]
            print(f"  {time.perf_counter() - start:.0f} s: {data['state']} {last}", flush=True)
    print(f"_create_index job {job}: {data['state']} in {time.perf_counter() - start:.0f} s: "
          f"{data['result'] or data['error']}", flush=True)


def exact_top(args, queries, k=10):
    """The exact ``k`` nearest rows for each query, batch-wise over the memory-mapped vectors."""
    vectors = np.load(vectors_path(args), mmap_mode="r")
    best_score = np.full((len(queries), 0), -np.inf, np.float32)
    best_row = np.zeros((len(queries), 0), np.int64)
    for start in range(0, len(vectors), 50000):
        scores = queries @ np.asarray(vectors[start : start + 50000]).T
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        best_score = np.concatenate([best_score, np.take_along_axis(scores, top, 1)], axis=1)
        best_row = np.concatenate([best_row, top + start], axis=1)
        keep = np.argsort(-best_score, axis=1)[:, :k]
        best_score, best_row = np.take_along_axis(best_score, keep, 1), np.take_along_axis(best_row, keep, 1)
    return best_row


def step_query(args):
    queries = np.load(Path(args.data) / f"queries-{args.items}.npy")[: args.queries]
    connection = connect(args.url)
    path = directory(args) + "_search"
    headers = {"Content-Type": "application/json"}
    bodies = [json.dumps({"similar": {"vector": q.tolist(), "by": "_embedding", "limit": 10}}) for q in queries]
    for body in bodies[:5]:  # warm-up: the index file mapped, the connection open
        request(connection, "POST", path, body, headers)
    latencies, answers = [], []
    for body in bodies:
        start = time.perf_counter()
        status, content = request(connection, "POST", path, body, headers)
        latencies.append((time.perf_counter() - start) * 1000)
        assert status == 200, (status, content[:300])
        answers.append({entry["_filepath"] for entry in json.loads(content)})
    want = exact_top(args, queries)
    base = directory(args)
    hits = sum(len(got & {f"{base}{i:07d}.jpg" for i in rows.tolist()}) for got, rows in zip(answers, want))
    latencies.sort()
    print(f"_search by _embedding over {args.items:,} through HTTP: p50 {statistics.median(latencies):.1f} ms, "
          f"p95 {latencies[int(0.95 * (len(latencies) - 1))]:.1f} ms, recall@10 {hits / (10 * len(queries)):.4f} "
          f"({len(queries)} queries; load average {os.getloadavg()[0]:.2f} at the end)", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("steps", nargs="+", choices=["model", "vectors", "populate", "build", "query"])
    parser.add_argument("--items", type=int, default=100000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--batch", type=int, default=5000, help="items a populate transaction writes")
    parser.add_argument("--data", required=True, help="the store's ISTORE_DATA_DIR; vectors and model beside it")
    parser.add_argument("--wheels", help="model: a directory holding the three wheels")
    parser.add_argument("--url", default="http://127.0.0.1:8700")
    args = parser.parse_args()
    Path(args.data).mkdir(parents=True, exist_ok=True)
    for step in args.steps:
        globals()[f"step_{step}"](args)


if __name__ == "__main__":
    main()
