"""
Load shedding: do cached reads keep answering while slow origins hold every slot?

Starts istore under gunicorn (2 workers, the project's configuration) on SQLite
in a temporary directory, a local origin whose every answer takes
``--origin-delay`` seconds (``Cache-Control: no-store``, so every request
fetches again), and a cached derivative (a 1920x1080 JPEG resized to 320,
computed once). Then, for each round:

1. **undisturbed**: ``wrk -t2 -c8`` on the cached derivative for ``--seconds``;
2. **disturbed**: the same wrk run while 32 client threads each GET their own
   slow-origin key in a loop (after a 503 they wait ``--backoff`` seconds, as
   a client honouring ``Retry-After`` would, though less);

and prints the cached reads' req/s and p99 in both, their ratio, and what the
slow requests got. Targets: p99 under 1 s and throughput at least 50 % of
the undisturbed run.

    flock -x /tmp/istore-heavy.lock .venv/bin/python benchmarks/load_shedding.py [--sync] [--rounds 2]

``--sync`` runs gunicorn's sync workers (one request per process, as before
the threaded worker) for comparison. Everything binds 127.0.0.1; wrk and the
origin run on the same machine as istore.
"""
import argparse
import collections
import io
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def slow_origin(delay):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            time.sleep(delay)
            body = b"slow origin bytes"
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def start_istore(data, sync):
    env = {**os.environ, "DJANGO_DEBUG": "false", "SECRET_KEY": "bench-" + "x" * 50, "ISTORE_DATA_DIR": str(data),
           "ISTORE_FILE_ROOTS": str(data / "img"), "ISTORE_ALLOW_ANONYMOUS_WRITES": "true",
           "ISTORE_ALLOW_LOOPBACK_SOURCES": "true", "ISTORE_ACCESS_LOG": "", "DATABASE_URL": ""}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    port = free_port()
    args = [str(Path(sys.executable).parent / "gunicorn"), "istore_site.wsgi", "-c", "gunicorn.conf.py", "-w", "2",
            "--bind", f"127.0.0.1:{port}"]
    if sync:
        args += ["-k", "sync", "--threads", "1"]
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            requests.get(base + "/_health", timeout=1)
            break
        except requests.RequestException:
            time.sleep(0.1)
    return base, process


def wrk(url, seconds):
    out = subprocess.run(["wrk", "-t2", "-c8", f"-d{seconds}s", "--timeout", "10s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()
    p99 = float(value) / {"us": 1e6, "ms": 1e3, "s": 1}[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, p99, int(errors.group(1)) if errors else 0


class SlowClients:
    """``count`` threads, each GETting its own slow-origin key in a loop until stopped."""

    def __init__(self, base, keys, backoff):
        self.stop = threading.Event()
        self.statuses = collections.Counter()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._loop, args=(base + key, backoff), daemon=True) for key in keys]

    def _loop(self, url, backoff):
        with requests.Session() as session:
            while not self.stop.is_set():
                try:
                    status = session.get(url, timeout=60).status_code
                except requests.RequestException as exc:
                    status = type(exc).__name__
                with self.lock:
                    self.statuses[status] += 1
                if status != 200:
                    self.stop.wait(backoff)

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(70)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sync", action="store_true", help="gunicorn's sync workers instead of istore's threads")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--slow", type=int, default=32)
    parser.add_argument("--origin-delay", type=float, default=5.0)
    parser.add_argument("--backoff", type=float, default=1.0)
    args = parser.parse_args()

    origin = slow_origin(args.origin_delay)
    with tempfile.TemporaryDirectory(prefix="istore-shedding-") as temp:
        data = Path(temp)
        (data / "img").mkdir()
        photo = data / "img" / "photo.jpg"
        Image.radial_gradient("L").resize((1920, 1080)).convert("RGB").save(photo, quality=90)
        base, process = start_istore(data, args.sync)
        try:
            cached = f"/bench/file://{photo}"
            assert requests.post(base + cached).status_code == 201
            url = base + cached + "?apply=resize&w=320"
            for _ in range(3):
                assert requests.get(url).status_code == 200, "the cached derivative does not answer"
            keys = [f"/slow/http://127.0.0.1:{origin.server_address[1]}/slow/{index}" for index in range(args.slow)]
            for key in keys:
                assert requests.post(base + key).status_code == 201
            wrk(url, 3)  # warm-up
            model = "sync workers" if args.sync else "istore's threaded worker"
            print(f"{model}, 2 workers; cached reads: wrk -t2 -c8 -d{args.seconds}s {url}")
            print(f"{args.slow} slow clients, origin delay {args.origin_delay:g} s, backoff {args.backoff:g} s after an error")
            for round_ in range(1, args.rounds + 1):
                calm = wrk(url, args.seconds)
                with SlowClients(base, keys, args.backoff) as slow:
                    time.sleep(1)  # let them take the slots
                    busy = wrk(url, args.seconds)
                print(f"round {round_}: undisturbed {calm[0]:,.0f} req/s p99 {calm[1] * 1000:.1f} ms; "
                      f"with slow origins {busy[0]:,.0f} req/s p99 {busy[1] * 1000:.1f} ms "
                      f"(non-2xx {busy[2]}); throughput {busy[0] / calm[0]:.0%}; "
                      f"slow requests: {dict(slow.statuses)}")
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(60)
            origin.shutdown()


if __name__ == "__main__":
    main()
