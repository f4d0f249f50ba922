"""
The shared bounded cache of §6: fetched sources, local copies of remote
content, and processed results (derivatives).

Why diskcache: one directory (``ISTORE_CACHE_DIR``) holds an SQLite index plus
one file per large value, so every worker process on the host shares it, it
survives restarts, and it is bounded (``size_limit`` = ``ISTORE_CACHE_MAX_BYTES``)
with least-recently-used eviction on diskcache's bookkeeping (it records an
access time on every read; ``SharedCache.trim`` evicts after every write). Values written with ``read=True``
are streamed to their own file in 4 MiB chunks, and ``get(read=True)`` gives
an open file back, so a 2 GB source never sits in memory, and the open handle
stays valid even if the entry is evicted or replaced meanwhile (POSIX unlink
semantics).

Single flight: ``SharedCache.lock(name)`` is a per-name ``flock`` on a file
under ``ISTORE_CACHE_DIR/locks``, so concurrent misses for one source or
derivative compute once across threads and processes; the kernel drops the
lock when a holder dies (no stale-lock expiry to tune, unlike diskcache's
spin ``Lock``, which the LRU culling could even evict). Lock files are
unlinked on release with the usual inode re-check. The lock only spans one
host: ``ISTORE_REDIS_URL`` is the seam for a cross-host lock (``_lock_backend``),
a later issue.

Keys are strings (stored verbatim by diskcache, so ``forget_prefix`` can query
them by tag range):

- ``srcmeta:<url>`` / ``srcbody:<url>``: an HTTP source, see objects.sources.http;
- ``upload:<content name>``: a local copy of remote (S3) content, tag ``c:<name>``;
- ``drv:<digest>``: a processed result, tag ``k:<key>`` (the registered key
  whose read computed it), value ``(content_type, bytes)``.

Receivers of ``objects.signals`` drop derivatives of deleted keys and trees
and the local copies of forgotten content.
"""
import errno
import fcntl
import hashlib
import logging
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import diskcache
import diskcache.core
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from . import keys, signals

logger = logging.getLogger(__name__)

LOCK_WAIT = 300.0  # seconds a request waits for another one computing the same thing
_LOCK_POLL_MAX = 0.02
TRANSIENT_SECONDS = 120  # lifetime of a fetched body the origin does not let us keep
_LRU_SELECT = diskcache.core.EVICTION_POLICY["least-recently-used"]["cull"].format(fields="key", now=0)


def _digest(text):
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class SharedCache:
    """The cache of one ``ISTORE_CACHE_DIR``; see the module docstring."""

    def __init__(self, directory, size_limit):
        self.directory = Path(directory)
        self.size_limit = size_limit
        self.directory.mkdir(parents=True, exist_ok=True)
        # diskcache's first open creates tables and switches SQLite to WAL,
        # which fails with "database is locked" when several workers start at
        # once on a new directory: one process at a time opens it.
        with open(self.directory / "open.lock", "a") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            self.disk = diskcache.Cache(
                str(self.directory / "store"),
                size_limit=size_limit,
                eviction_policy="least-recently-used",
                # No culling inside set(): SharedCache trims after each write,
                # once the writer holds its own value open (so a value bigger
                # than the whole cache is still served once, then evicted).
                cull_limit=0,
                statistics=False,
                tag_index=True,
            )
        self.lock_dir = self.directory / "locks"
        self.tmp_dir = self.directory / "tmp"

    def close(self):
        self.disk.close()

    # -- plain values ------------------------------------------------------------

    def get_value(self, key, default=None):
        return self.disk.get(key, default, retry=True)

    def set_value(self, key, value, *, tag=None, expire=None):
        self.disk.set(key, value, expire=expire, tag=tag, retry=True)
        self.trim()

    def delete(self, key):
        self.disk.delete(key, retry=True)

    def touch(self, key, expire=None):
        return self.disk.touch(key, expire=expire, retry=True)

    def __contains__(self, key):
        return key in self.disk

    def volume(self):
        return self.disk.volume()

    def trim(self):
        """Evict least-recently-used entries until the cache is under its size limit.

        diskcache's own ``cull()`` evicts in batches of ten: with values of
        hundreds of megabytes that empties far more than needed, the value
        just written included. This evicts one entry at a time, choosing it
        with diskcache's own LRU policy query (its access-time bookkeeping,
        size accounting and file removal stay diskcache's).
        """
        self.disk.expire(retry=True)
        while self.disk.volume() > self.size_limit:
            row = self.disk._sql(_LRU_SELECT, (1,)).fetchone()
            if row is None:
                break
            self.disk.delete(row[0], retry=True)

    # -- files -------------------------------------------------------------------

    def get_file(self, key):
        """``(open binary file, tag)`` for a value stored as a file, ``(None, None)`` if absent."""
        try:
            value, tag = self.disk.get(key, read=True, tag=True, retry=True)
        except OSError:
            # The file went between the index look-up and the open (eviction).
            return None, None
        if value is None or not hasattr(value, "read"):
            return None, None
        return value, tag

    def put_stream(self, key, reader, *, tag=None, expire=None, keep_open=True):
        """Stream ``reader.read(n)`` into a file value and return it open (or None).

        The cache is brought back under its limit after the value is open, so
        the caller can serve it even when eviction takes it away at once.
        ``reader`` should not raise (diskcache would leave a partial file
        behind): report errors by returning b"" and let the caller delete the
        key (see objects.sources.http._SourceReader).
        """
        self.disk.set(key, reader, read=True, tag=tag, expire=expire, retry=True)
        handle = None
        if keep_open:
            handle, stored_tag = self.get_file(key)
            if handle is not None and stored_tag != tag:
                # Another writer replaced it meanwhile (only without a lock).
                handle.close()
                handle = None
        self.trim()
        return handle

    def local_copy(self, key, opener, *, tag=None):
        """An open handle on a local copy of the stream ``opener()`` (remote content), copied once."""
        handle, _ = self.get_file(key)
        if handle is not None:
            return handle
        with self.lock(key):
            handle, _ = self.get_file(key)
            if handle is not None:
                return handle
            with opener() as source:
                handle = self.put_stream(key, source, tag=tag)
            if handle is None:
                raise OSError(f"the local copy {key!r} could not be read back from the cache")
            return handle

    # -- derivatives ---------------------------------------------------------------

    @staticmethod
    def derivative_key(version, op_key):
        return "drv:" + _digest(f"{version}\0{op_key}")

    def get_derivative(self, key):
        """``(content_type, data)`` or None."""
        value = self.get_value(key)
        if isinstance(value, tuple) and len(value) == 2:
            return value
        return None

    def put_derivative(self, key, content_type, data, *, owner=None):
        self.set_value(key, (content_type, data), tag=("k:" + owner) if owner else None)

    # -- forgetting ---------------------------------------------------------------

    def forget_tag(self, tag):
        return self.disk.evict(tag, retry=True)

    def forget_tag_range(self, low, high):
        """Delete every entry whose tag is in ``[low, high)``."""
        # diskcache evicts by exact tag only; a range over its indexed tag
        # column is one query (keys are plain strings, stored verbatim).
        rows = self.disk._sql("SELECT key FROM Cache WHERE tag >= ? AND tag < ?", (low, high)).fetchall()
        for (key,) in rows:
            self.disk.delete(key, retry=True)
        return len(rows)

    def forget_key(self, key):
        return self.forget_tag("k:" + key)

    def forget_tree(self, prefix):
        return self.forget_tag_range("k:" + prefix, "k:" + keys.prefix_upper_bound(prefix))

    def forget_content(self, name):
        return self.forget_tag("c:" + name)

    # -- single flight ---------------------------------------------------------------

    @contextmanager
    def lock(self, name, wait=LOCK_WAIT):
        """Hold the host-wide lock ``name`` (or give up after ``wait`` seconds and go on unlocked)."""
        with _lock_backend(self, name, wait):
            yield


