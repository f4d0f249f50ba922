"""
Bounded capacity for expensive work (objects/capacity.py): the slots in
process, then overload through a real gunicorn, where every fetch slot is
held by a slow origin while cheap requests keep answering.
"""
import io
import threading
import time

import pytest
import requests
from PIL import Image

from objects import capacity
from tests.conftest import run_gunicorn, stop_gunicorn
from tests.servers import LocalServer


@pytest.fixture
def small(settings):
    settings.ISTORE_THREADS = 8  # admission: 6 threads in expensive work
    settings.ISTORE_FETCH_SLOTS = 1
    settings.ISTORE_PIXEL_SLOTS = 1
    settings.ISTORE_FFMPEG_SLOTS = 1
    settings.ISTORE_QUEUE_TIMEOUT = 0.3
    return settings


class Holder:
    """Holds a slot of ``kind`` in a thread until ``release()``."""

    def __init__(self, kind):
        self.taken, self.done = threading.Event(), threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._hold, args=(kind,), daemon=True)
        self.thread.start()

    def _hold(self, kind):
        try:
            with capacity.slot(kind):
                self.taken.set()
                self.done.wait(10)
        except capacity.Overloaded as exc:
            self.error = exc
            self.taken.set()

    def release(self):
        self.done.set()
        self.thread.join(5)


def test_a_free_slot_is_taken_at_once(small):
    started = time.monotonic()
    with capacity.slot("pixels"):
        assert capacity.limiter().snapshot()["pixels"] == 1, "the slot was not counted as held"
    assert capacity.limiter().snapshot()["pixels"] == 0, "the slot was not given back"
    assert time.monotonic() - started < 0.3, "a free slot made the request wait"


def test_a_kind_at_capacity_waits_then_answers_503_overloaded(small):
    holder = Holder("fetch")
    assert holder.taken.wait(5)
    started = time.monotonic()
    with pytest.raises(capacity.Overloaded) as refused:
        with capacity.slot("fetch"):
            pass
    waited = time.monotonic() - started
    holder.release()
    assert refused.value.status == 503 and refused.value.code == "overloaded"
    assert refused.value.headers["Retry-After"] == "1", "an overloaded answer must say when to retry"
    assert waited >= 0.3, f"the request gave up after {waited:.2f} s, before ISTORE_QUEUE_TIMEOUT"


def test_a_slot_freed_while_waiting_is_taken(small):
    small.ISTORE_QUEUE_TIMEOUT = 5
    holder = Holder("fetch")
    assert holder.taken.wait(5)
    threading.Timer(0.2, holder.done.set).start()
    with capacity.slot("fetch"):
        pass  # no Overloaded: the slot freed up within the queue timeout


def test_other_kinds_do_not_wait_for_a_full_one(small):
    holder = Holder("fetch")
    assert holder.taken.wait(5)
    started = time.monotonic()
    with capacity.slot("pixels"):
        pass
    holder.release()
    assert time.monotonic() - started < 0.3, "pixel work waited for the fetch slots"


def test_past_the_admission_limit_expensive_work_is_refused_at_once(small):
    small.ISTORE_QUEUE_TIMEOUT = 5
    small.ISTORE_FETCH_SLOTS = 6
    holders = [Holder("fetch") for _ in range(capacity.admission_limit())]
    for holder in holders:
        assert holder.taken.wait(5) and holder.error is None
    started = time.monotonic()
    with pytest.raises(capacity.Overloaded):
        with capacity.slot("pixels"):
            pass
    for holder in holders:
        holder.release()
    assert time.monotonic() - started < 1, "past the admission limit a request must not queue"


def test_a_quarter_of_the_threads_is_kept_for_cheap_requests(settings):
    for threads, admitted in ((16, 12), (8, 6), (4, 3), (1, 1)):
        settings.ISTORE_THREADS = threads
        assert capacity.admission_limit() == admitted, f"{threads} threads should admit {admitted}"


def test_a_nested_slot_of_the_same_kind_passes_through(small):
    with capacity.slot("pixels"):
        with capacity.slot("pixels"):  # one slot per kind: this would wait for itself
            assert capacity.limiter().snapshot()["pixels"] == 1


# ---------------------------------------------------------------- through gunicorn


class SlowOrigin:
    """An origin whose /slow/* answers only when released (at most 30 s); counts arrivals."""

    def __init__(self):
        self.release = threading.Event()
        self.arrivals = 0
        self.lock = threading.Lock()
        self.http = LocalServer(self._handle)

    def _handle(self, request):
        with self.lock:
            self.arrivals += 1
        self.release.wait(30)
        body = b"slow bytes"
        try:
            request.send_response(200)
            request.send_header("Content-Type", "application/octet-stream")
            request.send_header("Content-Length", str(len(body)))
            request.end_headers()
            request.wfile.write(body)
        except OSError:
            pass

    def wait_for(self, count, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.arrivals >= count:
                    return True
            time.sleep(0.02)
        return False

    def url(self, name):
        return self.http.url(f"/slow/{name}")

    def close(self):
        self.release.set()
        self.http.close()


@pytest.fixture
def slow_origin():
    origin = SlowOrigin()
    yield origin
    origin.close()


@pytest.fixture
def overload_server(tmp_path, slow_origin):
    base, process, _ = run_gunicorn({"ISTORE_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": "",
                                     "ISTORE_ALLOW_LOOPBACK_SOURCES": "true", "ISTORE_THREADS": "8",
                                     "ISTORE_FETCH_SLOTS": "2", "ISTORE_QUEUE_TIMEOUT": "1"}, workers=1)
    yield base
    stop_gunicorn(process)


def jpeg_bytes():
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, "JPEG")
    return out.getvalue()


def test_cheap_requests_answer_while_every_fetch_slot_is_held(overload_server, slow_origin):
    base = overload_server
    slow_keys = [f"/slow/{slow_origin.url(str(index))}" for index in range(3)]
    for key in slow_keys:
        assert requests.post(base + key).status_code == 201
    assert requests.put(base + "/cheap/a.jpg", data=jpeg_bytes(), headers={"Content-Type": "image/jpeg"}).ok
    assert requests.get(base + "/cheap/a.jpg?apply=resize&w=10").status_code == 200  # now a cached derivative
    answers = {}

    def fetch(key):
        answers[key] = requests.get(base + key, timeout=60)

    holders = [threading.Thread(target=fetch, args=(key,)) for key in slow_keys[:2]]
    for holder in holders:
        holder.start()
    assert slow_origin.wait_for(2), "the two slow fetches never reached the origin"

    for path in ("/_health", slow_keys[0] + "?meta=1", "/slow/", "/cheap/a.jpg", "/cheap/a.jpg?apply=resize&w=10"):
        started = time.monotonic()
        response = requests.get(base + path, timeout=10)
        elapsed = time.monotonic() - started
        assert response.status_code == 200, f"{path} answered {response.status_code} under overload"
        assert elapsed < 1, f"{path} took {elapsed:.2f} s while every fetch slot was held"

    refused = requests.get(base + slow_keys[2], timeout=10)
    assert refused.status_code == 503, f"a fetch beyond capacity should be 503, got {refused.status_code}"
    assert refused.json()["error"] == "overloaded"
    assert int(refused.headers["Retry-After"]) >= 1

    slow_origin.release.set()
    for holder in holders:
        holder.join(30)
    assert [answers[key].status_code for key in slow_keys[:2]] == [200, 200], "the slow fetches did not finish"
