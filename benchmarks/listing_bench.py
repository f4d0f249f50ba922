"""
Listing pages at 10k, 100k and 1M keys with no ANALYZE, SQLite and PostgreSQL
side by side (issue 20). Run by hand, never in the test suite:

    flock -x /tmp/istore-bench.lock .venv/bin/python benchmarks/listing_bench.py \\
        --database postgres://postgres@127.0.0.1:5432/ --stream

Starts istore twice under gunicorn (2 workers): on a throwaway SQLite file and
on a throwaway PostgreSQL database (``bench_listing_<hex>``, created and
dropped here; autovacuum off on this machine, and nothing here runs ANALYZE).
Keys ``/big/0000000`` ... go into one directory: up to ``--post-max`` of them
by single-key POSTs over HTTP from ``--clients`` client threads, the rest by a
bulk insert through the ORM (``Item.objects.bulk_create``, 5,000 rows per
transaction, the two databases filled at the same time). At every size both
servers answer the three pages in turn (wrk, one connection): the first 100
under the prefix, a ``delimiter=/`` page of the root and a ``delimiter=/``
page of the prefix. With ``--stream`` the whole directory is then streamed
once from each, through a worker timeout far shorter than the stream. Prints the statistics PostgreSQL holds on the table (to show
none were gathered) and Markdown rows for benchmarks/README.md.
"""
import argparse
import http.client
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from durability_bench import throwaway_databases  # noqa: E402
from store_bench import ROOT, environment, free_port, start_gunicorn, stop, wrk_stats  # noqa: E402

PYTHON = sys.executable
PAGES = {
    "first 100 under the prefix": "/big/?limit=100",
    "`delimiter=/` page of the root": "/?delimiter=/&limit=100",
    "`delimiter=/` page of the prefix": "/big/?delimiter=/&limit=100",
}
BULK_FILL = """
from django.db import transaction
from objects.models import Item
for start in range({start}, {stop}, 5000):
    batch = []
    for index in range(start, min(start + 5000, {stop})):
        item = Item(metadata={{"n": index}})
        item.set_key(f"{key_format}")
        batch.append(item)
    with transaction.atomic():
        Item.objects.bulk_create(batch)
"""
STATISTICS = """
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("SELECT c.reltuples, s.last_analyze, s.last_autoanalyze, s.n_live_tup FROM pg_class c "
                   "JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.relname = 'objects_item'")
    print(cursor.fetchone())
"""


