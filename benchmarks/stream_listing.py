"""
A full streamed listing of a large directory through gunicorn, with a worker
timeout far shorter than the stream: does it reach its end, and how fast?

Fills ``--keys`` keys under ``/big/`` (``objects.writing.upsert_many`` in
batches, in a ``manage.py shell`` of the server's own settings), starts istore
under gunicorn (2 workers) with ``ISTORE_WORKER_TIMEOUT=--timeout``, then
streams ``GET /big/`` once and prints the items, the seconds and items/s, and
whether the JSON array was complete.

    flock -x /tmp/istore-heavy.lock .venv/bin/python benchmarks/stream_listing.py --keys 1000000
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/istore_stream .venv/bin/python benchmarks/stream_listing.py

With PostgreSQL the database named in ``DATABASE_URL`` is created (and
dropped at the end) under a unique name.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.servers import free_port  # noqa: E402

FILL = """
from objects import writing
count, batch = {keys}, 20000
for start in range(0, count, batch):
    writing.upsert_many([(f"/big/{{index:08d}}", {{"n": index}}) for index in range(start, min(count, start + batch))])
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--timeout", type=int, default=5, help="ISTORE_WORKER_TIMEOUT of the server (seconds)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="istore-stream-") as temp:
        env = {**os.environ, "DJANGO_DEBUG": "false", "SECRET_KEY": "bench-" + "x" * 50, "ISTORE_DATA_DIR": temp,
               "ISTORE_ACCESS_LOG": "", "ISTORE_WORKER_TIMEOUT": str(args.timeout)}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        database = env.get("DATABASE_URL", "")
        if database.startswith("postgres"):
            env["DATABASE_URL"] = database = database.rsplit("/", 1)[0] + f"/istore_stream_{uuid.uuid4().hex[:8]}"
            subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", database.rsplit("/", 1)[1]], check=True)
        try:
            subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
            started = time.monotonic()
            subprocess.run([sys.executable, "manage.py", "shell", "-c", FILL.format(keys=args.keys)], cwd=ROOT,
                           env=env, check=True)
            print(f"filled {args.keys:,} keys in {time.monotonic() - started:.0f} s "
                  f"({'PostgreSQL' if database else 'SQLite'})")
            port = free_port()
            server = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "istore_site.wsgi", "-c",
                                       "gunicorn.conf.py", "-w", "2", "--bind", f"127.0.0.1:{port}"],
                                      cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True)
            try:
                base = f"http://127.0.0.1:{port}"
                for _ in range(300):
                    try:
                        requests.get(base + "/_health", timeout=1)
                        break
                    except requests.RequestException:
                        time.sleep(0.1)
                started = time.monotonic()
                body = requests.get(base + "/big/", timeout=600).content
                elapsed = time.monotonic() - started
                items = json.loads(body)
                complete = len(items) == args.keys and items[-1]["_filepath"] == f"/big/{args.keys - 1:08d}"
                print(f"streamed {len(items):,} items ({len(body) / 2**20:.0f} MiB) in {elapsed:.1f} s: "
                      f"{len(items) / elapsed:,.0f} items/s; worker timeout {args.timeout} s; "
                      f"complete: {complete}")
            finally:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(60)
        finally:
            if database.startswith("postgres"):
                subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", database.rsplit("/", 1)[1]])


if __name__ == "__main__":
    main()
