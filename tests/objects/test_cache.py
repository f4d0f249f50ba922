"""The shared bounded cache (§6): LRU under a cap, restarts, sharing, single flight, forgetting."""
import io
import os
import threading
import time

import pytest

from objects import cache as shared_cache
from objects import reading
from objects.cache import SharedCache
from tests.objects.conftest import content

BLOB = os.urandom(100 * 1024)


def stream(data):
    return io.BytesIO(data)


def test_lru_eviction_under_a_small_cap(tmp_path):
    # Three 100 KiB values and the index (~36 KiB) fit; a fourth does not.
    cache = SharedCache(tmp_path / "c", size_limit=380 * 1024)
    for name in "abc":
        cache.put_stream(name, stream(BLOB), keep_open=False)
    cache.get_file("a")[0].close()  # a is now more recent than b
    cache.put_stream("d", stream(BLOB), keep_open=False)
    assert "b" not in cache, "the least recently used entry goes first"
    assert "a" in cache and "d" in cache
    assert cache.volume() <= 380 * 1024


def test_value_bigger_than_the_cache_is_served_once(tmp_path):
    cache = SharedCache(tmp_path / "c", size_limit=50 * 1024)
    handle = cache.put_stream("big", stream(BLOB))
    assert handle.read() == BLOB, "the writer can still read what it wrote"
    handle.close()
    assert "big" not in cache


def test_entries_survive_a_new_instance(tmp_path):
    SharedCache(tmp_path / "c", 10**8).set_value("k", ("text/plain", b"v"))
    assert SharedCache(tmp_path / "c", 10**8).get_value("k") == ("text/plain", b"v")


def test_cache_is_shared_with_another_process(tmp_path):
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            SharedCache(tmp_path / "c", 10**8).set_value("from-child", b"hello")
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert SharedCache(tmp_path / "c", 10**8).get_value("from-child") == b"hello"


def test_lock_excludes_other_processes(tmp_path):
    log = tmp_path / "log"
    children = []
    for n in range(4):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                cache = SharedCache(tmp_path / "c", 10**8)
                with cache.lock("same"):
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
    assert len(lines) == 8
    for i in range(0, 8, 2):
        assert lines[i].split()[1] == lines[i + 1].split()[1], f"critical sections overlapped: {lines}"


def test_lock_of_a_dead_holder_is_released(tmp_path):
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        cache = SharedCache(tmp_path / "c", 10**8)
        with cache.lock("held"):
            os.write(write_end, b"x")
            time.sleep(0.2)
            os._exit(1)  # dies holding it
    os.read(read_end, 1)
    started = time.monotonic()
    with SharedCache(tmp_path / "c", 10**8).lock("held"):
        pass
    assert time.monotonic() - started < 2
    os.waitpid(pid, 0)


def test_lock_wait_gives_up(tmp_path):
    cache = SharedCache(tmp_path / "c", 10**8)
    with cache.lock("busy"):
        started = time.monotonic()
        with cache.lock("busy", wait=0.1):
            pass
        assert time.monotonic() - started < 1


# -- through the sources ----------------------------------------------------------------


def register(api, key):
    assert api.post(key, {}).status_code in (200, 201)
    return key


def test_http_sources_are_evicted_under_a_small_cap(api, origin, settings):
    settings.ISTORE_CACHE_MAX_BYTES = 260 * 1024
    keys = []
    for name in "abc":
        url = origin.add(f"/{name}.bin", BLOB, headers={"Cache-Control": "max-age=3600"})
        keys.append(register(api, f"/ev/{url}"))
        assert content(api.get(keys[-1])) == BLOB
    assert content(api.get(keys[0])) == BLOB
    assert origin.count["/a.bin"] == 2, "the oldest source was evicted and fetched again"
    assert shared_cache.get_cache().volume() <= 260 * 1024 + 64 * 1024


def test_fetched_source_survives_a_restart(api, origin):
    url = origin.add("/keep.bin", BLOB, headers={"Cache-Control": "max-age=3600"})
    key = register(api, f"/rs/{url}")
    api.get(key)
    shared_cache.reset()  # as a new worker process would
    assert content(api.get(key)) == BLOB
    assert origin.count["/keep.bin"] == 1


