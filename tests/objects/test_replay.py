"""Replay of unchanged content responses (objects/replay.py), under a real gunicorn.

Replay lives in the WSGI entry point, so these tests talk HTTP to gunicorn
(one worker, so every replay is counted by the same process) and observe
replays through ``/_metrics``.
"""
import io
import os
import re
from pathlib import Path
from urllib.parse import unquote

import pytest
import requests
from PIL import Image

from tests.servers import manage

RESIZE = "apply=resize&w=10"


def png(width, height, color):
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


class Server:
    def __init__(self, base, files, env):
        self.base, self.files, self.env = base, files, env
        self.data = Path(env["ISTORE_DATA_DIR"])

    def get(self, key, query="", **headers):
        return requests.get(self.base + key + (f"?{query}" if query else ""), headers=headers, timeout=30)

    def replays(self):
        text = requests.get(self.base + "/_metrics", timeout=30).text
        found = re.search(r'istore_cache_lookups_total\{outcome="hit",what="replay"\} ([0-9.]+)', text)
        return float(found.group(1)) if found else 0.0

    def computed(self, operation="resize"):
        """How many times ``operation`` has been computed (istore_processing_seconds_count)."""
        text = requests.get(self.base + "/_metrics", timeout=30).text
        found = re.search(rf'istore_processing_seconds_count\{{operation="{operation}"\}} ([0-9.]+)', text)
        return float(found.group(1)) if found else 0.0

    def register(self, key):
        response = requests.post(self.base + key, data={"metadata": "{}"}, timeout=30)
        assert response.status_code in (200, 201), f"registering {key} failed: {response.text}"

    def file_key(self, name="a.png"):
        """A registered key embedding a file source: a 40x20 red PNG."""
        (self.files / name).write_bytes(png(40, 20, "red"))
        key = f"/img/file://{self.files}/{name}"
        self.register(key)
        return key


@pytest.fixture
def start_server(gunicorn, tmp_path):
    def start(**env):
        files = tmp_path / "files"
        files.mkdir(exist_ok=True)
        base, _, server_env = gunicorn({"ISTORE_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": "",
                               "ISTORE_FILE_ROOTS": str(files), **env}, workers=1)
        return Server(base, files, server_env)

    return start


@pytest.fixture
def server(start_server):
    return start_server()


@pytest.fixture
def file_key(server):
    return server.file_key()


def size_of(response):
    assert response.status_code == 200, f"expected an image, got {response.status_code}: {response.text[:200]}"
    return Image.open(io.BytesIO(response.content)).size


def primed(server, key, query=RESIZE):
    """GET twice: the first answer is recorded, the second replayed."""
    first = server.get(key, query)
    before = server.replays()
    second = server.get(key, query)
    assert server.replays() == before + 1, "the second identical GET was not replayed"
    return first, second


def test_replayed_answer_is_the_django_answer(server, file_key):
    first, second = primed(server, file_key)
    assert second.content == first.content, "a replay must send the same bytes"
    drop = {"Date"}
    assert {k: v for k, v in second.headers.items() if k not in drop} == \
        {k: v for k, v in first.headers.items() if k not in drop}, "a replay must send the same headers"


def test_changed_file_is_not_replayed(server, file_key):
    primed(server, file_key, "")
    (server.files / "a.png").write_bytes(png(80, 20, "blue"))
    assert size_of(server.get(file_key, "")) == (80, 20), "a rewritten source file was answered from replay"


def test_swapped_symlink_is_followed(server):
    (server.files / "one.png").write_bytes(png(40, 20, "red"))
    (server.files / "two.png").write_bytes(png(20, 40, "green"))
    link = server.files / "link.png"
    link.symlink_to(server.files / "one.png")
    key = f"/img/file://{link}"
    server.register(key)
    primed(server, key)
    link.unlink()
    link.symlink_to(server.files / "two.png")
    assert size_of(server.get(key, RESIZE)) == (10, 20), "a swapped symlink was answered from replay"


@pytest.mark.parametrize("env", [{}, {"ISTORE_CACHE_DERIVATIVES": "false"}], ids=["cached", "recomputed"])
def test_new_upload_is_not_replayed(start_server, env):
    server = start_server(**env)
    key = "/up/picture.png"
    assert requests.put(server.base + key, data=png(40, 20, "red"), timeout=30).status_code == 201
    primed(server, key)
    assert requests.put(server.base + key, data=png(20, 40, "red"), timeout=30).status_code == 200
    assert size_of(server.get(key, RESIZE)) == (10, 20), "new uploaded content was answered from replay"


def test_metadata_write_is_seen(server):
    key = "/up/dated.png"
    requests.put(server.base + key, data=png(40, 20, "red"), timeout=30)
    primed(server, key, "")
    requests.post(server.base + key, data={"metadata": '{"a": 1}'}, timeout=30)
    before = server.replays()
    assert server.get(key, "").status_code == 200
    assert server.replays() == before, "the first GET after a write must be answered by Django"


