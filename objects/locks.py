"""
Single-flight locks for the shared cache (``objects.cache.SharedCache.lock``).

Two implementations behind one call, ``single_flight(lock_dir, name, wait)``:

- **Redis** (when ``ISTORE_REDIS_URL`` is set): redis-py's ``Lock`` on the key
  ``istore:lock:<sha256 of name>``, so concurrent identical work computes once
  across every host sharing that Redis. The lock is taken with a blocking wait
  (at most ``wait`` seconds, then the waiter goes on without it, as with the
  file lock). It lives ``REDIS_LOCK_TTL`` seconds and a thread of the holder
  renews it every ``REDIS_LOCK_TTL / 3`` seconds while the work goes on, so a
  computation may take as long as it needs (a 5 GB source download, an ffmpeg
  run) while a holder that dies (a worker killed by gunicorn's timeout, a host
  that goes down) frees it within ``REDIS_LOCK_TTL`` seconds instead of
  stalling every waiter. Release is safe: redis-py releases by token, so a
  holder whose lock expired (its renewal failed) never deletes the lock someone
  else took meanwhile; that case is logged. When Redis cannot be reached the
  file lock is used instead, with a warning: single flight is then per host,
  and nothing fails.
- **File** (otherwise): a per-name ``flock`` on a file under
  ``<cache dir>/locks``, shared by every process of the host; the kernel drops
  it when a holder dies (no expiry to tune). Lock files are unlinked on release
  with the usual inode re-check. When the lock file cannot be created (the
  cache directory is full or read-only) the work goes on unlocked, with a
  warning.
"""
import errno
import fcntl
import logging
import os
import threading
import time
from contextlib import ExitStack, contextmanager

from django.conf import settings

from .digests import sha256_hex

logger = logging.getLogger("objects.cache")

LOCK_WAIT = 300.0  # seconds a request waits for another one computing the same thing
REDIS_LOCK_TTL = 30.0  # seconds a Redis lock outlives a holder that stopped renewing it
REDIS_POLL = 0.01  # seconds between two attempts of a waiter on a Redis lock
REDIS_PREFIX = "istore:lock:"
_FILE_POLL_MAX = 0.02
_WARN_EVERY = 10.0  # seconds between two warnings of one kind


# -- rate-limited warnings ------------------------------------------------------------

_warned = {}
_warned_lock = threading.Lock()


def warn(kind, message, *args):
    """``logger.warning`` at most once per ``_WARN_EVERY`` seconds for one ``kind``.

    Faults (a full cache disk, Redis down) repeat on every request; one line
    every few seconds says so without flooding the log.
    """
    now = time.monotonic()
    with _warned_lock:
        last = _warned.get(kind)
        if last is not None and now - last < _WARN_EVERY:
            return
        _warned[kind] = now
    logger.warning(message, *args)


def reset_warnings():
    with _warned_lock:
        _warned.clear()


# -- Redis ------------------------------------------------------------------------------

_clients = {}
_clients_lock = threading.Lock()
_down_until = {}
REDIS_RETRY_AFTER = 5.0  # seconds Redis is left alone after a connection failure


def redis_client(url=None):
    """The redis-py client for ``url`` (default ``ISTORE_REDIS_URL``), or None when unset or recently down."""
    url = settings.ISTORE_REDIS_URL if url is None else url
    if not url:
        return None
    if _down_until.get(url, 0) > time.monotonic():
        return None
    client = _clients.get(url)
    if client is None:
        import redis

        with _clients_lock:
            client = _clients.get(url)
            if client is None:
                # Short timeouts: Redis answers in a millisecond, and when it
                # is gone a request falls back rather than hanging.
                client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5,
                                              health_check_interval=30)
                _clients[url] = client
    return client


def redis_failed(url, exc, what):
    """Note that Redis at ``url`` failed (``what`` it was doing) and leave it alone for a few seconds."""
    _down_until[url] = time.monotonic() + REDIS_RETRY_AFTER
    warn("redis:" + url, "Redis at %s failed while %s (%s: %s); going on without it for %.0f s",
         _redacted(url), what, exc.__class__.__name__, exc, REDIS_RETRY_AFTER)


def _redacted(url):
    # redis://user:password@host/0 -> redis://host/0 in logs
    scheme, sep, rest = url.partition("://")
    return scheme + sep + rest.rpartition("@")[2]


