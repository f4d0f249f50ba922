"""Uploads under writers that are killed (issue 21): gunicorn's workers are
SIGKILLed at random points while clients upload, one and then all of them;
once gunicorn has started new ones, every acknowledged upload reads back
byte-identical, no item names missing or short content, and
``cleanup_content`` leaves exactly the blobs that items name.

SIGKILL keeps the kernel's page cache, so this shows what a process crash
leaves; what a power cut leaves rests on the order of the durable steps,
tested in tests/objects/test_durable.py.
"""
import hashlib
import os
import random
import signal
import socket
import threading
import time
import uuid

import pytest
import requests
from django.conf import settings

from tests.servers import manage

SEED = 21
SIZES = (1, 4096, 70_000, 600_000, 2_600_000)  # tiny, in memory, spooled to a temporary file


@pytest.fixture
def database_url():
    """Its own database, as the suite runs: a SQLite file, or a throwaway PostgreSQL database."""
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        yield ""
        return
    import psycopg

    db = settings.DATABASES["default"]
    admin = dict(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"],
                 password=db["PASSWORD"] or None, dbname="postgres")
    name = f"istore_killed_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(**admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield f"postgres://{admin['user']}@{admin['host']}:{admin['port']}/{name}"
    with psycopg.connect(**admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Uploader(threading.Thread):
    """Uploads fresh keys until told to stop; keeps what was acknowledged."""

    def __init__(self, base, number, stop):
        super().__init__(daemon=True)
        self.base, self.number, self.stop = base, number, stop
        self.random = random.Random(SEED + number)
        self.acknowledged = {}  # key -> sha256 of the bytes
        self.attempts = 0

    def run(self):
        session = requests.Session()
        while not self.stop.is_set():
            self.attempts += 1
            key = f"/crash/{self.number}/{self.attempts}.bin"
            data = self.random.randbytes(self.random.choice(SIZES))
            try:
                if self.random.random() < 0.5:
                    response = session.put(self.base + key, data=data, timeout=10,
                                           headers={"Content-Type": "application/octet-stream"})
                else:
                    response = session.post(self.base + key, files={"file": ("f.bin", data)}, timeout=10)
            except requests.RequestException:
                session = requests.Session()
                continue
            if response.status_code in (200, 201):
                self.acknowledged[key] = hashlib.sha256(data).hexdigest()


def start_slow_upload(base):
    """A raw PUT that announces 8 MiB and sends 1 MiB: always in flight when the kill comes."""
    sock = socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])), timeout=30)
    sock.sendall(f"PUT /crash/slow.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
                 f"Content-Length: {8 * 1024 * 1024}\r\n\r\n".encode() + b"s" * (1024 * 1024))
    return sock


def worker_pids(master):
    return [int(pid) for pid in open(f"/proc/{master.pid}/task/{master.pid}/children").read().split()]


def listed_items(base):
    response = requests.get(base + "/crash/", timeout=30)
    assert response.status_code == 200, f"listing after the kills failed: {response.status_code}"
    return response.json()


def wait_for_workers(base, master, killed):
    for _ in range(600):
        alive = set(worker_pids(master)) - killed
        if alive:
            try:
                if requests.get(base + "/_health", timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
        time.sleep(0.05)
    pytest.fail("gunicorn did not start new workers after the kill")


def test_acknowledged_uploads_survive_killed_writers(gunicorn, tmp_path, database_url):
    env = {"ISTORE_DATA_DIR": str(tmp_path), "DATABASE_URL": database_url,
           "ISTORE_UPLOAD_TEMP_DIR": str(tmp_path / "uploads")}
    (tmp_path / "uploads").mkdir()
    base, master, env = gunicorn(env, workers=2)
    schedule = random.Random(SEED)
    stop = threading.Event()
    uploaders = [Uploader(base, number, stop) for number in range(4)]
    for uploader in uploaders:
        uploader.start()
    slow = start_slow_upload(base)
    time.sleep(schedule.uniform(0.3, 0.8))
    killed = set(worker_pids(master)[:1])
    os.kill(next(iter(killed)), signal.SIGKILL)  # one worker, mid-request
    time.sleep(schedule.uniform(0.3, 0.8))
    for pid in worker_pids(master):  # every writer left, as a crashed machine stops them
        os.kill(pid, signal.SIGKILL)
        killed.add(pid)
    crashed = time.monotonic()
    stop.set()
    for uploader in uploaders:
        uploader.join(timeout=30)
    slow.close()
    acknowledged = {key: sha for uploader in uploaders for key, sha in uploader.acknowledged.items()}
    attempts = sum(uploader.attempts for uploader in uploaders)
    assert acknowledged and len(acknowledged) < attempts, \
        f"the kills must fall during uploads ({len(acknowledged)} of {attempts} acknowledged)"

    wait_for_workers(base, master, killed)
    for key, sha in acknowledged.items():
        response = requests.get(base + key, timeout=30)
        assert response.status_code == 200, f"acknowledged upload {key} is gone: {response.status_code}"
        assert hashlib.sha256(response.content).hexdigest() == sha, f"acknowledged upload {key} changed"
    items = listed_items(base)
    print(f"{len(acknowledged)} of {attempts} uploads acknowledged, {len(items)} items")
    for item in items:
        response = requests.get(base + item["_filepath"], timeout=30)
        assert response.status_code == 200, f"{item['_filepath']} names content that is missing"
        assert len(response.content) == item["_content"]["size"] and \
            hashlib.sha256(response.content).hexdigest() == item["_content"]["etag"], \
            f"{item['_filepath']} names content that is short or different"
    assert "/crash/slow.bin" not in {item["_filepath"] for item in items}, "an unfinished upload was registered"

    time.sleep(max(0.0, crashed + 1.1 - time.monotonic()))  # orphans are then older than --older-than
    manage("cleanup_content", "--older-than", "1", env=env)
    blobs = sorted(p for p in (tmp_path / "content").rglob("*") if p.is_file())
    assert len(blobs) == len(items), f"after cleanup_content, exactly the {len(items)} named blobs remain: {blobs}"
