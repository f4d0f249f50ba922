"""
What durable acknowledgements cost (issue 21): POST/s and upload MB/s of
istore as it is against other trees (the commit before, without the fsyncs),
side by side in one run. Run by hand, never in the test suite:

    git worktree add /tmp/istore-before <commit-before> && make -C /tmp/istore-before venv
    .venv/bin/python benchmarks/durability_bench.py --compare before=/tmp/istore-before
    .venv/bin/python benchmarks/durability_bench.py --compare before=/tmp/istore-before \\
        --database postgres://postgres@127.0.0.1:5432/

Every tree runs under gunicorn (same worker count) from its own venv
(``TREE/.venv``, this one's if it has none) with its own data directory and, on PostgreSQL, its own throwaway database (created and
dropped here). Each measure takes turns over the servers ``--rounds`` times
and keeps each one's median: POST of metadata to new keys (wrk, 8
connections), raw PUTs of 1 MiB to new keys (wrk, 8 connections), and one at
a time with curl, a raw PUT and a multipart POST of 100 MiB. Prints a
Markdown table.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_bench import environment, free_port, start_gunicorn, stop, wrk_stats  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
MiB = 1024 * 1024


class Server:
    def __init__(self, label, tree, database, workers):
        self.label, self.tree = label, Path(tree)
        self.data = Path(tempfile.mkdtemp(prefix=f"istore-durability-{label}-"))
        self.env = dict(environment(self.data, database), PYTHONPATH=str(self.tree))
        own = self.tree / ".venv/bin/python"
        python = str(own) if own.exists() else PYTHON
        subprocess.run([python, "manage.py", "migrate", "-v0"], cwd=self.tree, env=self.env, check=True)
        self.port = free_port()
        self.process = start_gunicorn(self.env, self.port, workers=workers, root=self.tree, python=python)
        self.base = f"http://127.0.0.1:{self.port}"
        # Every worker imports and warms up (URL resolver, connections) before it counts.
        wrk_stats(self.base + "/", 2, 8, 2, ROOT / "benchmarks/post.lua", ["/bench/warm/"])

    def close(self):
        stop(self.process)
        shutil.rmtree(self.data, ignore_errors=True)


def posts(server, seconds, clients):
    stats = wrk_stats(server.base + "/", 2, clients, seconds, ROOT / "benchmarks/post.lua", ["/bench/post/"])
    return stats["rate"], stats["errors"]


def small_uploads(server, seconds, clients, size):
    stats = wrk_stats(server.base + "/", 2, clients, seconds, ROOT / "benchmarks/upload.lua",
                      ["/bench/upload/", str(size)])
    return stats["rate"] * size / MiB, stats["errors"]


def big_upload(server, path, size, multipart=False):
    """MB/s of one upload of ``path`` with curl (no Expect: 100-continue): raw PUT or multipart POST."""
    key = f"/bench/big/{uuid.uuid4().hex}"
    body = ["-F", f"file=@{path}"] if multipart else ["-H", "Content-Type: application/octet-stream", "-T", str(path)]
    started = time.perf_counter()
    done = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Expect:", *body,
                           server.base + key], capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    return size / MiB / elapsed, 0 if done.stdout.strip() in ("200", "201") else 1


def throwaway_databases(base_url, count, prefix="istore_durability"):
    """``count`` new PostgreSQL databases under ``base_url``; ``(urls, drop)``."""
    import psycopg

    names = [f"{prefix}_{uuid.uuid4().hex[:8]}" for _ in range(count)]
    admin = base_url.rstrip("/") + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        for name in names:
            connection.execute(f'CREATE DATABASE "{name}"')

    def drop():
        with psycopg.connect(admin, autocommit=True) as connection:
            for name in names:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return [base_url.rstrip("/") + "/" + name for name in names], drop


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", action="append", required=True, metavar="LABEL=PATH",
                        help="a tree to measure beside this one (a checkout of another commit); repeatable")
    parser.add_argument("--database", help="a PostgreSQL server URL (postgres://user@host:port/); SQLite if unset")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--big-mib", type=int, default=100)
    parser.add_argument("--only", choices=["posts", "uploads", "big"], action="append",
                        help="run only these measures (posts; uploads of 1 MiB; big: the two of --big-mib); "
                             "repeatable, all by default")
    args = parser.parse_args()

    trees = [tuple(pair.split("=", 1)) for pair in args.compare] + [("current", str(ROOT))]
    databases, drop = (throwaway_databases(args.database, len(trees)) if args.database
                       else ([None] * len(trees), lambda: None))
    engine = "PostgreSQL" if args.database else "SQLite"
    big = Path(tempfile.mkdtemp(prefix="istore-durability-src-")) / "big.bin"
    with open(big, "wb") as out:
        for _ in range(args.big_mib):
            out.write(os.urandom(MiB))
    servers = []
    try:
        servers = [Server(label, tree, database, args.workers) for (label, tree), database in zip(trees, databases)]
        measures = [
            ("posts", f"POST new keys, {args.clients} clients (req/s)",
             lambda s: posts(s, args.seconds, args.clients)),
            ("uploads", f"PUT 1 MiB, {args.clients} clients (MB/s)",
             lambda s: small_uploads(s, args.seconds, args.clients, MiB)),
            ("big", f"PUT {args.big_mib} MiB, 1 client (MB/s)",
             lambda s: big_upload(s, big, args.big_mib * MiB)),
            ("big", f"POST {args.big_mib} MiB multipart, 1 client (MB/s)",
             lambda s: big_upload(s, big, args.big_mib * MiB, multipart=True)),
        ]
        rows = []
        for group, name, measure in measures:
            if args.only and group not in args.only:
                continue
            results = {server.label: [] for server in servers}
            errors = 0
            for _ in range(args.rounds):
                for server in servers:
                    value, failed = measure(server)
                    results[server.label].append(value)
                    errors += failed
            medians = [statistics.median(results[server.label]) for server in servers]
            print(f"{name}: " + ", ".join(f"{server.label} {median:,.1f} ({min(results[server.label]):,.1f}–"
                                          f"{max(results[server.label]):,.1f})"
                                          for server, median in zip(servers, medians)) + f", {errors} errors",
                  flush=True)
            rows.append(f"| {engine} | {name} | " + " | ".join(f"{median:,.0f}" for median in medians)
                        + f" | {medians[-1] / medians[0] - 1:+.0%} | {errors} |")
    finally:
        for server in servers:
            server.close()
        drop()
        shutil.rmtree(big.parent, ignore_errors=True)
    labels = [label for label, _ in trees]
    print(f"\n| database | measure | {' | '.join(labels)} | change | errors |\n|---|---|"
          + "---|" * len(labels) + "---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
