"""
Scale-out: the write, list and cached-derivative benchmarks on PostgreSQL + S3
+ Redis with two instances, next to the single-host SQLite figures (issue 8,
item 7).

Run by hand, never in the test suite. It needs wrk, PostgreSQL on
127.0.0.1:5432 (user postgres, trust auth) and Redis on 127.0.0.1:6379:

    .venv/bin/python benchmarks/scaleout_bench.py
    .venv/bin/python benchmarks/scaleout_bench.py --seconds 2 --keys 2000          # smoke test
    .venv/bin/python benchmarks/scaleout_bench.py --setups scaleout --workers-per-instance 2

The two setups run one after the other in the same invocation, so that their
figures are taken side by side:

- single: SQLite (WAL) and content on local disk; one gunicorn whose worker
  count is that of the two scaleout instances together (2 by default).
- scaleout: a throwaway PostgreSQL database (istore_scaleout_<random>,
  dropped at the end), content in S3 (moto's standalone server over HTTP),
  Redis for locks and shared derivatives, and two gunicorn instances standing
  for two hosts, each with its own ISTORE_DATA_DIR (so its own disk cache) and
  --workers-per-instance workers (default 1: 2 in all, as single, on this
  2-core machine).

Each workload runs --seconds (default 10):

1. POST new keys with 8 connections (benchmarks/post.lua). Scaleout loads
   both hosts at once with two wrk processes in parallel (-t1 -c4 each, a key
   prefix each) and sums their req/s.
2. Listing latency with 1 connection, after the bulk fill of store_bench.py to
   --keys keys (which ANALYZEs PostgreSQL): the first 100 under a prefix
   (/bench/list/?limit=100) and a delimiter=/ page of the root
   (/bench/?delimiter=/&limit=100), through each host in turn; the table gives
   the worse host's p50 / p99, the progress lines each host's.
3. Cached derivative: a 1920x1080 JPEG uploaded with PUT (into S3 on
   scaleout), GET once with ?apply=resize&w=320 through each host to warm it
   and to check that every host returns the same bytes, then wrk -t2 -c8 on
   that URL (scaleout: -t1 -c4 on each host at once, summed).

Every server binds 127.0.0.1 on a free port and is stopped on the way out;
access logs are off (ISTORE_ACCESS_LOG=""), writes need no token.
Prints a Markdown table (rows: measure; columns: setup).
"""
import argparse
import hashlib
import io
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_bench import (PYTHON, ROOT, WRK, environment, fill, free_port, start_gunicorn, stop,  # noqa: E402
                         wait_http, wrk_stats)

POST_LUA = ROOT / "benchmarks/post.lua"
PHOTO = Path("/tmp/anchors/img/photo_1920x1080.jpg")
IMAGE_KEY = "/bench/img/photo_1920x1080.jpg"
RESIZE = "?apply=resize&w=320"
PG = dict(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
REDIS_URL = "redis://127.0.0.1:6379/0"
BUCKET = "istore-scaleout"
SHARED = ("ISTORE_STORAGE", "ISTORE_S3_BUCKET", "ISTORE_S3_ENDPOINT_URL", "ISTORE_S3_REGION",
          "ISTORE_REDIS_URL", "PROMETHEUS_MULTIPROC_DIR")


def bench_env(data_dir, database=None, **extra):
    env = environment(data_dir, database)
    for name in SHARED:
        env.pop(name, None)
    return dict(env, ISTORE_ACCESS_LOG="", **extra)


def start_hosts(stack, env, work, names, workers):
    """One gunicorn per name, each with its own data directory; their base URLs."""
    urls = []
    for name in names:
        data_dir, metrics = work / name, work / name / "metrics"
        metrics.mkdir(parents=True)
        port = free_port()
        host_env = dict(env, ISTORE_DATA_DIR=str(data_dir), PROMETHEUS_MULTIPROC_DIR=str(metrics))
        process = start_gunicorn(host_env, port, workers=workers)
        stack.callback(stop, process)
        urls.append(f"http://127.0.0.1:{port}")
    return urls


def migrate(env):
    subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)


def single(stack, work, workers):
    env = bench_env(work / "host")  # the SQLite file lives in the data directory: one for both
    migrate(env)
    return env, start_hosts(stack, env, work, ["host"], 2 * workers)


