"""
Soak: a bounded mixed load against istore under gunicorn, then a check that
every acknowledged write is present and nothing unacknowledged appears
(issue 9 §4). Run by hand:

    .venv/bin/python benchmarks/soak.py --minutes 10 --clients 16
    .venv/bin/python benchmarks/soak.py --minutes 10 --clients 16 \\
        --database postgres://postgres@127.0.0.1:5432/istore_soak   # a throwaway database

Each client owns a key space (/soak/c<i>/...), so the expected state of every
key is known exactly from the answers the client got: 200/201 means the write
happened, a 4xx means it did not, and anything else (5xx, timeout) makes the
key uncertain and it is left out of the check (and counted). The mix is POST
(merge), PUT (replace), GET ?meta=1, GET of a processed image, a paged list,
DELETE, and uploads of PNGs of a random width to a few keys per client, read
back as they are or through ?apply=info: every read must show the width of
the client's last acknowledged upload (a stale read would be a replayed or
cached answer outliving a write). Prints requests, errors and p50/p99 per
kind, then the check.
"""
import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_bench import environment, free_port, start_gunicorn, stop  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MIX = [("post", 25), ("put", 10), ("get", 20), ("processed", 10), ("list", 10), ("delete", 10),
       ("upload", 5), ("read", 10)]
KEYS_PER_CLIENT = 40
BLOBS_PER_CLIENT = 4


def png_bytes(width=200, height=150):
    from io import BytesIO

    from PIL import Image

    out = BytesIO()
    Image.new("RGB", (width, height), (40, 120, 200)).save(out, "PNG")
    return out.getvalue()


def png_width(data):
    """The width in a PNG's IHDR chunk."""
    return int.from_bytes(data[16:20], "big") if data[:8] == b"\x89PNG\r\n\x1a\n" else None


class Client(threading.Thread):
    def __init__(self, index, base, deadline, seed):
        super().__init__(daemon=True)
        self.index, self.base, self.deadline = index, base, deadline
        self.random = random.Random(seed)
        self.session = requests.Session()
        self.expected = {}  # key -> metadata dict, or None when deleted
        self.uncertain = set()
        self.blobs = {}  # blob key -> width of the PNG last uploaded there (uncertain ones removed)
        self.stale = []  # (key, expected width, width read): a read that missed an acknowledged upload
        self.latency = defaultdict(list)
        self.statuses = defaultdict(lambda: defaultdict(int))

    def key(self):
        return f"/soak/c{self.index:02d}/k{self.random.randrange(KEYS_PER_CLIENT):03d}"

    def call(self, kind, method, path, **kwargs):
        started = time.perf_counter()
        try:
            response = self.session.request(method, self.base + path, timeout=30, **kwargs)
            status = response.status_code
        except requests.RequestException:
            response, status = None, "error"
        self.latency[kind].append(time.perf_counter() - started)
        self.statuses[kind][status] += 1
        return response, status

    def run(self):
        kinds, weights = zip(*MIX)
        while time.monotonic() < self.deadline:
            kind = self.random.choices(kinds, weights)[0]
            getattr(self, kind)()

    def post(self):
        key, field = self.key(), f"f{self.random.randrange(5)}"
        value = self.random.randrange(1000)
        patch = {field: value} if self.random.random() > 0.1 else {field: None}
        response, status = self.call("post", "POST", key, data={"metadata": json.dumps(patch)})
        self.settle(key, status, lambda old: {k: v for k, v in {**(old or {}), **patch}.items() if v is not None})

    def put(self):
        key, value = self.key(), {"replaced": self.random.randrange(1000)}
        response, status = self.call("put", "PUT", key, data={"metadata": json.dumps(value)})
        self.settle(key, status, lambda old: value)

    def delete(self):
        key = self.key()
        response, status = self.call("delete", "DELETE", key)
        if status == 200:
            self.expected[key] = None
        elif status != 404:
            self.uncertain.add(key)

    def settle(self, key, status, change):
        if status in (200, 201):
            self.expected[key] = change(self.expected.get(key))
        elif not (isinstance(status, int) and 400 <= status < 500):
            self.uncertain.add(key)

    def get(self):
        self.call("get", "GET", self.key() + "?meta=1")

    def processed(self):
        width = self.random.choice([20, 40, 60, 80, 100])
        self.call("processed", "GET", f"/soak/img.png?apply=resize&w={width}")

    def list(self):
        self.call("list", "GET", f"/soak/c{self.index:02d}/?limit=20")

    def upload(self):
        key = f"/soak/blobs/c{self.index:02d}/b{self.random.randrange(BLOBS_PER_CLIENT)}.png"
        width = self.random.randrange(8, 200)
        response, status = self.call("upload", "PUT", key, data=png_bytes(width, 8),
                                     headers={"Content-Type": "image/png"})
        if status in (200, 201):
            self.blobs[key] = width
        else:
            self.blobs.pop(key, None)

    def read(self):
        """GET an uploaded blob, as is or through ?apply=info, and compare with
        the last upload this client had acknowledged (it is the only writer)."""
        if not self.blobs:
            return
        key = self.random.choice(sorted(self.blobs))
        if self.random.random() < 0.5:
            response, status = self.call("read", "GET", key)
            width = png_width(response.content) if status == 200 else None
        else:
            response, status = self.call("read", "GET", key + "?apply=info")
            width = response.json().get("width") if status == 200 else None
        if status == 200 and width != self.blobs[key]:
            self.stale.append((key, self.blobs[key], width))


