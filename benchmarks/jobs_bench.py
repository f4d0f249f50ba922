"""
_create_index of N vectors as a job, through gunicorn and its jobs worker (run by hand; figures in
benchmarks/README.md, "Jobs").

    flock -x /tmp/istore-bench.lock .venv/bin/python benchmarks/jobs_bench.py --vectors 100000
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \\
        flock -x /tmp/istore-bench.lock .venv/bin/python benchmarks/jobs_bench.py --vectors 100000

Fills a throwaway store (SQLite under a temporary directory, or a throwaway database on the
PostgreSQL server DATABASE_URL names) with N items under /bench/ holding a --dim vector each
(objects.writing.upsert_many, clustered data as benchmarks/search_bench.py makes), starts gunicorn
with istore's configuration (2 workers, which start one jobs worker), then:

- reads an unrelated item (GET /other/item?meta=1) 20 times a second for --idle seconds: the
  baseline latency;
- POSTs /bench/_create_index with Prefer: respond-async (the 202's own latency), and follows the
  job at /_jobs/{id} once a second while the same reads go on, until it is done;
- prints the job's elapsed time (created to finished, from the job), how often its progress moved,
  and read latency p50 / p99 / max before and during the job; checks the job indexed N vectors.

For a large N, fill a kept store once, at low priority and outside the lock, through ``_bulk``
(gunicorn serving it; 4 clients of 10,000 lines), then time the job alone on it:

    nice -n 19 .venv/bin/python benchmarks/jobs_bench.py --vectors 1000000 --store /work/data/NAME/jobs --fill-only
    flock -x /tmp/istore-bench.lock .venv/bin/python benchmarks/jobs_bench.py --vectors 1000000 \\
        --store /work/data/NAME/jobs

(with DATABASE_URL naming a database of its own on PostgreSQL: it is created by the fill, kept.)
"""
import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def throwaway_database(url):
    """A new database on the PostgreSQL server of ``url``; (its URL, a function that drops it)."""
    import psycopg

    server = url.rsplit("/", 1)[0]
    name = f"istore_jobs_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')

    def drop():
        with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
            connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')

    return f"{server}/{name}", drop


def vectors(count, dim, batch):
    """``(start, vectors)`` batches of the clustered data, the same for every way of filling."""
    rng = np.random.default_rng(1)
    centres = np.random.default_rng(12345).standard_normal((1000, dim), dtype=np.float32)
    for start in range(0, count, batch):
        size = min(batch, count - start)
        yield start, np.round(centres[rng.integers(0, 1000, size)]
                              + 0.5 * rng.standard_normal((size, dim), dtype=np.float32), 4)


