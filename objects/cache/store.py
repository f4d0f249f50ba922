"""
The cache of one ``ISTORE_CACHE_DIR``: diskcache's store, every value a file.

Files: ``put_stream`` streams a value in 4 MiB chunks into a temporary file
of ``<cache>/tmp`` and then moves it into diskcache's store by ``rename``
(``files.Disk``, a diskcache ``Disk`` that adopts a finished file), so a 2 GB
source never sits in memory, a half-written value is never visible, and
istore knows exactly how many bytes landed if a write fails. ``get_file``
gives an open file back, which stays valid even if the entry is evicted or
replaced meanwhile (POSIX unlink semantics). Every value istore stores is such
a file, so a cached value can also be handed to nginx (``X-Accel-Redirect``,
see ``objects.reading``).
"""
import fcntl
import os
import tempfile
import time
from pathlib import Path

import diskcache
import diskcache.core

from .. import keys
from . import files
from .base import CACHE_ERRORS, CHUNK, BaseCache, CacheUnavailable
from .bypass import UncachedFile, spool
from .derivatives import DerivativesMixin
from .following import FollowingMixin

STALE_TMP_SECONDS = 3600  # prune_cache removes temporary files older than this
_LRU_SELECT = diskcache.core.EVICTION_POLICY["least-recently-used"]["cull"].format(fields="key", now=0)
_EXPIRED_SELECT = "SELECT 1 FROM Cache WHERE 0 < expire_time AND expire_time < ? LIMIT 1"
_PRESENT_SELECT = "SELECT 1 FROM Cache WHERE key = ? AND raw = ? AND (expire_time IS NULL OR expire_time > ?)"
_PLAIN_SELECT = ("SELECT tag, mode, filename, value FROM Cache WHERE key = ? AND raw = ?"
                 " AND (expire_time IS NULL OR expire_time > ?)")


