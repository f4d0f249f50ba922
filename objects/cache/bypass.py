"""
Serving without the cache when it cannot take a value, or cannot be opened.

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
"""
import io
import os
import tempfile
import time
from pathlib import Path

from ..errors import ServiceUnavailable
from .base import CHUNK, BaseCache, CacheUnavailable
from .derivatives import DerivativesMixin

REOPEN_AFTER = 30.0  # seconds before a cache directory that could not be opened is tried again


class UncachedFile(io.FileIO):
    """A file outside the cache holding bytes the cache could not take; deleted when closed."""

    def close(self):
        if not self.closed:
            try:
                os.unlink(self.name)
            except OSError:
                pass
        super().close()


def spool(reader, prefix_path=None, prefix_size=0, pending=b""):
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


class UnavailableCache(DerivativesMixin, BaseCache):
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

    peek_value = get_value

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
        handle = spool(reader)
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