def _file_lock(cache, name, wait):
    digest = _digest(name)
    directory = cache.lock_dir / digest[:2]
    path = directory / f"{digest}.lock"
    deadline = time.monotonic() + wait
    delay = 0.001
    fd = None
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            directory.mkdir(parents=True, exist_ok=True)
            continue
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
            delay = min(delay * 2, _LOCK_POLL_MAX)
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
    return _held_file_lock(path, fd)


@contextmanager
def _held_file_lock(path, fd):
    try:
        yield
    finally:
        if fd is not None:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _lock_backend(cache, name, wait):
    """The single-flight lock. Seam: with ``ISTORE_REDIS_URL`` set, a later issue
    replaces this by a Redis lock (redis-py's ``Lock``) shared by every host."""
    return _file_lock(cache, name, wait)


# -- the process-wide instance ------------------------------------------------------

_current = None
_current_lock = threading.Lock()


def get_cache():
    """The SharedCache of the current settings (one per process, reopened when they change)."""
    global _current
    directory = Path(settings.ISTORE_CACHE_DIR)
    limit = settings.ISTORE_CACHE_MAX_BYTES
    cache = _current
    if cache is not None and cache.directory == directory:
        if cache.size_limit != limit:
            cache.disk.reset("size_limit", limit)
            cache.size_limit = limit
        return cache
    with _current_lock:
        if _current is None or _current.directory != directory:
            old = _current
            _current = SharedCache(directory, limit)
            if old is not None:
                old.close()
        return _current


def reset():
    """Forget the process-wide instance (a new one opens on next use, as after a restart)."""
    global _current
    with _current_lock:
        if _current is not None:
            _current.close()
        _current = None


@receiver(setting_changed)
def _settings_changed(setting, **kwargs):
    if setting == "ISTORE_CACHE_DIR":
        reset()


def _existing_cache():
    """The cache if its directory exists (no need to create one just to delete from it)."""
    if not (Path(settings.ISTORE_CACHE_DIR) / "store").exists():
        return None
    return get_cache()


@receiver(signals.key_forgotten)
def _key_forgotten(key, **kwargs):
    cache = _existing_cache()
    if cache is not None:
        cache.forget_key(key)


@receiver(signals.tree_forgotten)
def _tree_forgotten(prefix, **kwargs):
    cache = _existing_cache()
    if cache is not None:
        cache.forget_tree(prefix)


@receiver(signals.content_forgotten)
def _content_forgotten(name, **kwargs):
    cache = _existing_cache()
    if cache is not None:
        cache.forget_content(name)