def check(base, clients):
    """Every acknowledged write present, nothing unacknowledged: (checked, lost, phantom, uncertain)."""
    lost, phantom, checked, uncertain = [], [], 0, 0
    for client in clients:
        listed = {item["_filepath"]: item["metadata"]
                  for item in requests.get(f"{base}/soak/c{client.index:02d}/", timeout=60).json()}
        for key, metadata in client.expected.items():
            if key in client.uncertain:
                uncertain += 1
                continue
            checked += 1
            if metadata is None and key in listed:
                phantom.append(key)
            elif metadata is not None and listed.get(key) != metadata:
                lost.append((key, metadata, listed.get(key)))
        for key in listed:
            if key not in client.expected and key not in client.uncertain:
                phantom.append(key)
    return checked, lost, phantom, uncertain


def percentile(values, fraction):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * fraction))] * 1000 if values else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--database")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="istore-soak-"))
    env = environment(work / "data", args.database)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run([sys.executable, "manage.py", "flush", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    port = free_port()
    server = start_gunicorn(env, port)
    base = f"http://127.0.0.1:{port}"
    try:
        requests.put(f"{base}/soak/img.png", data=png_bytes(), headers={"Content-Type": "image/png"}, timeout=30)
        deadline = time.monotonic() + args.minutes * 60
        clients = [Client(i, base, deadline, args.seed * 1000 + i) for i in range(args.clients)]
        started = time.monotonic()
        for client in clients:
            client.start()
        for client in clients:
            client.join(args.minutes * 60 + 120)
        elapsed = time.monotonic() - started
        checked, lost, phantom, uncertain = check(base, clients)
        stale = [read for client in clients for read in client.stale]
    finally:
        stop(server)
    engine = "PostgreSQL" if args.database else "SQLite"
    total = sum(len(c.latency[k]) for c in clients for k, _ in MIX)
    print(f"{engine}, {args.clients} clients, {elapsed:.0f} s, {total} requests ({total / elapsed:.0f}/s)")
    print("| kind | requests | statuses | p50 ms | p99 ms |\n|---|---|---|---|---|")
    server_errors = 0
    for kind, _ in MIX:
        times = [t for c in clients for t in c.latency[kind]]
        statuses = defaultdict(int)
        for client in clients:
            for status, count in client.statuses[kind].items():
                statuses[status] += count
        server_errors += sum(n for s, n in statuses.items() if s == "error" or s >= 500)
        summary = " ".join(f"{s}:{n}" for s, n in sorted(statuses.items(), key=str))
        print(f"| {kind} | {len(times)} | {summary} | {percentile(times, .5):.1f} | {percentile(times, .99):.1f} |")
    print(f"5xx or failed requests: {server_errors}; keys checked: {checked}; lost writes: {len(lost)}; "
          f"phantom keys: {len(phantom)}; uncertain keys skipped: {uncertain}; "
          f"stale content reads: {len(stale)}")
    for item in (lost + phantom + stale)[:10]:
        print("  ", item)
    sys.exit(1 if server_errors or lost or phantom or stale else 0)


if __name__ == "__main__":
    main()
