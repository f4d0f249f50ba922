"""
How istore's gunicorn worker (objects/worker.py) handles connections, through a
real gunicorn: new connections spread evenly over the worker processes, a
keep-alive connection's requests are all answered whether they follow at once
or after a pause, and a thread waiting for a connection's next request never
keeps a queued connection waiting for long.
"""
import http.client
import os
import re
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from objects.worker import KEEPALIVE_LINGER
from tests.conftest import run_gunicorn, stop_gunicorn

HEALTH = b"GET /_health HTTP/1.1\r\nHost: istore\r\n\r\n"


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    data = tmp_path_factory.mktemp("connections")
    base, process, _ = run_gunicorn({"ISTORE_DATA_DIR": str(data), "DATABASE_URL": ""}, workers=2)
    yield base, process
    stop_gunicorn(process)


def connections_per_worker(master, port):
    """``{worker pid: established connections to port}`` for the workers of the gunicorn ``master``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 01: established
                inodes.add(fields[9])
    counts = {}
    for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split():
        held = 0
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            held += target.startswith("socket:[") and target[8:-1] in inodes
        counts[int(pid)] = held
    return counts


def burst(port, clients=8):
    """Connect ``clients`` at once, each asks /_health and keeps its connection; their sockets."""
    sockets = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(clients)]
    for client in sockets:
        client.sendall(HEALTH)
    for client in sockets:
        assert client.recv(65536).startswith(b"HTTP/1.1 200"), "a keep-alive /_health was not answered"
    time.sleep(0.2)
    return sockets


def close_all(sockets):
    for client in sockets:
        client.close()
    time.sleep(0.5)  # let the workers see the connections close


def test_a_burst_of_connections_is_spread_over_the_workers(two_workers):
    """Eight clients connecting at once (as wrk or a browser does) land four on each worker,
    give or take one, in each of three bursts."""
    base, master = two_workers
    port = urlsplit(base).port
    for _ in range(100):  # until both workers have started (the server answers once one has)
        sockets = burst(port, clients=2)
        counts = connections_per_worker(master.pid, port)
        close_all(sockets)
        if len(counts) == 2 and all(counts.values()):
            break
    for attempt in range(3):
        sockets = burst(port)
        counts = connections_per_worker(master.pid, port)
        close_all(sockets)
        assert len(counts) == 2 and sum(counts.values()) == 8, f"burst {attempt}: connections seen {counts}"
        assert all(3 <= held <= 5 for held in counts.values()), (
            f"burst {attempt}: eight connections were spread {sorted(counts.values())} over two workers")


def test_back_to_back_requests_on_one_connection_are_all_answered(two_workers):
    base, _ = two_workers
    connection = http.client.HTTPConnection(urlsplit(base).hostname, urlsplit(base).port, timeout=10)
    connection.connect()
    first = connection.sock
    for index in range(50):
        connection.request("GET", "/_health")
        response = connection.getresponse()
        assert response.status == 200, f"request {index} on one connection answered {response.status}"
        response.read()
    assert connection.sock is first, "the server closed a keep-alive connection between requests"
    connection.close()


def test_a_request_after_a_pause_on_a_kept_connection_is_answered(two_workers):
    """A pause longer than KEEPALIVE_LINGER hands the connection back to the main loop; its
    next request is still answered on the same connection."""
    base, _ = two_workers
    connection = http.client.HTTPConnection(urlsplit(base).hostname, urlsplit(base).port, timeout=10)
    connection.connect()
    first = connection.sock
    for index in range(3):
        connection.request("GET", "/_health")
        response = connection.getresponse()
        assert response.status == 200, f"request {index} after a pause answered {response.status}"
        response.read()
        time.sleep(KEEPALIVE_LINGER * 4)
    assert connection.sock is first, "the server closed a keep-alive connection during a pause"
    connection.close()


def test_a_waiting_thread_does_not_hold_up_a_queued_connection(tmp_path):
    """With one thread, a connection kept open after its answer does not delay another client
    for longer than the linger (the keep-alive timeout is 5 s)."""
    base, process, _ = run_gunicorn({"ISTORE_DATA_DIR": str(tmp_path), "DATABASE_URL": "",
                                     "ISTORE_THREADS": "1"}, workers=1)
    try:
        port = urlsplit(base).port
        kept = socket.create_connection(("127.0.0.1", port), timeout=10)
        kept.sendall(HEALTH)
        assert kept.recv(65536).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        other = socket.create_connection(("127.0.0.1", port), timeout=10)
        other.sendall(HEALTH)
        answer = other.recv(65536)
        waited = time.monotonic() - started
        kept.close()
        other.close()
        assert answer.startswith(b"HTTP/1.1 200"), f"the second client got {answer[:60]!r}"
        assert waited < 2, f"the second client waited {waited:.1f} s behind an idle kept connection"
    finally:
        stop_gunicorn(process)


def test_pipelined_requests_are_all_answered(two_workers):
    """Three requests sent in one write (HTTP/1.1 pipelining) get three answers, in order."""
    base, _ = two_workers
    client = socket.create_connection(("127.0.0.1", urlsplit(base).port), timeout=10)
    client.sendall(b"GET /_health HTTP/1.1\r\nHost: istore\r\n\r\n"
                   b"GET /nowhere/at/all?meta=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                   b"GET /_health HTTP/1.1\r\nHost: istore\r\n\r\n")
    received = b""
    deadline = time.monotonic() + 10
    while received.count(b"HTTP/1.1 ") < 3 and time.monotonic() < deadline:
        chunk = client.recv(65536)
        if not chunk:
            break
        received += chunk
    client.close()
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", received)
    assert statuses == [b"200", b"404", b"200"], f"three pipelined requests were answered {statuses}"
