"""Local HTTP servers for tests: one threaded, quiet server on 127.0.0.1, and free ports."""
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def unavailable(message):
    """A test's tool or service is missing: skip here, fail in CI (``.ci/run``
    sets ``CI=true`` and installs or starts all of them), so a skip can never
    hide a failure there."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def manage(*args, env, check=True, timeout=300):
    """Run ``manage.py ARGS`` with ``env`` as its whole environment, as an
    operator would; the CompletedProcess, its output captured as text. With
    ``check``, a failure fails the test with the command's error output."""
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if check and done.returncode != 0:
        pytest.fail(f"manage.py {' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
    return done


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalServer:
    """Serves GET on a free port of 127.0.0.1 by calling ``handle(request)``
    (a BaseHTTPRequestHandler speaking HTTP/1.1) in a thread per connection."""

    def __init__(self, handle, poll_interval=0.02):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                handle(self)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # clients that give up (timeouts, size limits) are expected here

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": poll_interval},
                                       daemon=True)
        self.thread.start()

    def url(self, path, host="127.0.0.1"):
        return f"http://{host}:{self.port}{path}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()
