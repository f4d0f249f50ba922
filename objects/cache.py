"""
The shared bounded cache of §6: fetched sources, local copies of remote
content, and processed results (derivatives).

Why diskcache: one directory (``ISTORE_CACHE_DIR``) holds an SQLite index plus
one file per value, so every worker process on the host shares it, it
survives restarts, and it is bounded (``size_limit`` = ``ISTORE_CACHE_MAX_BYTES``)
with least-recently-used eviction on diskcache's bookkeeping (it records an
access time on every read; ``SharedCache.trim`` evicts after every write).

Files: ``put_stream`` streams a value in 4 MiB chunks into a temporary file
of ``<cache>/tmp`` and then moves it into diskcache's store by ``rename``
(``_Disk``, a diskcache ``Disk`` that adopts a finished file), so a 2 GB
source never sits in memory, a half-written value is never visible, and
istore knows exactly how many bytes landed if a write fails. ``get_file``
gives an open file back, which stays valid even if the entry is evicted or
replaced meanwhile (POSIX unlink semantics). Every value istore stores is such
a file, so a cached value can also be handed to nginx (``X-Accel-Redirect``,
see ``objects.reading``).

Serving while writing: ``put_stream_following`` writes a value of known size
from a background thread and returns a ``Following`` at once, whose readers
serve the bytes as they land (objects.sources.http uses it for cold sources,
so their first byte does not wait for the whole download).

Faults (issue 9): a cache directory that is full or read-only, or cannot be
opened at all, never fails a request. A write that fails is logged (at most
once every 10 s per cache and kind) and bypassed: a stream being stored is
finished in a file of the system's temporary directory (``UncachedFile``,
deleted when closed) and served from there; a derivative is served from
memory; a read whose LRU bookkeeping cannot be written reads without it; a
directory that cannot be opened gives an ``UnavailableCache`` that misses
everything (and is retried every 30 s). Callers that need a copy to stay on
disk (``local_copy``) get ``CacheUnavailable`` instead and fall back
themselves.

Single flight: ``SharedCache.lock(name)`` (``objects.locks``): a Redis lock
shared by every host when ``ISTORE_REDIS_URL`` is set, a per-host ``flock``
otherwise.

Keys are strings (stored verbatim by diskcache, so ``forget_tag_range`` can
query them by tag range):

- ``srcmeta:<url>`` / ``srcbody:<url>``: an HTTP source, see objects.sources.http;
- ``upload:<content name>``: a local copy of remote (S3) content, tag ``c:<name>``;
- ``drv:<digest>``: a processed result, stored as a file of its bytes, tag
  ``k:<key>\\0<content type>`` (the registered key whose read computed it,
  which contains no NUL, and the result's type: one look-up gives both).

With ``ISTORE_REDIS_URL`` set, a processed result of at most
``SHARED_DERIVATIVE_MAX_BYTES`` is also kept in Redis for
``SHARED_DERIVATIVE_SECONDS``: hosts share it, so concurrent identical
requests on several hosts compute once (the holder of the Redis lock puts it
there before releasing the lock, a waiter on another host reads it there).
Those entries are content-addressed (source version + operation), so they
need no forgetting: they expire.

Receivers of ``objects.signals`` drop derivatives of deleted keys and trees
and the local copies of forgotten content.
"""
import errno
import fcntl
import hashlib
import io
import logging
import os
import sqlite3
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import diskcache
import diskcache.core
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from istore_site.errors import ServiceUnavailable

from . import keys, locks, signals

logger = logging.getLogger(__name__)

LOCK_WAIT = locks.LOCK_WAIT
TRANSIENT_SECONDS = 120  # lifetime of a fetched body the origin does not let us keep
CHUNK = 4 * 1024 * 1024
STALE_TMP_SECONDS = 3600  # prune_cache removes temporary files older than this
REOPEN_AFTER = 30.0  # seconds before a cache directory that could not be opened is tried again
SHARED_DERIVATIVE_SECONDS = 600
SHARED_DERIVATIVE_MAX_BYTES = 8 * 1024 * 1024
SHARED_PREFIX = "istore:drv:"
FOLLOW_CHUNK = 64 * 1024  # a value served while it is written is written in small chunks
FOLLOW_SPARE_BYTES = 64 * 1024 * 1024  # free space beyond the value needed to serve it while writing it
FOLLOW_WAIT = 300.0  # seconds a reader waits for the next bytes of a value being written
# What a full, read-only or vanished cache directory raises: file system
# errors, and SQLite's ("database or disk is full", "attempt to write a
# readonly database", "unable to open database file").
CACHE_ERRORS = (OSError, sqlite3.Error, diskcache.Timeout)
_LRU_SELECT = diskcache.core.EVICTION_POLICY["least-recently-used"]["cull"].format(fields="key", now=0)
_PLAIN_SELECT = ("SELECT tag, mode, filename, value FROM Cache WHERE key = ? AND raw = ?"
                 " AND (expire_time IS NULL OR expire_time > ?)")


