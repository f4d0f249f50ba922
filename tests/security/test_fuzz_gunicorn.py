"""
The fuzz of the HTTP API through a real gunicorn (istore's worker and
configuration), where Django's test client cannot go: gunicorn's parser and
limits (414 / 431 / 400 JSON), the replay layer in front of Django (requests
are often sent two or three times, and processed results are not cached, so
replays recompute through the capacity slots), and the parameter bounds.

The same strategies and verdicts as ``test_fuzz_api.py``; requests are sent
with ``http.client`` exactly as drawn (raw paths, odd headers, bodies cut
short of their ``Content-Length``). The world is seeded over HTTP into the
server's own SQLite database; examples are not rolled back.
``benchmarks/fuzz_api.py --gunicorn`` runs it for 5 minutes.
"""
import http.client
import json
import os
import socket
import time
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.conftest import run_gunicorn, stop_gunicorn, url
from tests.security import conftest as media
from tests.security.test_fuzz_api import VALID_TOKEN, Failure, _seed, judge, requests, run_for_budget

MAX_EXAMPLES = int(os.environ.get("ISTORE_FUZZ_EXAMPLES", "60"))
TOKEN = "f" * 40


class HttpApi:
    """What ``_seed`` needs of the test client, over HTTP."""

    def __init__(self, base):
        self.base = base

    @staticmethod
    def _headers(extra, content_type=None):
        headers = {"Authorization": extra["HTTP_AUTHORIZATION"]} if "HTTP_AUTHORIZATION" in extra else {}
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def upload(self, key, data, content_type=None, **extra):
        return Answer(*exchange(self.base, "PUT", url(key), data, self._headers(extra, content_type)))

    def post(self, key, metadata, **extra):
        body = ("metadata=" + json.dumps(metadata)).encode()
        return Answer(*exchange(self.base, "POST", url(key), body,
                                   self._headers(extra, "application/x-www-form-urlencoded")))


class Answer:
    """An HTTP answer shaped as ``judge`` reads a Django response."""

    def __init__(self, status, headers, data):
        self.status_code, self.headers, self.content = status, headers, data

    def get(self, name, default=None):
        return self.headers.get(name.lower(), default)


def exchange(base, method, target, body=b"", headers=None, truncate_to=None):
    """Send one request as given; ``(status, lower-case headers, body)``.

    A request whose framing is broken (a body cut short of its
    ``Content-Length``, or ``Transfer-Encoding`` beside it) may be refused and
    closed by the server while the rest of it is still on its way; the kernel
    then resets the connection and may discard the answer before it is read.
    That is TCP, not istore: such an exchange gives ``(None, {}, b"")``.
    """
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    broken = truncate_to is not None or any(name.lower() == "transfer-encoding" for name in headers or {})
    try:
        connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", "127.0.0.1")
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        if body or method in ("POST", "PUT", "PATCH"):
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders()
        try:
            if truncate_to is not None:
                connection.sock.sendall(body[:truncate_to])
                connection.sock.shutdown(socket.SHUT_WR)
            elif body:
                connection.sock.sendall(body)
        except OSError:
            if not broken:
                raise
        try:
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            if broken:
                return None, {}, b""
            raise
        return response.status, {name.lower(): value for name, value in response.getheaders()}, data
    finally:
        connection.close()


def http_headers(request):
    """The drawn request's WSGI-style headers as HTTP headers (REMOTE_ADDR cannot be sent)."""
    headers = {}
    for name, value in request.headers.items():
        if not name.startswith("HTTP_"):
            continue
        if VALID_TOKEN in value:
            value = value.replace(VALID_TOKEN, f"Token {TOKEN}")
        headers[name[5:].replace("_", "-").title()] = value
    if request.content_type:
        headers["Content-Type"] = request.content_type
    return {name: value for name, value in headers.items() if "\r" not in value and "\n" not in value}


