"""
Write rate and list latency of istore as the store grows (issue 2).

Run by hand, never in the test suite:

    .venv/bin/python benchmarks/store_bench.py                 # SQLite
    .venv/bin/python benchmarks/store_bench.py --database postgres://postgres@127.0.0.1:5432/istore_bench

It starts gunicorn with 2 workers on 127.0.0.1 (istore, and the floor: a bare
Django view returning fixed bytes under the same gunicorn and middleware),
drives them with wrk, and grows the store with bulk inserts between steps.
Prints a Markdown table for benchmarks/README.md.
"""
import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
WRK = shutil.which("wrk")


def free_port():
    """A free port on 127.0.0.1: from ``ISTORE_BENCH_PORTS`` ("8650-8699") when set, so that sessions
    sharing the machine each keep to their own range; else one the system picks."""
    wanted = os.environ.get("ISTORE_BENCH_PORTS", "")
    candidates = range(int(wanted.split("-")[0]), int(wanted.split("-")[-1]) + 1) if wanted else [0]
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            if port not in _given:
                _given.add(sock.getsockname()[1])
                return sock.getsockname()[1]
    raise SystemExit(f"no free port in ISTORE_BENCH_PORTS={wanted}")


_given = set()  # ports free_port returned: a server may not be listening on one yet


def environment(data_dir, database):
    env = dict(os.environ, DJANGO_DEBUG="false", SECRET_KEY="bench-" + "x" * 50, ISTORE_DATA_DIR=str(data_dir),
               ISTORE_ALLOW_ANONYMOUS_WRITES="true", ISTORE_ACCESS_LOG="/dev/null", PYTHONPATH=str(ROOT))
    if database:
        env["DATABASE_URL"] = database
    else:
        env.pop("DATABASE_URL", None)
    return env


def wait_http(url, process, attempts=100):
    """Return ``process`` once ``url`` answers; stop it and exit if it never does."""
    for _ in range(attempts):
        try:
            urllib.request.urlopen(url, timeout=1)
            return process
        except Exception:
            time.sleep(0.1)
    stop(process)
    raise SystemExit(f"{url} did not answer")