def _digest(text):
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class CacheUnavailable(OSError):
    """The cache could not store a value that the caller needs on disk."""


class UncachedFile(io.FileIO):
    """A file outside the cache holding bytes the cache could not take; deleted when closed."""

    def close(self):
        if not self.closed:
            try:
                os.unlink(self.name)
            except OSError:
                pass
        super().close()


@dataclass
class Derivative:
    """A processed result: its type and an open file of the cache, or its bytes when not cached."""

    content_type: str
    handle: object = None
    data: bytes | None = None


class Following:
    """A value that a background thread is writing into the cache (``put_stream_following``).

    ``open()`` gives readers that serve its bytes as they land, waiting for
    the next ones; ``wait_path()`` waits for the end and gives the value's
    file in the store. Readers read by offset (``pread``) from descriptors
    opened before the bytes were written, so the file may be moved into the
    store, or evicted, under them. If the cache refuses a write halfway
    (disk full), the rest goes to an unlinked file of the system's temporary
    directory: a second segment, read the same way, and the value is served
    but not kept.
    """

    def __init__(self, path, size):
        self.size = size
        self.written = 0
        self.done = False
        self.error = None  # an OSError when the value ended short
        self.final_path = None
        self._cond = threading.Condition()
        self._segments = [(0, os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)))]

    def advance(self, count):
        with self._cond:
            self.written += count
            self._cond.notify_all()

    def add_segment(self, read_fd):
        """The bytes from ``written`` on are in the file open as ``read_fd``."""
        with self._cond:
            self._segments.append((self.written, read_fd))

    def finish(self, error=None, final_path=None):
        with self._cond:
            self.done, self.error, self.final_path = True, error, final_path
            self._cond.notify_all()

    def wait(self, offset, timeout=FOLLOW_WAIT):
        """Wait until ``offset`` bytes are written or the writing ended; the bytes written."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.written >= offset or self.done, timeout):
                raise OSError(errno.ETIMEDOUT, f"no new bytes of a value being cached for {timeout:.0f} s")
            return self.written

    def pread(self, offset, count):
        """Up to ``count`` written bytes at ``offset`` (not past the segment that holds it)."""
        with self._cond:
            segments = list(self._segments)
        for index in range(len(segments) - 1, -1, -1):
            start, fd = segments[index]
            if offset >= start:
                if index + 1 < len(segments):
                    count = min(count, segments[index + 1][0] - offset)
                return os.pread(fd, count, offset - start)
        return b""  # pragma: no cover - offsets start at 0

    def open(self):
        return FollowingReader(self)

    def head(self, count):
        """The first ``count`` bytes (fewer if the value is shorter or ended short)."""
        available = self.wait(min(count, self.size))
        return self.pread(0, min(count, available))

    def wait_path(self):
        """The value's file in the store once complete; OSError if it ended short,
        ``CacheUnavailable`` if the cache could not keep it."""
        self.wait(self.size + 1)
        if self.error is not None:
            raise self.error
        if self.final_path is None:
            raise CacheUnavailable("the value was served but could not be kept in the cache")
        return self.final_path

    def __del__(self):
        for _, fd in getattr(self, "_segments", ()):
            try:
                os.close(fd)
            except OSError:
                pass


class FollowingReader(io.RawIOBase):
    """Reads a ``Following`` from any offset, waiting for bytes not yet written.

    It has no ``fileno()``, so servers stream it instead of ``sendfile`` (which
    would stop at the bytes written so far).
    """

    def __init__(self, following):
        super().__init__()
        self.following = following
        self.pos = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.following.size}[whence]
        self.pos = max(base + offset, 0)
        return self.pos

    def tell(self):
        return self.pos

    def readinto(self, buffer):
        want = min(len(buffer), self.following.size - self.pos)
        if want <= 0:
            return 0
        written = self.following.wait(self.pos + 1)
        if written <= self.pos:
            error = self.following.error
            raise OSError(errno.EIO, f"the value ended after {written} of {self.following.size} bytes"
                          + (f": {error}" if error else ""))
        data = self.following.pread(self.pos, min(want, written - self.pos))
        buffer[:len(data)] = data
        self.pos += len(data)
        return len(data)


# -- diskcache adopting finished files ---------------------------------------------------------


class _Adopt:
    """A finished file for ``_Disk.store`` to move into the store."""

    def __init__(self, path, size):
        self.path, self.size = path, size


_adopted = threading.local()


class _Disk(diskcache.Disk):
    """diskcache's Disk, plus: a value ``_Adopt(path, size)`` is moved into the store by rename."""

    def store(self, value, read, key=diskcache.core.UNKNOWN):
        if not isinstance(value, _Adopt):
            return super().store(value, read, key=key)
        for attempt in range(10):
            filename, full_path = self.filename(key, value)
            os.makedirs(os.path.dirname(full_path), exist_ok=True)
            try:
                os.rename(value.path, full_path)
            except FileNotFoundError:
                # diskcache removes emptied directories: another process may
                # have removed ours between makedirs and rename.
                if attempt == 9 or not os.path.exists(value.path):
                    raise
                continue
            _adopted.path = full_path
            return value.size, diskcache.core.MODE_BINARY, filename, None


