"""
The shared bounded cache of §6: fetched sources, local copies of remote
content, and processed results (derivatives).

Why diskcache: one directory (``ISTORE_CACHE_DIR``) holds an SQLite index plus
one file per value, so every worker process on the host shares it, it
survives restarts, and it is bounded (``size_limit`` = ``ISTORE_CACHE_MAX_BYTES``)
with least-recently-used eviction on diskcache's bookkeeping (it records an
access time on every read; ``SharedCache.trim`` evicts after every write).

Keys are strings (stored verbatim by diskcache, so ``forget_tag_range`` can
query them by tag range):

- ``srcmeta:<url>`` / ``srcbody:<url>``: an HTTP source, see objects.sources.http;
- ``upload:<content name>``: a local copy of remote (S3) content, tag ``c:<name>``;
- ``drv:<digest>``: a processed result, stored as a file of its bytes, tag
  ``k:<key>\\0<content type>`` (the registered key whose read computed it,
  which contains no NUL, and the result's type: one look-up gives both).

Receivers of ``objects.signals`` drop derivatives of deleted keys and trees
and the local copies of forgotten content.

The modules: ``store.py`` (``SharedCache``: diskcache's store, values as
files, reading, writing, eviction, forgetting), ``files.py`` (diskcache
adopting a finished file), ``following.py`` (serving a value while it is
written), ``derivatives.py`` (processed results and their copy in Redis),
``bypass.py`` (serving without the cache when it is full, read-only or
cannot be opened: ``UnavailableCache``) and ``base.py`` (what they share:
the errors of a broken directory, the single-flight lock). This module holds
the process-wide instance (``get_cache``) and those receivers.
"""
import threading
import time
from pathlib import Path

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from .. import locks, signals
from .base import CACHE_ERRORS, CHUNK, LOCK_WAIT, TRANSIENT_SECONDS, CacheUnavailable
from .bypass import REOPEN_AFTER, UnavailableCache, UncachedFile
from .derivatives import SHARED_DERIVATIVE_MAX_BYTES, SHARED_DERIVATIVE_SECONDS, SHARED_PREFIX, Derivative
from .files import FILE_MODE
from .following import FOLLOW_CHUNK, FOLLOW_SPARE_BYTES, FOLLOW_WAIT, Following, FollowingReader
from .store import STALE_TMP_SECONDS, SharedCache

__all__ = [
    "CACHE_ERRORS", "CHUNK", "FILE_MODE", "FOLLOW_CHUNK", "FOLLOW_SPARE_BYTES", "FOLLOW_WAIT", "LOCK_WAIT",
    "REOPEN_AFTER", "SHARED_DERIVATIVE_MAX_BYTES", "SHARED_DERIVATIVE_SECONDS", "SHARED_PREFIX",
    "STALE_TMP_SECONDS", "TRANSIENT_SECONDS", "CacheUnavailable", "Derivative", "Following",
    "FollowingReader", "SharedCache", "UnavailableCache", "UncachedFile", "get_cache", "reset",
]

# -- the process-wide instance ------------------------------------------------------

_current = None
_current_lock = threading.Lock()


def get_cache():
    """The cache of the current settings (one per process, reopened when they change).

    An ``UnavailableCache`` when the directory cannot be opened (tried again
    every ``REOPEN_AFTER`` seconds).
    """
    global _current
    directory = Path(settings.ISTORE_CACHE_DIR)
    limit = settings.ISTORE_CACHE_MAX_BYTES
    cache = _current
    if cache is not None and cache.directory == directory and (cache.available or
                                                               cache.retry_at > time.monotonic()):
        if cache.size_limit != limit:
            cache.set_size_limit(limit)
        return cache
    with _current_lock:
        cache = _current
        if cache is None or cache.directory != directory or (not cache.available and
                                                             cache.retry_at <= time.monotonic()):
            try:
                new = SharedCache(directory, limit)
            except CACHE_ERRORS as exc:
                locks.warn(f"cache:{directory}:open", "the cache %s cannot be opened (%s: %s); serving without "
                           "it, and trying again in %.0f s", directory, exc.__class__.__name__,
                           getattr(exc, "strerror", None) or exc, REOPEN_AFTER)
                new = UnavailableCache(directory, limit, exc)
            _current = new
            if cache is not None:
                cache.close()
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