class SharedCache(FollowingMixin, DerivativesMixin, BaseCache):
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
                disk=files.Disk,
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
        self.store_dir = self.directory / "store"

    def close(self):
        self.disk.close()

    def set_size_limit(self, limit):
        try:
            self.disk.reset("size_limit", limit)
        except CACHE_ERRORS as exc:
            self._fault("record its size limit", exc)
        self.size_limit = limit

    # -- reading -------------------------------------------------------------------------------------

    def _get(self, key, read=False):
        """``(value, tag)``, ``(None, None)`` when absent. A miss costs one SELECT: diskcache's
        own get opens a write transaction first, to record the access a hit would be."""
        if not self._present(key):
            return None, None
        try:
            return self.disk.get(key, read=read, tag=True, retry=True)
        except CACHE_ERRORS as exc:
            # diskcache writes the access time (LRU) in the same transaction;
            # a full or read-only disk refuses that: read without it.
            self._fault("record an access", exc)
        return self._peek(key, read)

    def _present(self, key):
        """False when ``key`` has no live entry (True when that cannot be told: ``_get`` then asks diskcache)."""
        try:
            db_key, raw = self.disk.disk.put(key)
            return bool(self.disk._sql(_PRESENT_SELECT, (db_key, raw, time.time())).fetchall())
        except CACHE_ERRORS:
            return True

    def _peek(self, key, read=False):
        """``(value, tag)`` read without recording the access (one SELECT, no write transaction)."""
        try:
            db_key, raw = self.disk.disk.put(key)
            rows = self.disk._sql(_PLAIN_SELECT, (db_key, raw, time.time())).fetchall()
            if not rows:
                return None, None
            tag, mode, filename, value = rows[0]
            return self.disk.disk.fetch(mode, filename, value, read), tag
        except CACHE_ERRORS as exc:
            self._fault("read", exc)
            return None, None

    def get_value(self, key, default=None):
        value, _ = self._get(key)
        return default if value is None else value

    def peek_value(self, key, default=None):
        """``get_value`` without recording the access for least-recently-used eviction: a read,
        not a write transaction, for small notes read on every request (``srcfresh:``)."""
        value, _ = self._peek(key)
        return default if value is None else value

    def get_file(self, key):
        """``(open binary file, tag)`` for a value stored as a file, ``(None, None)`` if absent."""
        value, tag = self._get(key, read=True)
        if value is None or not hasattr(value, "read"):
            return None, None
        return value, tag

    def __contains__(self, key):
        try:
            return key in self.disk
        except CACHE_ERRORS:
            return False

    def volume(self):
        return self.disk.volume()

    def file_path(self, path, handle=None):
        """``path`` relative to the cache directory if it is a value of the cache, else None.

        ``handle`` is the open file of those bytes, if any: an ``UncachedFile``
        is deleted once served, so it is never one.
        """
        if not isinstance(path, (str, os.PathLike)) or isinstance(handle, UncachedFile):
            return None
        try:
            relative = Path(path).relative_to(self.store_dir)
        except ValueError:
            return None
        if ".." in relative.parts:
            return None
        return Path("store") / relative

    # -- writing -------------------------------------------------------------------------------------

    def set_value(self, key, value, *, tag=None, expire=None):
        """Store a small value; False (logged) when the cache refuses the write."""
        try:
            self.disk.set(key, value, expire=expire, tag=tag, retry=True)
        except CACHE_ERRORS as exc:
            self._fault("write", exc)
            return False
        self.trim()
        return True

    def delete(self, key):
        try:
            self.disk.delete(key, retry=True)
        except CACHE_ERRORS as exc:
            self._fault("delete", exc)

    def touch(self, key, expire=None):
        try:
            return self.disk.touch(key, expire=expire, retry=True)
        except CACHE_ERRORS as exc:
            self._fault("write", exc)
            return False

    def _mkstemp(self):
        try:
            return tempfile.mkstemp(prefix="put-", dir=self.tmp_dir)
        except FileNotFoundError:
            self.tmp_dir.mkdir(parents=True, exist_ok=True)
            return tempfile.mkstemp(prefix="put-", dir=self.tmp_dir)

    def put_stream(self, key, reader, *, tag=None, expire=None, keep_open=True, bypass=True):
        """Stream ``reader.read(n)`` into a file value and return it open (or None).

        The cache is brought back under its limit after the value is open, so
        the caller can serve it even when eviction takes it away at once.
        ``reader`` should not raise (its bytes would be lost): report errors
        by returning b"" and let the caller delete the key (see
        objects.sources.http._SourceReader).

        When the cache refuses the write (full, read-only), the stream is
        finished outside the cache and an ``UncachedFile`` returned
        (``bypass=True``), or ``CacheUnavailable`` raised (``bypass=False``).
        """
        try:
            fd, tmp = self._mkstemp()
        except CACHE_ERRORS as exc:
            self._fault("write", exc)
            return self._bypassed(reader, keep_open, bypass)
        size = 0
        try:
            with open(fd, "wb", buffering=0) as out:
                os.fchmod(fd, files.FILE_MODE)
                while True:
                    chunk = reader.read(CHUNK)
                    if not chunk:
                        break
                    view = memoryview(chunk)
                    try:
                        size += files.write_chunk(out, view)
                    except OSError as exc:
                        written = getattr(exc, "istore_written", 0)
                        size += written
                        self._fault("write", exc)
                        return self._bypassed(reader, keep_open, bypass, tmp, size, bytes(view[written:]))
        except BaseException:
            files.unlink_quietly(tmp)
            raise
        files.adopted.path = None
        try:
            self.disk.set(key, files.Adopt(tmp, size), read=True, tag=tag, expire=expire, retry=True)
        except CACHE_ERRORS as exc:
            self._fault("write", exc)
            # Moved into the store before the index refused it, or still in tmp.
            moved = files.adopted.path
            path = moved if moved and os.path.exists(moved) else tmp
            if bypass and keep_open:
                return UncachedFile(path)
            files.unlink_quietly(path)
            if bypass:
                return None
            raise CacheUnavailable(f"the cache refused {key!r}: {exc}") from None
        handle = None
        if keep_open:
            handle, stored_tag = self._peek(key, read=True)  # its access time is that of the write
            if handle is not None and (stored_tag != tag or not hasattr(handle, "read")):
                # Another writer replaced it meanwhile (only without a lock).
                handle.close()
                handle = None
        self.trim()
        return handle

    def _bypassed(self, reader, keep_open, bypass, tmp=None, size=0, pending=b""):
        try:
            if not bypass:
                raise CacheUnavailable("the cache refused a write")
            handle = spool(reader, tmp, size, pending)
        finally:
            if tmp is not None:
                files.unlink_quietly(tmp)
        if not keep_open:
            handle.close()
            return None
        return handle

    def local_copy(self, key, opener, *, tag=None):
        """An open handle on a local copy of the stream ``opener()`` (remote content), copied once.

        Raises ``CacheUnavailable`` when the cache cannot keep the copy.
        """
        handle, _ = self.get_file(key)
        if handle is not None:
            return handle
        with self.lock(key):
            handle, _ = self.get_file(key)
            if handle is not None:
                return handle
            with opener() as source:
                handle = self.put_stream(key, source, tag=tag, bypass=False)
            if handle is None:
                raise CacheUnavailable(f"the local copy {key!r} could not be read back from the cache")
            return handle

    # -- size ----------------------------------------------------------------------------------------

    def trim(self, limit=None):
        """Evict least-recently-used entries until the cache is under ``limit`` (default: its cap).

        diskcache's own ``cull()`` evicts in batches of ten: with values of
        hundreds of megabytes that empties far more than needed, the value
        just written included. This evicts one entry at a time, choosing it
        with diskcache's own LRU policy query (its access-time bookkeeping,
        size accounting and file removal stay diskcache's). Returns the
        number of entries evicted.
        """
        limit = self.size_limit if limit is None else limit
        count = 0
        try:
            # diskcache's expire() opens a write transaction even when nothing has expired.
            if self.disk._sql(_EXPIRED_SELECT, (time.time(),)).fetchall():
                count += self.disk.expire(retry=True)
            while self.disk.volume() > limit:
                row = self.disk._sql(_LRU_SELECT, (1,)).fetchone()
                if row is None:
                    break
                self.disk.delete(row[0], retry=True)
                count += 1
        except CACHE_ERRORS as exc:
            self._fault("evict", exc)
        return count

    def prune(self, max_bytes=None):
        """Trim to ``max_bytes`` (default: the cap) and drop stale temporary files: ``(entries, bytes freed)``."""
        before = self.volume()
        count = self.trim(max_bytes)
        return count, max(before - self.volume(), 0) + self._drop_stale_tmp()

    def clear(self):
        """Remove every entry: ``(entries, bytes freed)``."""
        before = self.volume()
        count = self.disk.clear(retry=True)
        return count, max(before - self.volume(), 0) + self._drop_stale_tmp(0)

    def _drop_stale_tmp(self, age=STALE_TMP_SECONDS):
        """Remove files of ``tmp/`` older than ``age`` seconds (left by killed workers); bytes freed."""
        freed = 0
        cutoff = time.time() - age
        try:
            entries = list(os.scandir(self.tmp_dir))
        except OSError:
            return 0
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
                if entry.is_file(follow_symlinks=False) and info.st_mtime < cutoff:
                    os.unlink(entry.path)
                    freed += info.st_size
            except OSError:
                continue
        return freed

    # -- forgetting ---------------------------------------------------------------------------------

    def forget_tag(self, tag):
        try:
            return self.disk.evict(tag, retry=True)
        except CACHE_ERRORS as exc:
            self._fault("delete", exc)
            return 0

    def forget_tag_range(self, low, high):
        """Delete every entry whose tag is in ``[low, high)``."""
        # diskcache evicts by exact tag only; a range over its indexed tag
        # column is one query (keys are plain strings, stored verbatim).
        try:
            rows = self.disk._sql("SELECT key FROM Cache WHERE tag >= ? AND tag < ?", (low, high)).fetchall()
            for (key,) in rows:
                self.disk.delete(key, retry=True)
        except CACHE_ERRORS as exc:
            self._fault("delete", exc)
            return 0
        return len(rows)

    def forget_key(self, key):
        # Derivatives are tagged "k:<key>\0<type>"; keys hold no NUL.
        return self.forget_tag_range("k:" + key + "\0", "k:" + key + "\x01") + self.forget_tag("k:" + key)

    def forget_tree(self, prefix):
        return self.forget_tag_range("k:" + prefix, "k:" + keys.prefix_upper_bound(prefix))

    def forget_content(self, name):
        return self.forget_tag("c:" + name)
