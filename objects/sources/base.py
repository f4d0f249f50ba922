"""
The small interface every source scheme implements.

A resolver turns a source URL into a ``Body``: the bytes (as a local file, an
open handle, bytes in memory, or a stream opener for remote storage) plus what
HTTP needs to serve them (size, type, a strong ETag, Last-Modified, the
Cache-Control to send) and ``version``, the identity of these bytes that keys
the derivative cache. Adding ``s3://`` later is one module with one ``Resolver``
subclass, registered by scheme in ``objects.sources``.

``Body`` is also what ``objects.reading.read`` returns for uploaded content and
for processed results, so a ``self://`` source is simply the Body of another
read.
"""
import io
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

DEFAULT_CACHE_CONTROL = "public, no-cache"


def file_identity(info):
    """What makes a file the same file (a ``stat`` result): replaced, rewritten
    or swapped for another, one of these changes."""
    return info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size


@dataclass
class Body:
    """Bytes to serve or process, with what HTTP needs to know about them.

    Exactly one of ``handle`` (an open binary file, kept open so eviction or
    replacement of a cache file cannot pull it away), ``path``, ``data`` or
    ``opener`` must provide the bytes; ``path`` may accompany ``handle``.
    """

    size: int
    content_type: str
    etag: str  # strong validator, unquoted
    version: str  # identity of these bytes for derivative cache keys
    last_modified: object = None  # aware datetime or None
    cache_control: str = DEFAULT_CACHE_CONTROL
    path: str | None = None
    handle: object = None
    data: bytes | None = None
    opener: Callable | None = None  # returns a binary file object (remote storage)
    to_local: Callable | None = None  # returns a local path holding the bytes (copies remote storage)
    processed: bool = False
    # RFC 9211 Cache-Status to send, for a stale copy served because the origin failed.
    cache_status: str | None = None
    vary: str | None = None  # "Accept" when format=auto chose the format of these bytes
    _handed_out: bool = field(default=False, repr=False)

    def open(self):
        """A binary file object positioned at the first byte."""
        if self.handle is not None and not self._handed_out:
            self._handed_out = True
            self.handle.seek(0)
            return self.handle
        if self.path is not None:
            return open(self.path, "rb")
        if self.data is not None:
            return io.BytesIO(self.data)
        if self.opener is not None:
            return self.opener()
        raise ValueError("this Body has no bytes")

    @property
    def is_local(self):
        """True when the bytes are on this machine (so Range can seek in them)."""
        return self.path is not None or self.handle is not None or self.data is not None

    @contextmanager
    def local_file(self, tmp_dir=None):
        """Yield a path on local disk holding the bytes (for processing and ffmpeg)."""
        if self.path is not None:
            yield self.path
            return
        if self.to_local is not None:
            yield self.to_local()
            return
        if tmp_dir is not None:
            os.makedirs(tmp_dir, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix="istore-", dir=tmp_dir)
        try:
            with os.fdopen(fd, "wb") as out:
                if self.data is not None:
                    out.write(self.data)
                else:
                    with self.open() as source:
                        shutil.copyfileobj(source, out, 1024 * 1024)
            yield temp
        finally:
            try:
                os.unlink(temp)
            except OSError:
                pass

    def close(self):
        """Close a handle that was never handed out (304, HEAD, processing)."""
        if self.handle is not None and not self._handed_out:
            self._handed_out = True
            self.handle.close()


@dataclass(frozen=True)
class Context:
    """Where a source is being resolved from.

    ``read`` is ``objects.reading.read`` handed down so that ``self://`` can
    read another key without ``sources`` importing ``reading``.
    """

    key: str  # the key whose embedded source is being opened
    dir: str  # that key's directory (self:// paths are relative to it)
    depth: int  # self:// nesting level of ``key`` (0 for the request's own key)
    chain: tuple = ()  # keys read so far on this request, outermost first
    read: Callable | None = None  # read(key, query, depth, chain=...) -> Body


class Resolver:
    """Open a source URL of one or more schemes.

    Subclasses set ``schemes`` and implement ``open``, raising
    ``objects.errors.ApiError`` subclasses for every failure (404 source
    missing, 403 refused, 413 too large, 502 unreachable or erroring, 504 timed
    out) so that the view answers with a JSON error naming the source status.
    """

    schemes: tuple = ()

    def open(self, url: str, context: Context) -> Body:  # pragma: no cover - interface
        raise NotImplementedError

    def check(self, url: str):
        """Raise ``objects.errors.BadRequest`` when a key embedding ``url`` must not be
        written (checked at write time; the default accepts every URL)."""

    def fingerprint(self, url: str):
        """A cheap, hashable token that changes whenever ``open(url)`` would give
        other bytes, or None when there is none (the default): responses from
        such sources are never replayed (``objects.replay``)."""
        return None