def fill_bulk(base, count, dim, clients=4, lines=10_000):
    """Fill /bench/ through POST /bench/_bulk from ``clients`` threads; the seconds it took."""
    import queue

    bodies = queue.Queue(maxsize=2 * clients)
    failures = []

    def send():
        session = requests.Session()
        while (body := bodies.get()) is not None:
            response = session.post(f"{base}/bench/_bulk", data=body, timeout=600,
                                    headers={"Content-Type": "application/x-ndjson"})
            if response.status_code != 200 or response.json()["errors"]:
                failures.append(response.text[:300])

    threads = [threading.Thread(target=send) for _ in range(clients)]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    for start, batch in vectors(count, dim, lines):
        bodies.put("".join(json.dumps({"key": f"{start + i:08d}", "metadata": {"emb": v.tolist()}}) + "\n"
                           for i, v in enumerate(batch)).encode())
        if (start // lines) % 10 == 9:
            print(f"  filled {start + len(batch)} in {time.perf_counter() - started:.0f} s", flush=True)
    for _ in threads:
        bodies.put(None)
    for thread in threads:
        thread.join()
    assert not failures, failures[:3]
    requests.post(f"{base}/other/item", data=json.dumps({"metadata": {"note": "read while the job runs"}}),
                  timeout=60).raise_for_status()
    return time.perf_counter() - started


def create_database(url):
    """Create the database ``url`` names on its PostgreSQL server unless it exists (kept)."""
    import psycopg

    server, name = url.rsplit("/", 1)
    with psycopg.connect(f"{server}/postgres", autocommit=True) as connection:
        if not connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            connection.execute(f'CREATE DATABASE "{name}"')


def fill(count, dim, batch=5000):
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    from objects import writing

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    for start, batch_ in vectors(count, dim, batch):
        writing.upsert_many([(f"/bench/{start + i:08d}", {"emb": v.tolist()}) for i, v in enumerate(batch_)])
        if (start // batch) % 20 == 19:
            print(f"  filled {start + len(batch_)} in {time.perf_counter() - started:.0f} s", flush=True)
    writing.upsert_many([("/other/item", {"note": "read while the job runs"})])
    connections.close_all()
    return time.perf_counter() - started


class Reader(threading.Thread):
    """GET one unrelated item every ``period`` seconds; latencies in ms, by phase."""

    def __init__(self, url, period=0.05):
        super().__init__(daemon=True)
        self.url, self.period, self.phase = url, period, "idle"
        self.latencies = {"idle": [], "job": []}
        self.errors = 0
        self.stopped = threading.Event()

    def run(self):
        session = requests.Session()
        while not self.stopped.is_set():
            started = time.perf_counter()
            try:
                ok = session.get(self.url, timeout=30).status_code == 200
            except requests.RequestException:
                ok = False
            elapsed = time.perf_counter() - started
            if ok:
                self.latencies[self.phase].append(elapsed * 1000)
            else:
                self.errors += 1
            self.stopped.wait(max(0.0, self.period - elapsed))


def jobs_worker_peak(gunicorn_pid):
    """Peak resident memory (MiB, VmHWM) of the jobs workers the gunicorn ``gunicorn_pid`` started."""
    peaks = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
            command = (status.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields["PPid"]) == gunicorn_pid and b"jobs_worker" in command:
            peaks.append(int(fields["VmHWM"].split()[0]) / 1024)
    return max(peaks, default=0.0)


def summary(values):
    if not values:
        return "no reads"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"{len(values)} reads, p50 {statistics.median(ordered):.1f} ms, p99 {p99:.1f} ms, "
            f"max {ordered[-1]:.1f} ms")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of reads before the job")
    parser.add_argument("--store", help="a kept store's directory (and, on PostgreSQL, DATABASE_URL's database)")
    parser.add_argument("--fill-only", action="store_true", help="fill --store through _bulk, then stop")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()

    data = Path(args.store or tempfile.mkdtemp(prefix="istore-jobs-bench-"))
    data.mkdir(parents=True, exist_ok=True)
    drop = None
    env = {"DJANGO_SETTINGS_MODULE": "istore_site.settings", "DJANGO_DEBUG": "false",
           "SECRET_KEY": "jobs-bench-" + "x" * 40, "ISTORE_DATA_DIR": str(data),
           "ISTORE_ALLOW_ANONYMOUS_WRITES": "true", "ISTORE_ACCESS_LOG": "", "ISTORE_JOBS_WORKERS": "1",
           "ISTORE_S3_BIND": ""}
    database = os.environ.get("DATABASE_URL", "")
    if database.startswith("postgres") and args.store:
        env["DATABASE_URL"] = database
        if args.fill_only:
            create_database(database)
    elif database.startswith("postgres"):
        env["DATABASE_URL"], drop = throwaway_database(database)
    else:
        env["DATABASE_URL"] = ""
    os.environ.update(env)
    print(f"database: {'PostgreSQL' if env['DATABASE_URL'] else 'SQLite'}; {args.vectors} vectors of {args.dim}",
          flush=True)
    if args.fill_only:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)
    elif not args.store:
        print(f"fill: {fill(args.vectors, args.dim):.0f} s", flush=True)

    from tests.servers import free_port

    port = args.port or free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([str(ROOT / ".venv/bin/gunicorn"), "istore_site.wsgi", "-c", "gunicorn.conf.py",
                               "-w", "2", "--bind", f"127.0.0.1:{port}"], cwd=ROOT, env={**os.environ},
                              stdout=subprocess.DEVNULL, stderr=open(data / "gunicorn.log", "ab"),
                              start_new_session=True)
    try:
        for _ in range(300):
            try:
                if requests.get(f"{base}/_health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        if args.fill_only:
            print(f"fill through _bulk: {fill_bulk(base, args.vectors, args.dim):.0f} s", flush=True)
            return
        reader = Reader(f"{base}/other/item?meta=1")
        reader.start()
        time.sleep(args.idle)
        reader.phase = "job"
        started = time.perf_counter()
        response = requests.post(f"{base}/bench/_create_index", data=json.dumps({"similar": {"by": "emb"}}),
                                 headers={"Prefer": "respond-async"}, timeout=120)
        answered = time.perf_counter() - started
        assert response.status_code == 202, response.text
        job_url = base + response.headers["Location"]
        progress = []
        while True:
            job = requests.get(job_url, timeout=30).json()
            progress.append(job["progress"]["done"])
            if job["state"] not in ("queued", "running"):
                break
            time.sleep(1)
        peak = jobs_worker_peak(server.pid)
        reader.stopped.set()
        reader.join()
        assert job["state"] == "done", job
        assert job["result"]["indexed"] == args.vectors, job["result"]
        elapsed = (datetime.fromisoformat(job["finished"]) - datetime.fromisoformat(job["created"])).total_seconds()
        ran = (datetime.fromisoformat(job["finished"]) - datetime.fromisoformat(job["started"])).total_seconds()
        print(f"202 answered in {answered * 1000:.0f} ms")
        print(f"job: {elapsed:.1f} s from created to finished ({ran:.1f} s running), "
              f"{len(set(progress))} distinct progress values seen in {len(progress)} polls")
        print(f"jobs worker's peak resident memory: {peak:.0f} MiB")
        print(f"reads before: {summary(reader.latencies['idle'])}")
        print(f"reads during: {summary(reader.latencies['job'])}; failed reads: {reader.errors}")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        if drop:
            drop()


if __name__ == "__main__":
    main()
