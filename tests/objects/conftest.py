"""Fixtures for the sources tests: a real HTTP origin on 127.0.0.1 that counts requests."""
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email.utils import formatdate

import pytest

from tests.servers import LocalServer


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict = field(default_factory=dict)
    etag: str | None = None  # answers If-None-Match with 304
    last_modified: float | None = None  # epoch seconds; answers If-Modified-Since with 304
    delay: float = 0.0  # seconds before the status line
    stall_after: int | None = None  # send this many body bytes, then stall for `delay`
    chunked: bool = False  # no Content-Length
    drip: float = 0.0  # after the first `stall_after` bytes (or none), one byte every `drip` seconds


class Origin:
    """An origin server in a thread: ``add(path, ...)`` routes, ``count[path]`` requests seen."""

    def __init__(self):
        self.routes = {}
        self.count = Counter()
        self.seen = []  # (path, headers dict, status sent)
        self.connections = set()  # sockets of the connections it served, for down()
        self.lock = threading.Lock()
        self.http = LocalServer(self._handle)
        self.port = self.http.port

    def url(self, path, host="127.0.0.1"):
        return self.http.url(path, host)

    def add(self, path, body=b"", **kwargs):
        self.routes[path] = Route(body=body, **kwargs)
        return self.url(path)

    def statuses(self, path):
        return [status for seen_path, _, status in self.seen if seen_path == path]

    def headers_seen(self, path):
        return [headers for seen_path, headers, _ in self.seen if seen_path == path]

    def _handle(self, request):
        path = request.path
        with self.lock:
            self.count[path] += 1
            self.connections.add(request.connection)
        route = self.routes.get(path)
        headers = {k: v for k, v in request.headers.items()}
        if route is None:
            status, route = 404, Route(body=b"no such path", status=404)
        else:
            status = route.status
        if route.delay and route.stall_after is None:
            time.sleep(route.delay)
        not_modified = False
        if route.etag and request.headers.get("If-None-Match") == route.etag:
            not_modified = True
        elif route.last_modified and "If-None-Match" not in request.headers and request.headers.get(
            "If-Modified-Since"
        ) == formatdate(route.last_modified, usegmt=True):
            not_modified = True
        if not_modified and status == 200:
            status = 304
        with self.lock:
            self.seen.append((path, headers, status))
        try:
            if "Date" in route.headers:  # the route's own Date (a response made in the past)
                request.send_response_only(status)
            else:
                request.send_response(status)
            for name, value in route.headers.items():
                request.send_header(name, value)
            if route.etag:
                request.send_header("ETag", route.etag)
            if route.last_modified:
                request.send_header("Last-Modified", formatdate(route.last_modified, usegmt=True))
            if status == 304:
                request.send_header("Content-Length", "0")
                request.end_headers()
                return
            if route.chunked:
                request.send_header("Transfer-Encoding", "chunked")
                request.end_headers()
                for start in range(0, len(route.body), 65536):
                    piece = route.body[start:start + 65536]
                    request.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                request.wfile.write(b"0\r\n\r\n")
                return
            request.send_header("Content-Length", str(len(route.body)))
            request.end_headers()
            if route.drip:
                start = route.stall_after or 0
                request.wfile.write(route.body[:start])
                for index in range(start, len(route.body)):
                    request.wfile.flush()
                    time.sleep(route.drip)
                    request.wfile.write(route.body[index:index + 1])
                return
            if route.stall_after is not None:
                request.wfile.write(route.body[: route.stall_after])
                request.wfile.flush()
                time.sleep(route.delay)
                request.close_connection = True
                return
            request.wfile.write(route.body)
        except (BrokenPipeError, ConnectionResetError):
            request.close_connection = True

    def down(self):
        """Stop answering at once: refuse new connections and cut the open ones."""
        self.close()
        with self.lock:
            for connection in self.connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.http.close()


def on_loopback(settings, server):
    """Run the local origin ``server`` for a fixture, with loopback sources allowed."""
    settings.ISTORE_ALLOW_LOOPBACK_SOURCES = True
    yield server
    server.close()


@pytest.fixture
def origin(settings):
    """A local origin; loopback sources are allowed while it runs."""
    yield from on_loopback(settings, Origin())


@pytest.fixture
def file_root(settings, tmp_path):
    """A directory istore may read through file:// sources."""
    root = tmp_path / "root"
    root.mkdir()
    settings.ISTORE_FILE_ROOTS = [str(root)]
    return root


def content(response):
    return b"".join(response.streaming_content) if response.streaming else response.content


def assert_exclusive_across_processes(tmp_path, lock_in_child, processes=4):
    """Fork ``processes`` children that each hold ``lock_in_child(n)`` while
    logging in/out; fail if two critical sections overlapped."""
    import os

    log = tmp_path / "sections.log"
    children = []
    for n in range(processes):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                with lock_in_child(n):
                    with open(log, "a") as out:
                        out.write(f"in {n}\n")
                    time.sleep(0.05)
                    with open(log, "a") as out:
                        out.write(f"out {n}\n")
            finally:
                os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    lines = log.read_text().split("\n")[:-1]
    assert len(lines) == 2 * processes, f"every child must log its section: {lines}"
    for i in range(0, len(lines), 2):
        assert lines[i].split()[1] == lines[i + 1].split()[1], f"critical sections overlapped: {lines}"
