"""
istore's gunicorn worker (objects/worker.py), through a real gunicorn with a
2-second worker timeout: parser errors are JSON, long answers to slow readers
reach their end, stuck requests and stalled clients are cut, and request bodies
read in blocks arrive whole.
"""
import json
import os
import socket
import threading
import time

import pytest
import requests
from PIL import Image

from tests.conftest import run_gunicorn, stop_gunicorn
from tests.servers import LocalServer

TIMEOUT = 2  # the worker timeout of the server under test (gunicorn takes whole seconds)
LARGE = 8 * 1024 * 1024  # more than the kernel buffers on both sides hold, so the server waits on the reader


class HangingOrigin:
    """An origin whose /hang answers only once released (at most 30 s)."""

    def __init__(self):
        self.release = threading.Event()
        self.arrived = threading.Semaphore(0)
        self.http = LocalServer(self._handle)

    def _handle(self, request):
        self.arrived.release()
        self.release.wait(30)
        body = b"late"
        try:
            request.send_response(200)
            request.send_header("Content-Length", str(len(body)))
            request.end_headers()
            request.wfile.write(body)
        except OSError:
            pass

    def close(self):
        self.release.set()
        self.http.close()


@pytest.fixture(scope="module")
def origin():
    server = HangingOrigin()
    yield server
    server.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, origin):
    data = tmp_path_factory.mktemp("worker")
    base, process, _ = run_gunicorn({"ISTORE_DATA_DIR": str(data), "DATABASE_URL": "",
                                     "ISTORE_WORKER_TIMEOUT": str(TIMEOUT), "ISTORE_THREADS": "8",
                                     "ISTORE_ALLOW_LOOPBACK_SOURCES": "true"}, workers=1)
    yield base
    stop_gunicorn(process)