def _file_mode():
    """The mode ``open()`` gives a new file (0o666 less the umask): cache files stay readable by
    nginx's user (``X-Accel-Redirect``) as diskcache's own files are, not 0o600 as ``mkstemp``'s."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()


def _write_chunk(out, view):
    """Write ``view`` to the unbuffered file ``out``; returns how many bytes landed before an OSError."""
    done = 0
    try:
        while done < len(view):
            done += out.write(view[done:])
    except OSError as exc:
        exc.istore_written = done
        raise
    return done


# -- the cache ---------------------------------------------------------------------------------------


class _Common:
    """What the cache does whether or not its directory could be opened."""

    available = True

    def _fault(self, what, exc):
        locks.warn(f"cache:{self.directory}:{what}",
                   "the cache %s could not %s (%s: %s); serving without it", self.directory, what,
                   exc.__class__.__name__, getattr(exc, "strerror", None) or exc)

    @staticmethod
    def derivative_key(version, op_key):
        return "drv:" + _digest(f"{version}\0{op_key}")

    @contextmanager
    def lock(self, name, wait=LOCK_WAIT):
        """Hold the single-flight lock ``name`` (or give up after ``wait`` seconds and go on unlocked)."""
        with _lock_backend(self, name, wait):
            yield

    # -- bypass ----------------------------------------------------------------------------------

    @staticmethod
    def _spool(reader, prefix_path=None, prefix_size=0, pending=b""):
        """The whole stream in an ``UncachedFile`` of the system's temporary directory.

        ``prefix_path`` holds the first ``prefix_size`` bytes already read
        from ``reader`` (written to the cache before it failed), ``pending``
        the bytes read but not written.
        """
        try:
            fd, path = tempfile.mkstemp(prefix="istore-uncached-")
        except OSError as exc:
            raise ServiceUnavailable(
                f"istore has no disk space to hold this content: the cache and the temporary directory both "
                f"refused a write ({exc.strerror or exc}).", code="no_disk_space", headers={"Retry-After": "30"}
            ) from None
        try:
            with open(fd, "wb") as out:
                if prefix_path is not None:
                    with open(prefix_path, "rb") as head:
                        out.write(head.read(prefix_size))
                out.write(pending)
                while True:
                    chunk = reader.read(CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
        except OSError as exc:
            os.unlink(path)
            raise ServiceUnavailable(
                f"istore has no disk space to hold this content ({exc.strerror or exc}).",
                code="no_disk_space", headers={"Retry-After": "30"},
            ) from None
        return UncachedFile(path)

    # -- derivatives shared through Redis ----------------------------------------------------------

    @staticmethod
    def _shared_get(key):
        client = locks.redis_client()
        if client is None:
            return None
        from redis.exceptions import RedisError

        try:
            value = client.get(SHARED_PREFIX + key)
        except RedisError as exc:
            locks.redis_failed(settings.ISTORE_REDIS_URL, exc, "reading a shared result")
            return None
        if not value or b"\0" not in value:
            return None
        content_type, _, data = value.partition(b"\0")
        return content_type.decode("utf-8", "replace"), data

    @staticmethod
    def _shared_put(key, content_type, data):
        if len(data) > SHARED_DERIVATIVE_MAX_BYTES:
            return
        client = locks.redis_client()
        if client is None:
            return
        from redis.exceptions import RedisError

        try:
            client.set(SHARED_PREFIX + key, content_type.encode("utf-8") + b"\0" + data,
                       ex=SHARED_DERIVATIVE_SECONDS)
        except RedisError as exc:
            locks.redis_failed(settings.ISTORE_REDIS_URL, exc, "sharing a result")

    def get_derivative(self, key, owner=None):
        """The cached result ``key`` as a ``Derivative``, or None."""
        handle, tag = self.get_file(key)
        if handle is not None:
            if isinstance(tag, str) and tag.startswith("k:") and "\0" in tag:
                return Derivative(tag.rpartition("\0")[2], handle=handle)
            handle.close()  # not a derivative of this format
        shared = self._shared_get(key)
        if shared is None:
            return None
        content_type, data = shared
        handle = self._put_derivative_file(key, content_type, data, owner)
        return Derivative(content_type, handle=handle, data=None if handle is not None else data)

    def put_derivative(self, key, content_type, data, *, owner=None):
        """Store a computed result (here and, with Redis, for the other hosts); returns a ``Derivative``."""
        handle = self._put_derivative_file(key, content_type, data, owner)
        self._shared_put(key, content_type, data)
        return Derivative(content_type, handle=handle, data=None if handle is not None else data)

    def _put_derivative_file(self, key, content_type, data, owner):
        tag = f"k:{owner or ''}\0{content_type}"
        try:
            return self.put_stream(key, io.BytesIO(data), tag=tag, bypass=False)
        except CacheUnavailable:
            return None


class SharedCache(_Common):
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
                disk=_Disk,
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
        """``(value, tag)``, ``(None, None)`` when absent."""
        try:
            return self.disk.get(key, read=read, tag=True, retry=True)
        except CACHE_ERRORS as exc:
            # diskcache writes the access time (LRU) in the same transaction;
            # a full or read-only disk refuses that: read without it.
            self._fault("record an access", exc)
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
                os.fchmod(fd, FILE_MODE)
                while True:
                    chunk = reader.read(CHUNK)
                    if not chunk:
                        break
                    view = memoryview(chunk)
                    try:
                        size += _write_chunk(out, view)
                    except OSError as exc:
                        written = getattr(exc, "istore_written", 0)
                        size += written
                        self._fault("write", exc)
                        return self._bypassed(reader, keep_open, bypass, tmp, size, bytes(view[written:]))
        except BaseException:
            _unlink(tmp)
            raise
        _adopted.path = None
        try:
            self.disk.set(key, _Adopt(tmp, size), read=True, tag=tag, expire=expire, retry=True)
        except CACHE_ERRORS as exc:
            self._fault("write", exc)
            # Moved into the store before the index refused it, or still in tmp.
            moved = _adopted.path
            path = moved if moved and os.path.exists(moved) else tmp
            if bypass and keep_open:
                return UncachedFile(path)
            _unlink(path)
            if bypass:
                return None
            raise CacheUnavailable(f"the cache refused {key!r}: {exc}") from None
        handle = None
        if keep_open:
            handle, stored_tag = self.get_file(key)
            if handle is not None and stored_tag != tag:
                # Another writer replaced it meanwhile (only without a lock).
                handle.close()
                handle = None
        self.trim()
        return handle

    def _bypassed(self, reader, keep_open, bypass, tmp=None, size=0, pending=b""):
        try:
            if not bypass:
                raise CacheUnavailable("the cache refused a write")
            handle = self._spool(reader, tmp, size, pending)
        finally:
            if tmp is not None:
                _unlink(tmp)
        if not keep_open:
            handle.close()
            return None
        return handle

    def put_stream_following(self, key, reader, *, size, tag=None, expire=None, on_done=None):
        """Store ``size`` bytes of ``reader`` from a background thread; a ``Following`` at once.

        So the bytes can be served while they arrive. None (nothing read) when
        the cache cannot take them now (less free space than ``size`` plus
        ``FOLLOW_SPARE_BYTES``, read-only): store them with ``put_stream``,
        which bypasses the cache. ``on_done(error)`` runs in that thread at
        the end (error None: stored; else the OSError that ended it, after
        which the key is not stored).
        """
        try:
            self.tmp_dir.mkdir(exist_ok=True)
            stats = os.statvfs(self.tmp_dir)
            if stats.f_bavail * stats.f_frsize < size + FOLLOW_SPARE_BYTES:
                return None
            fd, tmp = self._mkstemp()
        except CACHE_ERRORS:
            return None
        try:
            following = Following(tmp, size)
        except OSError:
            os.close(fd)
            _unlink(tmp)
            return None
        thread = threading.Thread(target=self._fill, args=(following, fd, tmp, key, reader, tag, expire, on_done),
                                  name="istore-cache-fill", daemon=True)
        thread.start()
        return following

    def _fill(self, following, fd, tmp, key, reader, tag, expire, on_done):
        error = final = None
        spooled = False
        read = getattr(reader, "read1", reader.read)  # whatever has arrived, for the readers
        out = open(fd, "wb", buffering=0)
        try:
            os.fchmod(fd, FILE_MODE)
            while following.written < following.size:
                chunk = read(min(FOLLOW_CHUNK, following.size - following.written))
                if not chunk:
                    break
                view = memoryview(chunk)
                while view:
                    try:
                        landed = _write_chunk(out, view)
                    except OSError as exc:
                        landed = getattr(exc, "istore_written", 0)
                        following.advance(landed)
                        view = view[landed:]
                        if spooled:
                            raise
                        # The cache refused the write: the rest goes outside it.
                        self._fault("write", exc)
                        out.close()
                        _unlink(tmp)
                        out = self._spool_segment(following)
                        spooled = True
                        continue
                    following.advance(landed)
                    view = view[landed:]
            out.close()
            if following.written != following.size:
                raise OSError(errno.EIO, f"the stream ended after {following.written} of {following.size} bytes")
            if spooled:
                error = CacheUnavailable("the cache refused the value; it was served without being kept")
            else:
                _adopted.path = None
                try:
                    self.disk.set(key, _Adopt(tmp, following.size), read=True, tag=tag, expire=expire, retry=True)
                except CACHE_ERRORS as exc:
                    self._fault("write", exc)
                    _unlink(_adopted.path or tmp)
                    error = CacheUnavailable(f"the cache refused the value: {exc}")
                else:
                    final = _adopted.path
                    self.trim()
            following.finish(None, final)
        except BaseException as exc:  # noqa: B036 - reported to the readers, then to on_done
            out.close()
            error = exc if isinstance(exc, OSError) else OSError(errno.EIO, str(exc))
            _unlink(tmp)
            following.finish(error, None)
        finally:
            if on_done is not None:
                try:
                    on_done(error)
                except Exception:  # pragma: no cover - a bug in the callback
                    logger.exception("finishing a value cached while it was served failed")

    @staticmethod
    def _spool_segment(following):
        """An unlinked file of the system's temporary directory for the rest of ``following``, open for writing."""
        fd, path = tempfile.mkstemp(prefix="istore-uncached-")
        try:
            following.add_segment(os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)))
        finally:
            os.unlink(path)
        return open(fd, "wb", buffering=0)

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


