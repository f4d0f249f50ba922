#!/usr/bin/env python3
"""Source fetching through istore, end to end (run by hand).

    cd /work/main && .venv/bin/python benchmarks/sources_bench.py [--size-mb 100] [--runs 5]
        [--workers 2] [--throughput-secs 0] [--concurrency 8] [--small-kb 100]

What it does:

1. writes a random file of ``--size-mb`` MiB (kept in /tmp between runs) and
   serves it from a local origin (a threaded http.server on 127.0.0.1 in this
   process, ``socket.sendfile``, ``Cache-Control: max-age=3600`` and an ETag);
2. starts istore under gunicorn (``--workers`` sync workers, SQLite and cache
   in a temporary directory, loopback sources and anonymous writes allowed);
3. uncached: ``--runs`` times, registers a new key whose source URL is unique
   (so every GET is a cache miss) and GETs it, measuring the time to the first
   body byte and to the last one, and checking the byte count;
4. cached: GETs one of those keys again ``--runs`` times;
5. reports the peak RSS (VmHWM) of each gunicorn worker afterwards: the whole
   source passed through it, so this shows it was streamed, not held;
6. with ``--throughput-secs N``: ``--concurrency`` client threads GET one
   cached ``--small-kb`` KiB source over keep-alive connections for N seconds
   and the rate is printed (the nginx comparison of issue 3 is a later step).

Current design note: an uncached source is streamed from the origin into the
cache file first and served from that file once complete, so the first-byte
latency of a cold source includes its whole download (see docs/sources.md).
"""
import argparse
import http.client
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PYTHON = os.path.join(ROOT, ".venv", "bin", "python")
GUNICORN = os.path.join(ROOT, ".venv", "bin", "gunicorn")
SAFE = "/:@!$&'()*+,;=~"


def make_file(path, size):
    if os.path.exists(path) and os.path.getsize(path) == size:
        return
    with open(path + ".tmp", "wb") as out:
        left = size
        while left:
            chunk = os.urandom(min(left, 4 << 20))
            out.write(chunk)
            left -= len(chunk)
    os.replace(path + ".tmp", path)


def start_origin(files):
    """Serve ``files[name]`` (a path) for any request path ending in /name."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            name = self.path.rsplit("/", 1)[-1]
            path = files.get(name)
            if path is None:
                self.send_error(404)
                return
            size = os.path.getsize(path)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.send_header("Cache-Control", "max-age=3600")
            self.send_header("ETag", f'"{name}-{size}"')
            self.end_headers()
            with open(path, "rb") as source:
                self.wfile.flush()
                self.connection.sendfile(source)

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            pass

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_istore(workdir, workers):
    port = free_port()
    env = dict(os.environ)
    env.update({
        "SECRET_KEY": "istore-bench-" + "x" * 40,
        "DJANGO_DEBUG": "false",
        "ISTORE_DATA_DIR": os.path.join(workdir, "data"),
        "ISTORE_CACHE_DIR": os.path.join(workdir, "cache"),
        "ISTORE_ALLOW_LOOPBACK_SOURCES": "true",
        "ISTORE_ALLOW_ANONYMOUS_WRITES": "true",
        "ISTORE_ACCESS_LOG": "/dev/null",
        "ISTORE_LOG_LEVEL": "ERROR",
        "ISTORE_WORKERS": str(workers),
    })
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    process = subprocess.Popen(
        [GUNICORN, "istore_site.wsgi", "--config", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
         "--workers", str(workers)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/_health")
            if conn.getresponse().status == 200:
                return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("istore did not start: " + process.stderr.read().decode()[-2000:])


def workers_of(master_pid):
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == master_pid:
                        pids.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return pids


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def register(port, key):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", quote(key, safe=SAFE), body="metadata={}",
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    response.read()
    if response.status not in (200, 201):
        raise SystemExit(f"POST {key} -> {response.status}")


def timed_get(port, key, expected):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    conn.request("GET", quote(key, safe=SAFE))
    response = conn.getresponse()
    first = response.read(1)
    first_byte = time.perf_counter() - started
    size = len(first)
    while True:
        chunk = response.read(1 << 20)
        if not chunk:
            break
        size += len(chunk)
    total = time.perf_counter() - started
    conn.close()
    if response.status != 200 or size != expected:
        raise SystemExit(f"GET {key} -> {response.status}, {size} of {expected} bytes")
    return first_byte, total


def throughput(port, key, secs, concurrency):
    counts = [0] * concurrency
    stop = time.monotonic() + secs
    path = quote(key, safe=SAFE)

    def client(n):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < stop:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise SystemExit(f"GET {key} -> {response.status}")
            counts[n] += 1
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(concurrency)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.monotonic() - started)


def describe(label, values):
    values = sorted(values)
    return (f"{label}: median {statistics.median(values) * 1000:.1f} ms, "
            f"min {values[0] * 1000:.1f} ms, max {values[-1] * 1000:.1f} ms (n={len(values)})")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--throughput-secs", type=float, default=0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--small-kb", type=int, default=100)
    args = parser.parse_args()

    size = args.size_mb << 20
    big = f"/tmp/istore-bench-source-{args.size_mb}m.bin"
    small = f"/tmp/istore-bench-source-{args.small_kb}k.bin"
    make_file(big, size)
    make_file(small, args.small_kb << 10)
    origin = start_origin({"big.bin": big, "small.bin": small})
    oport = origin.server_address[1]
    workdir = tempfile.mkdtemp(prefix="istore-bench-")
    process, port = start_istore(workdir, args.workers)
    try:
        print(f"source {args.size_mb} MiB from a local origin, istore: gunicorn {args.workers} sync workers, "
              f"{os.cpu_count()} CPUs")
        cold_first, cold_total, keys = [], [], []
        for _ in range(args.runs):
            key = f"/bench/http://127.0.0.1:{oport}/{uuid.uuid4().hex}/big.bin"
            register(port, key)
            first, total = timed_get(port, key, size)
            cold_first.append(first)
            cold_total.append(total)
            keys.append(key)
        print(describe("uncached  first byte", cold_first))
        print(describe("uncached  last byte ", cold_total))
        print(f"uncached  rate: {size / statistics.median(cold_total) / (1 << 20):.0f} MiB/s")
        warm_first, warm_total = [], []
        for _ in range(args.runs):
            first, total = timed_get(port, keys[0], size)
            warm_first.append(first)
            warm_total.append(total)
        print(describe("cached    first byte", warm_first))
        print(describe("cached    last byte ", warm_total))
        for pid in workers_of(process.pid):
            print(f"worker {pid}: peak RSS {peak_rss_mib(pid):.0f} MiB")
        if args.throughput_secs:
            key = f"/bench/http://127.0.0.1:{oport}/tp/small.bin"
            register(port, key)
            timed_get(port, key, args.small_kb << 10)
            rate = throughput(port, key, args.throughput_secs, args.concurrency)
            print(f"cached {args.small_kb} KiB source, {args.concurrency} clients: {rate:.0f} req/s")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        origin.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
