"""A gunicorn worker killed in the middle of an upload (issue 9 §3).

The previous content stays served, no half-written content is ever visible,
and the blob left behind (if any) is removed by ``cleanup_content``.
"""
import os
import signal
import socket
import time
from pathlib import Path

import pytest
import requests

from tests.servers import manage


@pytest.fixture
def server(gunicorn, tmp_path):
    # Its own SQLite (no DATABASE_URL): the test kills processes.
    env = {"ISTORE_DATA_DIR": str(tmp_path), "DATABASE_URL": ""}
    base, master, env = gunicorn(env, workers=1)
    return {"base": base, "env": env, "data": tmp_path, "master": master}


def worker_pids(master):
    children = Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text().split()
    return [int(pid) for pid in children]


def test_worker_killed_mid_upload_leaves_the_previous_content(server):
    base, key = server["base"], "/kill/blob.bin"
    assert requests.put(base + key, data=b"version one", headers={"Content-Type": "text/plain"},
                        timeout=30).status_code == 201
    # Announce 10 MB, send 1 MB, then kill the worker that is reading it.
    sock = socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])), timeout=30)
    sock.sendall(f"PUT {key} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
                 f"Content-Length: {10 * 1024 * 1024}\r\n\r\n".encode() + b"x" * (1024 * 1024))
    time.sleep(1)
    for pid in worker_pids(server["master"]):
        os.kill(pid, signal.SIGKILL)
    sock.close()
    for _ in range(100):  # gunicorn starts a new worker
        try:
            response = requests.get(base + key, timeout=2)
            break
        except requests.RequestException:
            time.sleep(0.1)
    assert response.status_code == 200
    assert response.content == b"version one", "an interrupted upload must leave the previous content"
    cleanup = manage("cleanup_content", "--older-than", "1", env=server["env"], check=False)
    assert cleanup.returncode == 0, cleanup.stderr
    blobs = [p for p in (server["data"] / "content").rglob("*") if p.is_file()]
    assert len(blobs) == 1, f"only the live blob may remain after cleanup_content: {blobs}"
    assert requests.get(base + key, timeout=5).content == b"version one"