def test_deleted_item_is_not_replayed(server, file_key):
    primed(server, file_key)
    assert requests.delete(server.base + file_key, timeout=30).status_code in (200, 204)
    assert server.get(file_key, RESIZE).status_code == 404, "a deleted key was answered from replay"


def test_conditional_request_goes_to_django(server, file_key):
    first, _ = primed(server, file_key)
    before = server.replays()
    response = server.get(file_key, RESIZE, **{"If-None-Match": first.headers["ETag"]})
    assert response.status_code == 304, f"If-None-Match of the current ETag gave {response.status_code}"
    assert server.replays() == before, "a conditional request must not be replayed"


def test_range_request_goes_to_django(server, file_key):
    first, _ = primed(server, file_key, "")
    response = server.get(file_key, "", Range="bytes=0-3")
    assert response.status_code == 206 and response.content == first.content[:4], "Range was not answered"


def test_disallowed_host_is_refused_after_replay(server, file_key):
    primed(server, file_key)
    response = server.get(file_key, RESIZE, Host="evil.example")
    assert response.status_code == 400, f"a Host outside ALLOWED_HOSTS gave {response.status_code}"


def test_nginx_answer_is_replayed_while_its_cache_file_exists(start_server):
    server = start_server(ISTORE_ACCEL_REDIRECT="/_accel/")
    key = server.file_key()
    first, second = primed(server, key)
    target = first.headers["X-Accel-Redirect"]
    assert second.headers["X-Accel-Redirect"] == target, "a replay must hand nginx the same file"
    cached = server.data / "cache" / unquote(target[len("/_accel/"):])
    cached.unlink()  # evicted
    before = server.replays()
    again = server.get(key, RESIZE)
    assert server.replays() == before, "an answer naming an evicted cache file was replayed"
    assert (server.data / "cache" / unquote(again.headers["X-Accel-Redirect"][len("/_accel/"):])).is_file(), \
        "the new answer must name a file that exists"


def test_replay_can_be_turned_off(start_server):
    server = start_server(ISTORE_REPLAY_CACHE_BYTES="0")
    key = server.file_key()
    for _ in range(3):
        assert server.get(key, RESIZE).status_code == 200
    assert server.replays() == 0, "ISTORE_REPLAY_CACHE_BYTES=0 must turn replay off"


def test_replay_memory_is_bounded(start_server):
    """Each entry is counted with Python's per-object overhead, so a budget of
    4,000 bytes holds one small answer, not several."""
    server = start_server(ISTORE_REPLAY_CACHE_BYTES="4000")
    key = server.file_key()
    primed(server, key, "apply=resize&w=10")
    primed(server, key, "apply=resize&w=12")
    before = server.replays()
    server.get(key, "apply=resize&w=10")
    assert server.replays() == before, "an entry past ISTORE_REPLAY_CACHE_BYTES was kept"


@pytest.fixture
def uncached(start_server):
    return start_server(ISTORE_CACHE_DERIVATIVES="false")


def test_uncached_result_is_recomputed_on_every_replay(uncached):
    key = uncached.file_key()
    first, _ = primed(uncached, key)
    computed = uncached.computed()
    for _ in range(3):
        again = uncached.get(key, RESIZE)
        assert again.content == first.content, "a recomputed replay must send the same bytes"
    assert uncached.computed() == computed + 3, \
        "with ISTORE_CACHE_DERIVATIVES=false every replay of a processed result must compute it again"


def test_recomputed_replay_sends_the_django_headers(uncached):
    first, second = primed(uncached, uncached.file_key())
    drop = {"Date"}
    assert {k: v for k, v in second.headers.items() if k not in drop} == \
        {k: v for k, v in first.headers.items() if k not in drop}, "a recomputed replay must send Django's headers"


def test_recomputed_replay_of_a_rewritten_file_is_the_new_result(uncached):
    key = uncached.file_key()
    primed(uncached, key)
    (uncached.files / "a.png").write_bytes(png(20, 40, "blue"))
    assert size_of(uncached.get(key, RESIZE)) == (10, 20), "a rewritten source file was answered from replay"


def test_recompute_that_fails_is_answered_by_django(uncached):
    """The file is overwritten in place with garbage of the same size and mtime,
    so its fingerprint holds: the recompute fails and Django answers."""
    key = uncached.file_key()
    primed(uncached, key)
    path = uncached.files / "a.png"
    info = path.stat()
    with open(path, "r+b") as f:
        f.write(b"\0" * info.st_size)
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    response = uncached.get(key, RESIZE)
    assert response.status_code == 415, f"a source that is no longer an image gave {response.status_code}"
    assert response.json()["error"], "the error must be Django's JSON answer"


def test_sources_are_replayed_with_derivatives_uncached(uncached):
    primed(uncached, uncached.file_key(), "")