def start_gunicorn(env, port, settings_module="istore_site.settings", workers=2, root=ROOT, python=PYTHON):
    """gunicorn (of the venv of ``python``) serving the istore tree at ``root``, once it answers."""
    env = dict(env, DJANGO_SETTINGS_MODULE=settings_module)
    process = subprocess.Popen(
        [str(Path(python).parent / "gunicorn"), "istore_site.wsgi", "-c", str(Path(root) / "gunicorn.conf.py"),
         "-w", str(workers), "--bind", f"127.0.0.1:{port}"],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    return wait_http(f"http://127.0.0.1:{port}/_health", process)


def stop(process):
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:  # the whole group has already exited
        pass
    process.wait(timeout=30)


def wrk(url, threads, connections, seconds, script=None, script_args=()):
    """``(req/s, p50 ms, non-2xx count)`` of one wrk run."""
    stats = wrk_stats(url, threads, connections, seconds, script, script_args)
    return stats["rate"], stats["p50"], stats["errors"]


def wrk_stats(url, threads, connections, seconds, script=None, script_args=()):
    """One wrk run as a dict: rate (req/s), p50 and p99 (ms), errors (non-2xx or 3xx)."""
    command = [WRK, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    if script:
        command += ["-s", str(script)]
    command.append(url)
    if script_args:
        command += ["--", *script_args]
    output = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    stats = {"rate": rate, "errors": int(errors.group(1)) if errors else 0}
    for percent in (50, 99):
        latency = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)", output, re.MULTILINE)
        stats[f"p{percent}"] = float(latency.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[latency.group(2)]
    return stats


def fill(env, prefix, count, start=0):
    """Bulk-insert ``count`` items under ``prefix`` (spread over sub-directories)."""
    code = f"""
import django; django.setup()
from objects.models import Item
from django.db import transaction
batch = []
for i in range({start}, {start + count}):
    item = Item(metadata={{"n": i}})
    item.set_key("{prefix}%03d/%07d" % (i % 1000, i))
    batch.append(item)
    if len(batch) == 5000:
        with transaction.atomic(): Item.objects.bulk_create(batch)
        batch = []
if batch:
    with transaction.atomic(): Item.objects.bulk_create(batch)
from django.db import connection
if connection.vendor == "postgresql":
    # What autovacuum does within a minute of a bulk load; without it the
    # planner still believes the table is small.
    with connection.cursor() as cursor: cursor.execute("ANALYZE objects_item")
"""
    subprocess.run([PYTHON, "-c", code], cwd=ROOT, env=dict(env, DJANGO_SETTINGS_MODULE="istore_site.settings"),
                   check=True)


def stream_rate(port, prefix):
    started = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{prefix}", timeout=600) as response:
        data = response.read()
    elapsed = time.perf_counter() - started
    count = data.count(b'"_id":')
    return count, count / elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", help="DATABASE_URL (a throwaway database: it is flushed); SQLite if unset")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    if not WRK:
        raise SystemExit("wrk is needed: apt-get install wrk")

    data_dir = Path(tempfile.mkdtemp(prefix="istore-bench-"))
    env = environment(data_dir, args.database)
    subprocess.run([PYTHON, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run([PYTHON, "manage.py", "flush", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    engine = "PostgreSQL" if args.database else "SQLite"
    rows = []

    port = free_port()
    floor = start_gunicorn(env, port, "benchmarks.floor_settings")
    floor_rate, floor_p50, _ = wrk(f"http://127.0.0.1:{port}/bench/x", 2, 8, args.seconds)
    floor_post, _, _ = wrk(f"http://127.0.0.1:{port}/bench/x", 2, 8, args.seconds, ROOT / "benchmarks/post.lua")
    stop(floor)
    print(f"floor: GET {floor_rate:.0f} req/s (p50 {floor_p50:.2f} ms), POST {floor_post:.0f} req/s", flush=True)

    server = start_gunicorn(env, port)
    try:
        one, _, err1 = wrk(f"http://127.0.0.1:{port}/", 1, 1, args.seconds, ROOT / "benchmarks/post.lua",
                           ["/bench/w1/"])
        eight, _, err8 = wrk(f"http://127.0.0.1:{port}/", 2, 8, args.seconds, ROOT / "benchmarks/post.lua",
                             ["/bench/w8/"])
        print(f"writes: 1 client {one:.0f}/s ({err1} errors), 8 clients {eight:.0f}/s ({err8} errors)", flush=True)
        rows.append(f"| {engine} | POST new keys, 1 client | {one:.0f} req/s | floor {floor_post:.0f} req/s | {err1} |")
        rows.append(f"| {engine} | POST new keys, 8 clients | {eight:.0f} req/s (target ≥ 1000) | "
                    f"floor {floor_post:.0f} req/s | {err8} |")

        fill(env, "/bench/list/", 1000)
        total = 1000
        for size in [int(s) for s in args.sizes.split(",")]:
            if size > total:
                started = time.perf_counter()
                fill(env, "/bench/bulk/", size - total, start=total)
                print(f"filled to {size} in {time.perf_counter() - started:.0f}s", flush=True)
                total = size
            rate, p50, err = wrk(f"http://127.0.0.1:{port}/bench/list/?limit=100", 1, 1, args.seconds)
            drate, dp50, derr = wrk(f"http://127.0.0.1:{port}/bench/?delimiter=/&limit=100", 1, 1, args.seconds)
            print(f"{size} keys: list p50 {p50:.2f} ms ({rate:.0f}/s); delimiter p50 {dp50:.2f} ms", flush=True)
            rows.append(f"| {engine} | first 100 under a prefix, {size:,} keys | p50 {p50:.2f} ms | "
                        f"floor p50 {floor_p50:.2f} ms | {err} |")
            rows.append(f"| {engine} | `delimiter=/` page of the root, {size:,} keys | p50 {dp50:.2f} ms | "
                        f"floor p50 {floor_p50:.2f} ms | {derr} |")
        fill(env, "/bench/stream/", 100000, start=10_000_000)
        big = stream_rate(port, "/bench/stream/")
        print(f"streamed {big[0]} items at {big[1]:.0f} items/s", flush=True)
        rows.append(f"| {engine} | full listing streamed ({big[0]:,} items) | {big[1]:,.0f} items/s "
                    f"(target ≥ 50,000) | | 0 |")
    finally:
        stop(server)
        shutil.rmtree(data_dir, ignore_errors=True)
    print("\n| database | measure | istore | floor, same run | non-2xx |\n|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
