"""Single-flight locks (objects.locks): the Redis lock against the machine's real Redis, and the fallbacks."""
import logging
import socket
import threading
import time
import uuid

import pytest

from objects import cache as shared_cache
from objects import locks
from objects.cache import SharedCache
from objects.digests import sha256_hex
from tests.objects.conftest import assert_exclusive_across_processes
from tests.servers import unavailable

REDIS = ("127.0.0.1", 6379)
REDIS_URL = f"redis://{REDIS[0]}:{REDIS[1]}/15"


def _redis_up():
    try:
        socket.create_connection(REDIS, timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture
def redis_url(settings):
    """ISTORE_REDIS_URL pointing at the local Redis (database 15); skipped without it, except in CI."""
    if not _redis_up():
        unavailable(f"Redis is not reachable on {REDIS[0]}:{REDIS[1]} (start redis-server; CI always has it)")
    settings.ISTORE_REDIS_URL = REDIS_URL
    locks._down_until.clear()
    locks.reset_warnings()
    yield REDIS_URL
    locks._down_until.clear()


def unique(name):
    return f"{name}-{uuid.uuid4().hex}"


def redis_key(name):
    return locks.REDIS_PREFIX + sha256_hex(name)


def test_redis_lock_is_used_when_configured(redis_url, tmp_path):
    cache = SharedCache(tmp_path / "c", 10**8)
    name = unique("used")
    client = locks.redis_client()
    with cache.lock(name):
        assert client.exists(redis_key(name)) == 1, "the lock must be held in Redis"
        ttl = client.pttl(redis_key(name))
        assert 0 < ttl <= locks.REDIS_LOCK_TTL * 1000
        assert not (tmp_path / "c" / "locks").exists() or not any((tmp_path / "c" / "locks").rglob("*.lock"))
    assert client.exists(redis_key(name)) == 0, "released on exit"


def test_redis_lock_excludes_other_processes(redis_url, tmp_path):
    # Each child stands for a host: its own cache directory, one shared Redis.
    name = unique("same")

    def lock_in_child(n):
        locks._clients.clear()  # a forked child needs its own Redis connection
        return SharedCache(tmp_path / f"host{n}", 10**8).lock(name)

    assert_exclusive_across_processes(tmp_path, lock_in_child)


def test_redis_lock_is_renewed_during_long_work(redis_url):
    client = locks.redis_client()
    name = unique("long")
    inside = threading.Event()
    got_it = []

    # A TTL of 1 s leaves the renewal (every TTL/3) 0.6 s of scheduling slack:
    # 0.3 s was lost once on a loaded CI machine.
    def holder():
        with locks.redis_lock(client, name, wait=10, ttl=1.0):
            inside.set()
            time.sleep(3.0)  # three times the TTL

    thread = threading.Thread(target=holder)
    thread.start()
    inside.wait(10)
    started = time.monotonic()
    with locks.redis_lock(client, name, wait=10, ttl=1.0):
        got_it.append(time.monotonic() - started)
    thread.join()
    assert got_it[0] > 2.0, "the lock expired while its holder was still working"


def test_dead_holder_frees_the_redis_lock_after_its_ttl(redis_url):
    client = locks.redis_client()
    name = unique("dead")
    # A holder that died: the key is there with a TTL and nobody renews it.
    client.set(redis_key(name), "token-of-a-dead-worker", px=400)
    started = time.monotonic()
    with locks.redis_lock(client, name, wait=5):
        waited = time.monotonic() - started
    assert 0.2 < waited < 2


def test_release_after_expiry_leaves_the_new_holder_alone(redis_url, caplog):
    client = locks.redis_client()
    name = unique("expired")
    manager = locks.redis_lock(client, name, wait=1, ttl=60)
    manager.__enter__()
    client.set(redis_key(name), "someone-else", px=5000)  # ours expired, another host took it
    with caplog.at_level(logging.WARNING, logger="objects.cache"):
        manager.__exit__(None, None, None)
    assert client.get(redis_key(name)) == b"someone-else", "release must not delete another holder's lock"
    client.delete(redis_key(name))


def test_redis_wait_gives_up(redis_url):
    client = locks.redis_client()
    name = unique("busy")
    with locks.redis_lock(client, name, wait=5):
        started = time.monotonic()
        with locks.redis_lock(client, name, wait=0.2):
            pass
        assert time.monotonic() - started < 1.5


def test_unreachable_redis_falls_back_to_the_file_lock(settings, tmp_path, caplog):
    with socket.socket() as sock:  # a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.ISTORE_REDIS_URL = f"redis://127.0.0.1:{port}/0"
    locks.reset_warnings()
    cache = SharedCache(tmp_path / "c", 10**8)
    with caplog.at_level(logging.WARNING, logger="objects.cache"):
        started = time.monotonic()
        with cache.lock(unique("fallback")):
            assert list((tmp_path / "c" / "locks").rglob("*.lock")), "the file lock is held instead"
    assert time.monotonic() - started < 5
    assert any("Redis" in record.getMessage() for record in caplog.records)
    locks._down_until.clear()


def test_derivatives_are_shared_between_hosts_through_redis(redis_url, tmp_path):
    host_a = SharedCache(tmp_path / "a", 10**8)
    host_b = SharedCache(tmp_path / "b", 10**8)
    key = host_a.derivative_key(unique("version"), "resize?w=50")
    host_a.put_derivative(key, "image/png", b"png bytes", owner="/k")
    hit = host_b.get_derivative(key, "/k")
    assert hit is not None and hit.content_type == "image/png"
    assert hit.handle.read() == b"png bytes"
    hit.handle.close()
    assert key in host_b, "host b keeps its own copy once it has read the shared one"
    locks.redis_client().delete(shared_cache.SHARED_PREFIX + key)


def test_file_lock_without_a_writable_lock_directory_goes_on_unlocked(settings, tmp_path, monkeypatch, caplog):
    settings.ISTORE_REDIS_URL = ""
    cache = SharedCache(tmp_path / "c", 10**8)

    def refuse(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(locks.os, "open", refuse)
    locks.reset_warnings()
    with caplog.at_level(logging.WARNING, logger="objects.cache"):
        with cache.lock("x"):
            ran = True
    monkeypatch.undo()
    assert ran
    assert any("lock file" in record.getMessage() for record in caplog.records)
