"""istore under a real gunicorn, for tests that kill or starve what it runs on."""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def gunicorn():
    """``start(env, workers) -> (base URL, master process)``; every server started is stopped."""
    started = []

    def start(env, workers):
        env = {**os.environ, "DJANGO_DEBUG": "false", "SECRET_KEY": "faults-" + "x" * 44,
               "ISTORE_ALLOW_ANONYMOUS_WRITES": "true", "ISTORE_ACCESS_LOG": "/dev/null", **env}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=120)
        port = free_port()
        process = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "istore_site.wsgi", "-c",
                                    "gunicorn.conf.py", "-w", str(workers), "--bind", f"127.0.0.1:{port}"],
                                   cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        started.append(process)
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                requests.get(f"{base}/_health", timeout=1)
                break
            except requests.RequestException:
                time.sleep(0.1)
        return base, process, env

    yield start
    for process in started:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