def scaleout(stack, work, workers):
    import boto3
    import psycopg

    socket.create_connection(("127.0.0.1", 6379), timeout=2).close()  # fail now rather than run without Redis
    name = f"istore_scaleout_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(**PG, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    stack.callback(drop_database, name)
    s3_port = free_port()
    moto = subprocess.Popen([str(Path(PYTHON).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    stack.callback(stop, moto)
    endpoint = f"http://127.0.0.1:{s3_port}"
    wait_http(endpoint + "/", moto, attempts=300)
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                 aws_secret_access_key="test").create_bucket(Bucket=BUCKET)
    env = bench_env(work / "setup", f"postgres://postgres@127.0.0.1:5432/{name}", ISTORE_STORAGE="s3",
                    ISTORE_S3_BUCKET=BUCKET, ISTORE_S3_ENDPOINT_URL=endpoint, ISTORE_S3_REGION="us-east-1",
                    AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", ISTORE_REDIS_URL=REDIS_URL)
    migrate(env)
    return env, start_hosts(stack, env, work, ["a", "b"], workers)


def drop_database(name):
    import psycopg

    with psycopg.connect(**PG, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


SETUPS = {"single": single, "scaleout": scaleout}
TITLES = {"single": "single (SQLite, local disk)", "scaleout": "scaleout (PostgreSQL + S3 + Redis, 2 hosts)"}


def load_all(hosts, path, seconds, post=False):
    """wrk -t2 -c8 split evenly over the hosts, all at once: (summed req/s, summed non-2xx)."""
    share = len(hosts)

    def one(index):
        script, script_args = (POST_LUA, [f"/bench/post{index}/"]) if post else (None, ())
        return wrk_stats(hosts[index] + path, 2 // share, 8 // share, seconds, script, script_args)

    with ThreadPoolExecutor(share) as pool:
        runs = list(pool.map(one, range(share)))
    return sum(run["rate"] for run in runs), sum(run["errors"] for run in runs)


def latency(hosts, path, seconds, label):
    """wrk -t1 -c1 through each host in turn: (worst p50, worst p99, non-2xx)."""
    runs = [wrk_stats(url + path, 1, 1, seconds) for url in hosts]
    for url, run in zip(hosts, runs):
        print(f"  {label} via {url}: p50 {run['p50']:.2f} ms, p99 {run['p99']:.2f} ms "
              f"({run['errors']} non-2xx)", flush=True)
    worst = {key: max(run[key] for run in runs) for key in ("p50", "p99")}
    return worst["p50"], worst["p99"], sum(run["errors"] for run in runs)


def photo_bytes():
    if PHOTO.exists():
        return PHOTO.read_bytes()
    from PIL import Image

    buffer = io.BytesIO()
    Image.radial_gradient("L").resize((1920, 1080)).convert("RGB").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def run(setup, args, work):
    cells, errors = {}, 0
    with ExitStack() as stack:
        env, hosts = SETUPS[setup](stack, work / setup, args.workers_per_instance)
        print(f"{setup}: {', '.join(hosts)}", flush=True)

        rate, err = load_all(hosts, "/", args.seconds, post=True)
        errors += err
        cells["POST new keys, 8 connections"] = f"{rate:,.0f} req/s"
        print(f"  POST: {rate:.0f} req/s ({err} non-2xx)", flush=True)

        started = time.perf_counter()
        fill(env, "/bench/list/", min(1000, args.keys))
        if args.keys > 1000:
            fill(env, "/bench/bulk/", args.keys - 1000, start=1000)
        print(f"  filled {args.keys} keys in {time.perf_counter() - started:.0f} s", flush=True)
        for measure, path in [(f"first 100 under a prefix, {args.keys:,} keys", "/bench/list/?limit=100"),
                              (f"`delimiter=/` page of the root, {args.keys:,} keys",
                               "/bench/?delimiter=/&limit=100")]:
            p50, p99, err = latency(hosts, path, args.seconds, path)
            errors += err
            cells[measure + ", p50 / p99"] = f"{p50:.2f} / {p99:.2f} ms"

        request = urllib.request.Request(hosts[0] + IMAGE_KEY, data=photo_bytes(), method="PUT",
                                         headers={"Content-Type": "image/jpeg"})
        urllib.request.urlopen(request, timeout=120).read()
        bodies = [urllib.request.urlopen(url + IMAGE_KEY + RESIZE, timeout=120).read() for url in hosts]
        same = all(body == bodies[0] for body in bodies)
        digest = hashlib.sha256(bodies[0]).hexdigest()[:12]
        print(f"  derivative: {len(bodies[0])} bytes, sha256 {digest}, same on all hosts: {same}", flush=True)
        rate, err = load_all(hosts, IMAGE_KEY + RESIZE, args.seconds)
        errors += err
        cells["cached derivative (resize w=320), 8 connections"] = f"{rate:,.0f} req/s"
        hosts_count = f"{len(hosts)} host{'s' if len(hosts) > 1 else ''}"
        verdict = "yes" if same else "**no**"
        cells["same derivative bytes on every host"] = f"{verdict} ({hosts_count}, sha256 {digest}…)"
        print(f"  cached derivative: {rate:.0f} req/s ({err} non-2xx)", flush=True)
        cells["non-2xx responses"] = str(errors)
    return cells


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10, help="length of each workload")
    parser.add_argument("--keys", type=int, default=100000, help="keys bulk-filled before the listings")
    parser.add_argument("--setups", default="single,scaleout", help="comma-separated, among single,scaleout")
    parser.add_argument("--workers-per-instance", type=int, default=1,
                        help="gunicorn workers of each scaleout host (single gets twice as many)")
    args = parser.parse_args()
    setups = args.setups.split(",")
    if not WRK:
        raise SystemExit("wrk is needed: apt-get install wrk")
    if unknown := set(setups) - set(SETUPS):
        raise SystemExit(f"unknown setup(s): {', '.join(sorted(unknown))}")

    results = {}
    with tempfile.TemporaryDirectory(prefix="istore-scaleout-") as work:
        for setup in setups:
            results[setup] = run(setup, args, Path(work))
    per = args.workers_per_instance
    workers = {"single": f"1 × {2 * per}", "scaleout": f"2 × {per}"}
    print(f"\n| measure | {' | '.join(f'{TITLES[s]}, {workers[s]} workers' for s in setups)} |")
    print("|---" * (len(setups) + 1) + "|")
    for measure in results[setups[0]]:
        print(f"| {measure} | {' | '.join(results[s][measure] for s in setups)} |")


if __name__ == "__main__":
    main()