def test_concurrent_misses_fetch_once(origin, db):
    url = origin.add("/slow.bin", BLOB, delay=0.3, headers={"Cache-Control": "max-age=3600"})
    results, errors = [], []

    def fetch():
        try:
            body = reading.read(f"/cc/{url}", "", 0, item=None)
            with body.open() as handle:
                results.append(handle.read())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert results == [BLOB] * 8
    assert origin.count["/slow.bin"] == 1, "concurrent misses on one source must fetch it once"


class Runs(list):
    pass


class FakeOperation:
    """Stands in for processing.operations.Operation: counts its runs."""

    needs_video = False

    def __init__(self, runs, delay=0.0, name="fake"):
        self.runs, self.delay = runs, delay
        self.cache_key = f"v1|{name}"

    def run(self, path, content_type=None):
        self.runs.append(path)
        time.sleep(self.delay)
        with open(path, "rb") as source:
            data = source.read()

        class Result:
            pass

        result = Result()
        result.data, result.content_type = b"processed:" + data[:16], "text/x-processed"
        return result


@pytest.fixture
def fake_op(monkeypatch):
    """``?apply=fake`` (or ``fake2``) runs a FakeOperation; ``fake_op`` is the list of its runs."""
    import processing.operations

    runs = Runs()
    delay = {"value": 0.0}
    real = processing.operations.parse_operation

    def parse(query):
        name = query.get("apply")
        if name in ("fake", "fake2"):
            return FakeOperation(runs, delay["value"], name)
        return real(query)

    monkeypatch.setattr(processing.operations, "parse_operation", parse)
    runs.delay = delay
    return runs


@pytest.fixture
def runs(fake_op):
    return fake_op


def test_concurrent_identical_derivatives_compute_once(origin, runs, db):
    runs.delay["value"] = 0.3
    url = origin.add("/img.bin", BLOB, headers={"Cache-Control": "max-age=3600"})
    results = []

    def fetch():
        results.append(reading.read(f"/cd/{url}", "apply=fake", 0, item=None).data)

    threads = [threading.Thread(target=fetch) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 6 and len(set(results)) == 1
    assert len(runs) == 1, "concurrent identical requests must compute once"


def test_deleting_a_key_drops_its_derivatives(api, origin, runs, django_capture_on_commit_callbacks):
    url = origin.add("/d.bin", BLOB, headers={"Cache-Control": "max-age=3600"})
    key = register(api, f"/del/{url}")
    api.get(key, "apply=fake")
    drv = [k for k in shared_cache.get_cache().disk.iterkeys() if k.startswith("drv:")]
    assert len(drv) == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(key).status_code == 200
    assert drv[0] not in shared_cache.get_cache()


def test_deleting_a_tree_drops_derivatives_under_it(api, origin, runs, django_capture_on_commit_callbacks):
    url = origin.add("/t.bin", BLOB, headers={"Cache-Control": "max-age=3600"})
    inside = register(api, f"/tree/sub/{url}")
    outside = register(api, f"/treeother/{url}")
    api.get(inside, "apply=fake")
    api.get(outside, "apply=fake2")
    cache = shared_cache.get_cache()
    assert len([k for k in cache.disk.iterkeys() if k.startswith("drv:")]) == 2
    with django_capture_on_commit_callbacks(execute=True):
        api.delete("/tree/")
    left = [k for k in cache.disk.iterkeys() if k.startswith("drv:")]
    assert len(left) == 1, "only the derivative computed for the deleted tree goes"
    api.get(outside, "apply=fake2")
    assert len(runs) == 2, "the other key's derivative is still cached"


def test_derivative_cache_can_be_switched_off(api, origin, runs, settings):
    settings.ISTORE_CACHE_DERIVATIVES = False
    url = origin.add("/off.bin", BLOB, headers={"Cache-Control": "max-age=3600"})
    key = register(api, f"/off/{url}")
    first, second = api.get(key, "apply=fake"), api.get(key, "apply=fake")
    assert len(runs) == 2, "with ISTORE_CACHE_DERIVATIVES=false every request computes"
    assert origin.count["/off.bin"] == 1, "sources are still cached"
    assert first["ETag"] == second["ETag"]
