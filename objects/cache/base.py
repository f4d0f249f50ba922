"""
What every cache of this package shares: the errors of a broken cache
directory, and the single-flight lock.

Single flight: ``SharedCache.lock(name)`` (``objects.locks``): a Redis lock
shared by every host when ``ISTORE_REDIS_URL`` is set, a per-host ``flock``
otherwise.
"""
import sqlite3
from contextlib import contextmanager

import diskcache

from .. import locks

LOCK_WAIT = locks.LOCK_WAIT
TRANSIENT_SECONDS = 120  # lifetime of a fetched body the origin does not let us keep
CHUNK = 4 * 1024 * 1024
# What a full, read-only or vanished cache directory raises: file system
# errors, and SQLite's ("database or disk is full", "attempt to write a
# readonly database", "unable to open database file").
CACHE_ERRORS = (OSError, sqlite3.Error, diskcache.Timeout)


class CacheUnavailable(OSError):
    """The cache could not store a value that the caller needs on disk."""


class BaseCache:
    """What the cache does whether or not its directory could be opened."""

    available = True

    def _fault(self, what, exc):
        locks.warn(f"cache:{self.directory}:{what}",
                   "the cache %s could not %s (%s: %s); serving without it", self.directory, what,
                   exc.__class__.__name__, getattr(exc, "strerror", None) or exc)

    @contextmanager
    def lock(self, name, wait=LOCK_WAIT):
        """Hold the single-flight lock ``name`` (or give up after ``wait`` seconds and go on unlocked)."""
        with _lock_backend(self, name, wait):
            yield


def _lock_backend(cache, name, wait):
    """The single-flight lock: Redis when ``ISTORE_REDIS_URL`` is set, else a file lock (objects.locks)."""
    return locks.single_flight(cache.lock_dir, name, wait)