@pytest.fixture(scope="module")
def large_keys(server):
    """A listing, uploaded content and a processed result, each about ``LARGE`` bytes."""
    filler = "x" * 1_000_000
    for index in range(LARGE // 1_000_000 + 1):
        response = requests.put(f"{server}/stream/list/{index}", data={"metadata": json.dumps({"f": filler})})
        assert response.status_code == 201, response.text
    blob = bytes(range(256)) * (LARGE // 256)
    assert requests.put(f"{server}/stream/blob.bin", data=blob,
                        headers={"Content-Type": "application/octet-stream"}).status_code == 201
    noise = Image.frombytes("L", (3000, 3000), os.urandom(3000 * 3000))
    png = _png(noise)
    assert requests.put(f"{server}/stream/noise.png", data=png, headers={"Content-Type": "image/png"}).ok
    return {"listing": "/stream/list/", "content": "/stream/blob.bin",
            "processed": "/stream/noise.png?apply=flipH&format=jpeg&quality=100"}


def _png(image):
    import io

    out = io.BytesIO()
    image.save(out, "PNG", compress_level=0)
    return out.getvalue()


def raw_request(base, target, extra=b""):
    """Send a request by hand; the connected socket (its receive buffer kept small)."""
    host, port = base.rsplit("/", 1)[1].split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
    sock.connect((host, int(port)))
    sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + extra + b"\r\n")
    return sock


def read_all(sock, pause=0.0, chunk=64 * 1024):
    """Everything the server sends until it closes, reading ``chunk`` bytes every ``pause`` seconds."""
    sock.settimeout(30)
    parts = []
    while True:
        data = sock.recv(chunk)
        if not data:
            return b"".join(parts)
        parts.append(data)
        time.sleep(pause)


def split_response(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def dechunked(body):
    out, rest = [], body
    while rest:
        size, _, rest = rest.partition(b"\r\n")
        length = int(size, 16)
        if length == 0:
            break
        out.append(rest[:length])
        rest = rest[length + 2:]
    return b"".join(out)


# ---------------------------------------------------------------- parser errors


def test_a_request_line_over_the_limit_is_414_json(server):
    status, headers, body = split_response(read_all(raw_request(server, b"/" + b"a" * 70_000)))
    assert status == 414, f"a 70 KB request line should be 414, got {status}: {body[:200]!r}"
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"] == "request_line_too_long"


def test_a_4096_byte_key_percent_encoded_passes_the_request_line_limit(server):
    key = "/" + "é" * 2047  # 4095 bytes of UTF-8, 12 KiB percent-encoded
    response = requests.get(server + requests.utils.quote(key) + "?meta=1")
    assert response.status_code == 404, f"the longest key must reach istore, got {response.status_code}"
    assert response.json()["error"] == "no_such_key"


def test_headers_over_the_limit_are_431_json(server):
    status, headers, body = split_response(read_all(raw_request(server, b"/x", b"X-Big: " + b"b" * 20_000 + b"\r\n")))
    assert status == 431, f"a 20 KB header should be 431, got {status}: {body[:200]!r}"
    assert json.loads(body)["error"] == "headers_too_large"


def test_too_many_headers_are_431_json(server):
    extra = b"".join(b"X-H%d: v\r\n" % index for index in range(150))
    status, _, body = split_response(read_all(raw_request(server, b"/x", extra)))
    assert status == 431, f"150 headers should be 431, got {status}: {body[:200]!r}"
    assert json.loads(body)["error"] == "headers_too_large"


def test_a_malformed_request_is_400_json(server):
    host, port = server.rsplit("/", 1)[1].split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"GET /x HTTP/9.9\r\n\r\n")
        status, headers, body = split_response(read_all(sock))
    assert status == 400, f"a bad HTTP version should be 400, got {status}"
    assert json.loads(body)["error"] == "bad_http_request"


# ---------------------------------------------------------------- long answers and stuck requests


def test_long_answers_to_slow_readers_reach_their_end(server, large_keys):
    """A listing, uploaded content and a processed result, each read slowly for longer than the
    worker timeout (three readers at once), arrive whole."""
    expected = {}
    for kind, target in large_keys.items():
        response = requests.get(server + target)
        assert response.status_code == 200 and len(response.content) > LARGE // 2, response.text[:300]
        expected[kind] = response.content
    results = {}

    def slow_read(kind):
        started = time.monotonic()
        raw = read_all(raw_request(server, large_keys[kind].encode()), pause=0.03)
        results[kind] = (split_response(raw), time.monotonic() - started)

    readers = [threading.Thread(target=slow_read, args=(kind,)) for kind in large_keys]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(60)
    for kind, ((status, headers, body), elapsed) in results.items():
        if headers.get("transfer-encoding") == "chunked":
            body = dechunked(body)
        assert status == 200, f"the {kind} answered {status}"
        assert body == expected[kind], f"the {kind} stopped after {len(body)} of {len(expected[kind])} bytes"
        assert elapsed > 2 * TIMEOUT, f"the slow reader of the {kind} took only {elapsed:.1f} s: it proves nothing"
    assert set(results) == set(large_keys), f"readers that did not finish: {set(large_keys) - set(results)}"


def test_a_stuck_request_is_answered_504_json(server, origin):
    key = f"/stuck/http://127.0.0.1:{origin.http.port}/hang"
    assert requests.post(server + key).status_code == 201
    started = time.monotonic()
    response = requests.get(server + key, timeout=30)
    elapsed = time.monotonic() - started
    origin.release.set()
    assert response.status_code == 504, f"a request stuck past the worker timeout should be 504, got {response.status_code}"
    assert response.json()["error"] == "request_timeout"
    assert elapsed < 10 * TIMEOUT, f"the stuck request was cut only after {elapsed:.1f} s"


def test_a_client_that_stops_reading_is_cut(server, large_keys):
    sock = raw_request(server, large_keys["content"].encode())
    sock.recv(1024)
    time.sleep(2 * TIMEOUT + 2)  # stop reading: the server's writes stall past the worker timeout
    received = read_all(sock)
    assert len(received) < LARGE, "a client that stopped reading was still sent the whole body"
    assert requests.get(server + "/_health", timeout=5).status_code == 200


# ---------------------------------------------------------------- bodies read in blocks

def _send_slowly(sock, data, piece=100_003):
    """Send ``data`` in odd-sized pieces with pauses, so the server reads partial blocks."""
    for start in range(0, len(data), piece):
        sock.sendall(data[start:start + piece])
        if start // piece % 10 == 0:
            time.sleep(0.01)


def _responses(sock, count):
    """``count`` (status, JSON body) answers read from a keep-alive connection."""
    sock.settimeout(30)
    buffer, answers = b"", []
    while len(answers) < count:
        head, separator, rest = buffer.partition(b"\r\n\r\n")
        if separator:
            status, headers, _ = split_response(head + separator)
            length = int(headers["content-length"])
            if len(rest) >= length:
                answers.append((status, json.loads(rest[:length])))
                buffer = rest[length:]
                continue
        data = sock.recv(65536)
        assert data, f"the server closed the connection after {len(answers)} of {count} answers"
        buffer += data
    return answers


def test_bodies_arrive_whole_and_the_connection_serves_the_next_request(server):
    import hashlib

    bodies = {b"/blocks/first.bin": os.urandom(3 * 1024 * 1024 + 4321),
              b"/blocks/second.bin": os.urandom(777)}
    host, port = server.rsplit("/", 1)[1].split(":")
    with socket.create_connection((host, int(port))) as sock:
        for key, body in bodies.items():  # one keep-alive connection
            _send_slowly(sock, b"PUT " + key + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               b"Content-Type: application/octet-stream\r\n"
                               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            [(status, item)] = _responses(sock, 1)
            assert status == 201, item
            assert item["_content"]["etag"] == hashlib.sha256(body).hexdigest(), f"{key}: body read wrong"
    assert requests.get(f"{server}/blocks/first.bin").content == bodies[b"/blocks/first.bin"], \
        "the stored bytes differ from those sent"


def test_a_chunked_body_arrives_whole(server):
    import hashlib

    body = os.urandom(2 * 1024 * 1024 + 99)
    host, port = server.rsplit("/", 1)[1].split(":")
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 70_001]), body[i:i + 70_001])
                      for i in range(0, len(body), 70_001)) + b"0\r\n\r\n"
    with socket.create_connection((host, int(port))) as sock:
        head = (b"PUT /blocks/chunked.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                b"Content-Type: application/octet-stream\r\n\r\n")
        _send_slowly(sock, head + chunks)
        [(status, item)] = _responses(sock, 1)
    assert status == 201, item
    assert item["_content"]["etag"] == hashlib.sha256(body).hexdigest(), "a chunked body was read wrong"
