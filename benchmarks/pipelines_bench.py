"""
Pipelines (issue 18): ``_bulk`` against single POSTs, and the change feed's
lag behind acknowledged writes. Run by hand, never in the test suite:

    flock -x /tmp/istore-bench.lock .venv/bin/python benchmarks/pipelines_bench.py
    flock -x /tmp/istore-bench.lock .venv/bin/python benchmarks/pipelines_bench.py \\
        --database postgres://postgres@127.0.0.1:5432/

istore runs under gunicorn (``--workers``, default 2) with its own data
directory and, on PostgreSQL, a throwaway database (created and dropped here).

- single POSTs: wrk, ``--clients`` connections for ``--seconds``, each a
  JSON POST of ~200 bytes of metadata merged into one of 10,000 keys per
  connection (``merge_post.lua``);
- ``_bulk``: ``--clients`` threads, each sending ``--requests`` bodies of
  ``--lines`` NDJSON lines of ~200 bytes of metadata (built before the clock
  starts), first to new keys, then again to the same keys (merges into
  existing items). Lines/s is every line acknowledged over the wall time;
- the feed's lag (``--lag``): ``--writers`` clients POST for ``--seconds``
  while one follower long-polls ``/_changes``; for each write, the time from
  its acknowledgement to the follower receiving it, p50 and p99.

Prints a Markdown table.
"""
import argparse
import http.client
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from durability_bench import throwaway_databases  # noqa: E402
from store_bench import environment, free_port, start_gunicorn, stop, wrk_stats  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PAD = "x" * 120


def metadata(number):
    """About 200 bytes of metadata, as a line carries it."""
    return {"n": number, "tag": "bench", "score": 0.5, "labels": ["a", "b"], "pad": PAD}


class Server:
    def __init__(self, database, workers):
        import subprocess

        self.data = Path(tempfile.mkdtemp(prefix="istore-pipelines-"))
        self.env = environment(self.data, database)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=self.env, check=True)
        self.port = free_port()
        self.process = start_gunicorn(self.env, self.port, workers=workers)
        self.base = f"http://127.0.0.1:{self.port}"

    def close(self):
        stop(self.process)
        shutil.rmtree(self.data, ignore_errors=True)


def request(port, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def bulk_bodies(client, requests_, lines):
    """``requests_`` NDJSON bodies of ``lines`` lines each, keys distinct per client."""
    bodies = []
    for r in range(requests_):
        text = "".join(json.dumps({"key": f"c{client}/k{r * lines + i}", "metadata": metadata(i)}) + "\n"
                       for i in range(lines))
        bodies.append(text.encode())
    return bodies


def bulk_rate(server, clients, requests_, lines, directory):
    """Lines/s of ``clients`` threads each sending their bodies one after the other."""
    bodies = [bulk_bodies(client, requests_, lines) for client in range(clients)]
    failures = []

    def send(own):
        for payload in own:
            status, answer = request(server.port, "POST", directory + "_bulk", payload,
                                     {"Content-Type": "application/x-ndjson"})
            answer = json.loads(answer) if status == 200 else {}
            if status != 200 or answer["errors"]:
                failures.append((status, answer))

    threads = [threading.Thread(target=send, args=(own,)) for own in bodies]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return clients * requests_ * lines / elapsed, len(failures)


def single_rate(server, clients, seconds):
    stats = wrk_stats(server.base + "/", min(clients, 2), clients, seconds, ROOT / "benchmarks/merge_post.lua",
                      [f"/bench/single-{uuid.uuid4().hex[:6]}/"])
    return stats["rate"], stats["errors"]


def follower_lag(server, writers, seconds):
    """p50 and p99 (ms) from a write's acknowledgement to the follower receiving its change, and the count."""
    directory = f"/lag-{uuid.uuid4().hex[:6]}/"
    acknowledged, received = {}, {}
    status, answer = request(server.port, "GET", directory + "_changes?since=now")
    since = json.loads(answer)["last_seq"]
    stop_at = time.monotonic() + seconds
    writing = [True]

    def follow():
        nonlocal since
        while writing[0] or len(received) < len(acknowledged):
            status, answer = request(server.port, "GET", f"{directory}_changes?since={since}&wait=5")
            now = time.monotonic()
            page = json.loads(answer)
            for change in page["changes"]:
                received.setdefault(change["key"], now)
            since = page["last_seq"]
            if not writing[0] and not page["changes"]:
                break

    def write(number):
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        count = 0
        while time.monotonic() < stop_at:
            key = f"{directory}w{number}-{count}"
            connection.request("POST", key, body=json.dumps({"metadata": metadata(count)}),
                               headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            if response.status in (200, 201):
                acknowledged[key] = time.monotonic()
            count += 1
        connection.close()

    follower = threading.Thread(target=follow)
    follower.start()
    threads = [threading.Thread(target=write, args=(number,)) for number in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writing[0] = False
    follower.join()
    lags = sorted(max(0.0, received[key] - done) * 1000 for key, done in acknowledged.items() if key in received)
    missing = len(acknowledged) - len(lags)
    quantile = statistics.quantiles(lags, n=100)
    return quantile[49], quantile[98], len(acknowledged), missing


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", help="a PostgreSQL server URL (a throwaway database is made there)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=5, help="bulk requests per client")
    parser.add_argument("--lines", type=int, default=10000, help="lines per bulk request")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--lag", action="store_true", help="measure the follower's lag too")
    parser.add_argument("--writers", type=int, default=8)
    args = parser.parse_args()
    database, drop = None, lambda: None
    if args.database:
        (database,), drop = throwaway_databases(args.database, 1)
    server = Server(database, args.workers)
    try:
        rows = []
        rate, errors = single_rate(server, args.clients, args.seconds)
        rows.append(("single POST (merge, ~200 B)", f"{rate:,.0f} req/s", errors))
        directory = f"/bulk-{uuid.uuid4().hex[:6]}/"
        for label in ("new keys", "existing keys"):
            rate, errors = bulk_rate(server, args.clients, args.requests, args.lines, directory)
            rows.append((f"_bulk, {args.lines:,} lines a request, {label}", f"{rate:,.0f} lines/s", errors))
        if args.lag:
            p50, p99, count, missing = follower_lag(server, args.writers, args.seconds)
            rows.append((f"follower lag, {args.writers} writers, {count:,} writes", f"p50 {p50:.1f} ms, p99 {p99:.1f} ms",
                         missing))
        print(f"| {'PostgreSQL' if database else 'SQLite'}, {args.workers} workers, {args.clients} clients "
              "| rate | failed |\n|---|---|---|")
        for row in rows:
            print("| " + " | ".join(str(cell) for cell in row) + " |")
    finally:
        server.close()
        drop()


if __name__ == "__main__":
    main()