class _Renewal(threading.Thread):
    """Keeps a held Redis lock alive until ``stop()``."""

    def __init__(self, lock, ttl):
        super().__init__(name="istore-lock-renewal", daemon=True)
        self.lock, self.ttl = lock, ttl
        self.stopped = threading.Event()
        self.lost = False

    def run(self):
        from redis.exceptions import LockError, RedisError

        while not self.stopped.wait(self.ttl / 3):
            try:
                self.lock.reacquire()
            except LockError:
                self.lost = True
                warn("lost:" + self.lock.name, "the Redis lock %s expired while its work was still running; "
                     "another request may be doing the same work", self.lock.name)
                return
            except RedisError as exc:  # keep trying: the lock may still be ours
                warn("renew:" + self.lock.name, "renewing the Redis lock %s failed: %s", self.lock.name, exc)

    def stop(self):
        self.stopped.set()
        self.join()


@contextmanager
def redis_lock(client, name, wait, ttl=REDIS_LOCK_TTL):
    """Hold the Redis lock for ``name`` (or go on without it after ``wait`` seconds).

    Raises ``redis.RedisError`` only when the lock cannot be asked for at all
    (Redis unreachable): the caller falls back to a file lock.
    """
    from redis.exceptions import LockError, RedisError

    lock = client.lock(REDIS_PREFIX + sha256_hex(name), timeout=ttl, sleep=REDIS_POLL, blocking=True,
                       blocking_timeout=wait, thread_local=False)
    acquired = lock.acquire()
    if not acquired:
        logger.warning("gave up waiting %.0fs for the Redis lock %r; computing without it", wait, name)
        yield
        return
    renewal = _Renewal(lock, ttl)
    renewal.start()
    try:
        yield
    finally:
        renewal.stop()
        try:
            lock.release()
        except LockError:
            # Expired and perhaps taken by another holder: theirs is left alone.
            if not renewal.lost:
                logger.warning("the Redis lock %r had expired when its work finished", name)
        except RedisError as exc:
            warn("release:" + lock.name, "releasing the Redis lock %r failed (%s); it expires within %.0f s",
                 name, exc, ttl)


# -- files --------------------------------------------------------------------------------


@contextmanager
def file_lock(lock_dir, name, wait):
    """Hold the host-wide ``flock`` for ``name`` under ``lock_dir`` (see the module docstring)."""
    name_digest = sha256_hex(name)
    directory = lock_dir / name_digest[:2]
    path = directory / f"{name_digest}.lock"
    deadline = time.monotonic() + wait
    delay = 0.001
    fd = None
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except FileNotFoundError:
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                _unlocked(lock_dir, exc)
                break
            continue
        except OSError as exc:  # ENOSPC, EROFS, EACCES, ...
            _unlocked(lock_dir, exc)
            break
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            fd = None
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            if time.monotonic() >= deadline:
                logger.warning("gave up waiting %.0fs for the cache lock %r; computing without it", wait, name)
                break
            time.sleep(delay)
            delay = min(delay * 2, _FILE_POLL_MAX)
            continue
        # The holder before us may have unlinked the file after we opened it:
        # only a lock on the file that is still at ``path`` counts.
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
        fd = None
    try:
        yield
    finally:
        if fd is not None:
            try:
                os.unlink(path)
            except OSError:
                pass
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _unlocked(lock_dir, exc):
    warn("locks:" + str(lock_dir), "cannot create a lock file in %s (%s); computing without single flight "
         "until the cache directory is writable again", lock_dir, exc.strerror or exc)


# -- the one entry point ----------------------------------------------------------------------


@contextmanager
def single_flight(lock_dir, name, wait=LOCK_WAIT):
    """The Redis lock when ``ISTORE_REDIS_URL`` is set and Redis answers, else the file lock."""
    client = redis_client()
    if client is not None:
        from redis.exceptions import RedisError

        held = ExitStack()
        try:
            held.enter_context(redis_lock(client, name, wait))
        except RedisError as exc:
            redis_failed(settings.ISTORE_REDIS_URL, exc, "taking a lock")
        else:
            with held:
                yield
            return
    with file_lock(lock_dir, name, wait):
        yield
