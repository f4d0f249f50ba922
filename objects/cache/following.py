"""
Serving a value while it is written into the cache.

Serving while writing: ``put_stream_following`` writes a value of known size
from a background thread and returns a ``Following`` at once, whose readers
serve the bytes as they land (objects.sources.http uses it for cold sources,
so their first byte does not wait for the whole download).
"""
import errno
import io
import logging
import os
import tempfile
import threading

from . import files
from .base import CACHE_ERRORS, CacheUnavailable

logger = logging.getLogger("objects.cache")

FOLLOW_CHUNK = 64 * 1024  # a value served while it is written is written in small chunks
FOLLOW_SPARE_BYTES = 64 * 1024 * 1024  # free space beyond the value needed to serve it while writing it
FOLLOW_WAIT = 300.0  # seconds a reader waits for the next bytes of a value being written


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


class FollowingMixin:
    """``SharedCache``'s writes that are served while the bytes land (``put_stream_following``)."""

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
            files.unlink_quietly(tmp)
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
            os.fchmod(fd, files.FILE_MODE)
            while following.written < following.size:
                chunk = read(min(FOLLOW_CHUNK, following.size - following.written))
                if not chunk:
                    break
                view = memoryview(chunk)
                while view:
                    try:
                        landed = files.write_chunk(out, view)
                    except OSError as exc:
                        landed = getattr(exc, "istore_written", 0)
                        following.advance(landed)
                        view = view[landed:]
                        if spooled:
                            raise
                        # The cache refused the write: the rest goes outside it.
                        self._fault("write", exc)
                        out.close()
                        files.unlink_quietly(tmp)
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
                files.adopted.path = None
                try:
                    self.disk.set(key, files.Adopt(tmp, following.size), read=True, tag=tag, expire=expire,
                                  retry=True)
                except CACHE_ERRORS as exc:
                    self._fault("write", exc)
                    files.unlink_quietly(files.adopted.path or tmp)
                    error = CacheUnavailable(f"the cache refused the value: {exc}")
                else:
                    final = files.adopted.path
                    self.trim()
            following.finish(None, final)
        except BaseException as exc:  # noqa: B036 - reported to the readers, then to on_done
            out.close()
            error = exc if isinstance(exc, OSError) else OSError(errno.EIO, str(exc))
            files.unlink_quietly(tmp)
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