def test_private_store_checks_every_read(start_server):
    server = start_server(ISTORE_PUBLIC_READ="false")
    key = server.file_key()
    token = manage("shell", "-c",
                   "from django.contrib.auth.models import User; from rest_framework.authtoken.models import Token; "
                   "print(Token.objects.create(user=User.objects.create_user('reader')).key)",
                   env=server.env).stdout.split()[-1]
    for _ in range(3):
        assert server.get(key, RESIZE, Authorization=f"Token {token}").status_code == 200
    assert server.get(key, RESIZE).status_code == 401, "a read without a token was answered from replay"
    assert server.replays() == 0, "a private store must check every read"


def test_negotiated_answers_are_replayed_per_chosen_format(server, file_key):
    query = "apply=resize&w=10&format=auto"
    first = server.get(file_key, query, Accept="image/webp,*/*")
    before = server.replays()
    again = server.get(file_key, query, Accept="image/webp")  # another header, the same choice: WebP
    assert server.replays() == before + 1, "an answer in the same negotiated format was not replayed"
    assert again.headers["Content-Type"] == first.headers["Content-Type"] == "image/webp"
    assert again.headers["Vary"] == "Accept"
    png_answer = server.get(file_key, query, Accept="*/*")
    assert png_answer.headers["Content-Type"] == "image/png", "a WebP answer was replayed to a client without WebP"
    assert server.replays() == before + 1


def test_signed_url_is_replayed_until_it_expires(start_server):
    import time

    from objects.signing import signature

    server = start_server(ISTORE_URL_SIGNING_KEYS="replay-secret")
    key = server.file_key()
    target = f"{key}?{RESIZE}&exp={int(time.time()) + 4}"
    signed = f"{target}&sig={signature(target, 'replay-secret')}"
    first = requests.get(server.base + signed, timeout=30)
    assert first.status_code == 200, first.text
    before = server.replays()
    assert requests.get(server.base + signed, timeout=30).status_code == 200
    assert server.replays() == before + 1, "a valid signed URL was not replayed"
    assert server.get(key, RESIZE).status_code == 403, "the unsigned URL was answered"
    time.sleep(max(0.0, int(target.rsplit("=", 1)[1]) + 1.1 - time.time()))
    expired = requests.get(server.base + signed, timeout=30)
    assert expired.status_code == 403 and expired.json()["error"] == "signature_expired", \
        "an expired signed URL was answered from replay"


@pytest.fixture
def origin_server():
    from tests.objects.conftest import Origin

    origin = Origin()
    yield origin
    origin.close()


def test_fresh_http_source_and_its_results_are_replayed(start_server, origin_server):
    server = start_server(ISTORE_ALLOW_LOOPBACK_SOURCES="true")
    url = origin_server.add("/a.png", png(40, 20, "red"), headers={"Content-Type": "image/png",
                                                                     "Cache-Control": "max-age=3600"})
    key = f"/img/{url}"
    server.register(key)
    server.get(key)  # fetched: the copy is fresh from now on
    for query in ("", RESIZE):
        first, second = primed(server, key, query)
        assert second.content == first.content
    assert origin_server.count["/a.png"] == 1


def test_http_source_due_for_revalidation_is_not_replayed(start_server, origin_server):
    import time

    server = start_server(ISTORE_ALLOW_LOOPBACK_SOURCES="true")
    url = origin_server.add("/b.png", png(40, 20, "red"), etag='"v1"',
                            headers={"Content-Type": "image/png", "Cache-Control": "max-age=2"})
    key = f"/img/{url}"
    server.register(key)
    server.get(key, RESIZE)
    primed(server, key, RESIZE)
    origin_server.add("/b.png", png(20, 40, "blue"), etag='"v2"',
                      headers={"Content-Type": "image/png", "Cache-Control": "max-age=2"})
    time.sleep(2.2)
    assert size_of(server.get(key, RESIZE)) == (10, 20), "an expired source was answered from replay"
    assert origin_server.statuses("/b.png")[-1] == 200, "the expired copy was revalidated with the origin"


def test_http_source_revalidated_once_by_concurrent_reads(gunicorn, tmp_path, origin_server):
    import threading
    import time

    base, _, env = gunicorn({"ISTORE_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": "",
                             "ISTORE_ALLOW_LOOPBACK_SOURCES": "true"}, workers=3)
    server = Server(base, tmp_path, env)
    url = origin_server.add("/c.png", png(40, 20, "red"), etag='"v1"', delay=0.3,
                            headers={"Content-Type": "image/png", "Cache-Control": "max-age=1"})
    key = f"/img/{url}"
    server.register(key)
    server.get(key)
    time.sleep(1.1)
    seen = origin_server.count["/c.png"]
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(server.get(key).status_code)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * 6
    assert origin_server.count["/c.png"] == seen + 1, "an expired copy must be revalidated once, not per request"