class UnavailableCache(_Common):
    """Stands in for a cache directory that cannot be opened: every look-up misses, every write is bypassed."""

    available = False

    def __init__(self, directory, size_limit, error):
        self.directory = Path(directory)
        self.size_limit = size_limit
        self.error = error
        self.retry_at = time.monotonic() + REOPEN_AFTER
        self.lock_dir = self.directory / "locks"
        self.tmp_dir = None
        self.store_dir = self.directory / "store"

    def close(self):
        pass

    def set_size_limit(self, limit):
        self.size_limit = limit

    def get_value(self, key, default=None):
        return default

    def get_file(self, key):
        return None, None

    def __contains__(self, key):
        return False

    def volume(self):
        return 0

    def file_path(self, path, handle=None):
        return None

    def set_value(self, key, value, *, tag=None, expire=None):
        return False

    def delete(self, key):
        pass

    def touch(self, key, expire=None):
        return False

    def put_stream(self, key, reader, *, tag=None, expire=None, keep_open=True, bypass=True):
        if not bypass:
            raise CacheUnavailable(f"the cache {self.directory} cannot be opened: {self.error}")
        handle = self._spool(reader)
        if not keep_open:
            handle.close()
            return None
        return handle

    def put_stream_following(self, key, reader, *, size, tag=None, expire=None, on_done=None):
        return None

    def local_copy(self, key, opener, *, tag=None):
        raise CacheUnavailable(f"the cache {self.directory} cannot be opened: {self.error}")

    def trim(self, limit=None):
        return 0

    def prune(self, max_bytes=None):
        raise CacheUnavailable(f"the cache {self.directory} cannot be opened: {self.error}")

    clear = prune

    def forget_tag(self, tag):
        return 0

    def forget_tag_range(self, low, high):
        return 0

    def forget_key(self, key):
        return 0

    def forget_tree(self, prefix):
        return 0

    def forget_content(self, name):
        return 0


def _unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _lock_backend(cache, name, wait):
    """The single-flight lock: Redis when ``ISTORE_REDIS_URL`` is set, else a file lock (objects.locks)."""
    return locks.single_flight(cache.lock_dir, name, wait)


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