class Store:
    """One istore under gunicorn on its own throwaway database."""

    def __init__(self, label, database, workers, worker_timeout):
        self.label, self.database = label, database
        self.data = Path(tempfile.mkdtemp(prefix=f"istore-listing-{label}-"))
        self.env = dict(environment(self.data, database), ISTORE_WORKER_TIMEOUT=str(worker_timeout))
        self.manage("migrate", "-v0")
        self.port = free_port()
        self.process = start_gunicorn(self.env, self.port, workers=workers)
        self.base = f"http://127.0.0.1:{self.port}"
        self.keys = 0

    def manage(self, *args, capture=False):
        done = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=self.env, check=True,
                              capture_output=capture, text=True)
        return done.stdout

    def post_fill(self, stop_at, clients):
        """POST ``/big/N`` for N up to ``stop_at`` over HTTP, ``clients`` threads each on its own connection."""
        failures = []

        def client(offset):
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            for index in range(self.keys + offset, stop_at, clients):
                body = f'metadata={{"n":{index}}}'
                connection.request("POST", f"/big/{index:07d}", body,
                                   {"Content-Type": "application/x-www-form-urlencoded"})
                answer = connection.getresponse()
                answer.read()
                if answer.status != 201:
                    failures.append(answer.status)
            connection.close()

        threads = [threading.Thread(target=client, args=(offset,)) for offset in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise SystemExit(f"{self.label}: {len(failures)} POSTs failed, e.g. {failures[0]}")
        self.keys = stop_at

    def bulk_fill(self, stop_at):
        self.manage("shell", "--no-imports", "-c", bulk_fill_code("/big/{index:07d}", self.keys, stop_at))
        self.keys = stop_at

    def page(self, path, seconds):
        stats = wrk_stats(self.base + path, 1, 1, seconds)
        if stats["errors"]:
            raise SystemExit(f"{self.label}: {path} answered {stats['errors']} errors")
        return stats

    def stream(self):
        """``(items, MiB, seconds, complete)`` of one full streamed listing of ``/big/``."""
        started = time.monotonic()
        body = requests.get(self.base + "/big/", timeout=3600).content
        seconds = time.monotonic() - started
        items = json.loads(body)
        complete = len(items) == self.keys and items[-1]["_filepath"] == f"/big/{self.keys - 1:07d}"
        return len(items), len(body) / 2**20, seconds, complete

    def close(self):
        stop(self.process)
        shutil.rmtree(self.data, ignore_errors=True)


def bulk_fill_code(key_format, start, stop):
    """Code for ``manage.py shell`` inserting items ``key_format.format(index=N)`` for N in [start, stop).

    ``bulk_create`` in transactions of 5,000 rows: no signals (change feed,
    search), no ANALYZE; the rows are those a POST of ``{"n": N}`` makes.
    """
    return BULK_FILL.format(key_format=key_format, start=start, stop=stop)


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def timed_in_parallel(function, stores):
    """Run ``function(store)`` for every store at once; seconds each took."""
    seconds = {}

    def run(store):
        started = time.monotonic()
        function(store)
        seconds[store.label] = time.monotonic() - started

    threads = [threading.Thread(target=run, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", help="a PostgreSQL server URL (postgres://user@host:port/); SQLite only if unset")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--post-max", type=int, default=100_000, help="keys up to this many are POSTed over HTTP")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration per page")
    parser.add_argument("--stream", action="store_true", help="stream the whole directory at the end")
    parser.add_argument("--worker-timeout", type=int, default=5,
                        help="ISTORE_WORKER_TIMEOUT (s): far shorter than the stream, which must still finish")
    args = parser.parse_args()

    urls, drop = (throwaway_databases(args.database, 1, "bench_listing") if args.database
                  else ([], lambda: None))
    stores, rows = [], []
    try:
        stores = [Store("SQLite", None, args.workers, args.worker_timeout)]
        if urls:
            stores.append(Store("PostgreSQL", urls[0], args.workers, args.worker_timeout))
        print(f"start: {uptime()}", flush=True)
        for size in (int(size) for size in args.sizes.split(",")):
            posted = min(size, args.post_max)
            if posted > stores[0].keys:
                before = stores[0].keys
                took = timed_in_parallel(lambda store: store.post_fill(posted, args.clients), stores)
                print(f"POSTed {before:,} to {posted:,} keys: " + ", ".join(
                    f"{label} {(posted - before) / seconds:,.0f} POST/s" for label, seconds in took.items()),
                      flush=True)
            if size > stores[0].keys:
                took = timed_in_parallel(lambda store: store.bulk_fill(size), stores)
                print(f"bulk-inserted to {size:,} keys: " + ", ".join(f"{label} {seconds:.0f} s"
                                                                       for label, seconds in took.items()), flush=True)
            load = uptime()
            print(f"{size:,} keys, {load}", flush=True)
            for store in stores:
                if store.database:
                    print(f"{store.label} objects_item (reltuples, last_analyze, last_autoanalyze, n_live_tup): "
                          + store.manage("shell", "--no-imports", "-c", STATISTICS, capture=True).strip(), flush=True)
            for name, path in PAGES.items():
                for store in stores:
                    stats = store.page(path, args.seconds)
                    print(f"  {store.label} {name}: p50 {stats['p50']:.2f} ms, p99 {stats['p99']:.2f} ms, "
                          f"{stats['rate']:,.0f} req/s", flush=True)
                    rows.append((store.label, size, name, stats["p50"], stats["p99"], load.split("load average: ")[-1]))
        if args.stream:
            for store in stores:
                load = uptime()
                items, mebibytes, seconds, complete = store.stream()
                print(f"{store.label}: streamed {items:,} items ({mebibytes:.0f} MiB) in {seconds:.1f} s: "
                      f"{items / seconds:,.0f} items/s, complete: {complete}; {load}", flush=True)
    finally:
        for store in stores:
            store.close()
        drop()
    print("\n| database | keys | page | p50 ms | p99 ms | load average |\n|---|---|---|---|---|---|")
    for label, size, name, p50, p99, load in rows:
        print(f"| {label} | {size:,} | {name} | {p50:.2f} | {p99:.2f} | {load} |")


if __name__ == "__main__":
    main()