@st.composite
def batches(draw, world):
    """A few requests; often a GET sent again, so the replay layer answers it."""
    batch = draw(st.lists(requests(world), min_size=1, max_size=3))
    repeats = [request for request in batch if request.method == "GET" and draw(st.booleans())]
    return batch + repeats * draw(st.integers(1, 2))


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    data = tmp_path_factory.mktemp("fuzz-gunicorn")
    root = tmp_path_factory.mktemp("fuzz-files")  # outside the data directory, which no answer may name
    env = {"ISTORE_DATA_DIR": str(data), "DATABASE_URL": "", "ISTORE_ALLOW_ANONYMOUS_WRITES": "false",
           "ISTORE_ALLOW_LOOPBACK_SOURCES": "true", "ISTORE_ALLOWED_SOURCES": "127.0.0.1",
           "ISTORE_CONNECT_TIMEOUT": "1", "ISTORE_READ_TIMEOUT": "2", "ISTORE_SOURCE_TIMEOUT": "4",
           "ISTORE_FFMPEG_TIMEOUT": "10", "ISTORE_MAX_UPLOAD_BYTES": str(64 * 1024),
           "ISTORE_MAX_METADATA_BYTES": "4096", "ISTORE_MAX_OUTPUT_PIXELS": "2000000",
           "ISTORE_CACHE_DERIVATIVES": "false", "ISTORE_FILE_ROOTS": str(root), "ISTORE_THREADS": "8",
           "ISTORE_QUEUE_TIMEOUT": "5"}
    base, process, server_env = run_gunicorn(env, workers=2)
    from tests.servers import manage

    manage("shell", "-c", "from django.contrib.auth.models import User; from rest_framework.authtoken.models "
           f"import Token; Token.objects.create(user=User.objects.create_user('fuzz'), key='{TOKEN}')",
           env=server_env)
    origin = media.TinyOrigin({
        "/img.png": (200, "image/png", media.png()),
        "/page.html": (200, "text/html", media.HTML_WITH_SCRIPT),
        "/boom": (503, "text/plain", b"origin down"),
    })
    world = _seed(HttpApi(base), {"HTTP_AUTHORIZATION": f"Token {TOKEN}"}, origin, str(root), media.webm(seconds=2))
    yield base, world, server_env
    origin.close()
    stop_gunicorn(process)


def test_fuzz_through_gunicorn(fuzz_server, settings):
    """No request, sent over HTTP to gunicorn and often repeated into the replay layer, gives a 500,
    an error that is not JSON, or an answer that breaks the content rules."""
    base, world, server_env = fuzz_server
    forbidden = [text for text in media.forbidden_texts(settings, strict=False) if text != settings.SECRET_KEY]
    forbidden += [server_env["SECRET_KEY"], server_env["ISTORE_DATA_DIR"]]
    stats = world.stats

    def fuzz(database):
        @hsettings(max_examples=MAX_EXAMPLES, deadline=None, **({} if database else {"database": None}),
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                          HealthCheck.filter_too_much, HealthCheck.large_base_example])
        @given(batches(world))
        def run(batch):
            stats["examples"] += 1
            for request in batch:
                began = time.monotonic()
                try:
                    answer = Answer(*exchange(base, request.method, request.target(), request.body,
                                              http_headers(request), request.truncate_to))
                except (OSError, http.client.HTTPException) as exc:
                    raise Failure(f"{request!r}: no HTTP answer ({exc.__class__.__name__}: {exc})") from exc
                stats["requests"] += 1
                stats[f"status {answer.status_code}"] += 1
                if answer.status_code is None:  # reset while its broken framing was refused (see exchange)
                    continue
                if "apply=" in request.query:
                    operation = request.query.split("apply=", 1)[1].split("&", 1)[0]
                    stats[f"apply={operation[:20]} {answer.status_code}"] += 1
                problems = judge(request, answer, answer.content, time.monotonic() - began, forbidden)
                if problems:
                    raise Failure(f"{request!r} -> {answer.status_code}: {'; '.join(problems)}")

        run()

    run_for_budget(fuzz, stats)
