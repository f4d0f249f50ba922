"""
``file`` sources: files on istore's own disk, confined to ``ISTORE_FILE_ROOTS``.

``file:///picts/foo.jpg`` (or ``file://localhost/...``) names an absolute
path; as in any URL its path is percent-decoded once (``%20`` is a space, so a
literal ``%`` in a file name is written ``%25``). The path is resolved with
``realpath`` (every symlink and ``..``, including ``%2e%2e`` once decoded)
before it is compared with the roots, themselves resolved the same way:
anything outside every root is 403, and so is everything when no root is
configured. The file is then opened without following a final symlink and,
where ``/proc`` tells, the path actually opened is checked again, so swapping
a symlink in between the check and the open does not escape either.

The bytes are already local, so nothing is copied into the cache: each read
stats the file (revalidation by mtime and size) and serves it directly; the
version that keys derived results is (path, mtime, size, inode).
"""
import functools
import os
import stat
from datetime import datetime, timezone
from urllib.parse import unquote

from django.conf import settings

from ..digests import digest
from ..errors import BadRequest, Forbidden, NotFound, PayloadTooLarge
from ..mediatypes import SNIFF_BYTES, guess_type
from .base import Body, Resolver, file_identity

PREFIX = "file://"


class FileForbidden(Forbidden):
    code = "source_forbidden"


class FileNotFound(NotFound):
    code = "source_not_found"


def roots():
    return _resolved_roots(tuple(settings.ISTORE_FILE_ROOTS))


@functools.lru_cache(maxsize=8)
def _resolved_roots(configured):
    # Resolved once per configuration, not per request: roots are
    # operator-controlled and do not move while istore runs.
    return [os.path.realpath(root) for root in configured if root]


def _inside(path, allowed):
    for root in allowed:
        if path == root or path.startswith(root.rstrip(os.sep) + os.sep):
            return True
    return False


def local_path(url):
    """The absolute, still unresolved path a ``file://`` URL names."""
    rest = url[len(PREFIX):]
    host, slash, path = rest.partition("/")
    if host not in ("", "localhost"):
        raise FileForbidden(f"file sources name a file on istore's own disk (file:///path), not on {host!r}.")
    try:
        path = unquote(slash + path, errors="strict")
    except UnicodeDecodeError:
        raise BadRequest(f"The file URL {url!r} percent-decodes to bytes that are not UTF-8.",
                         code="invalid_source_url") from None
    if not path.startswith("/"):
        raise BadRequest(f"The file URL {url!r} names no absolute path.", code="invalid_source_url")
    if "\0" in path:
        raise BadRequest("A file path cannot contain NUL.", code="invalid_source_url")
    return path


def _opened_path(fd, fallback):
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return fallback


class FileResolver(Resolver):
    schemes = ("file",)

    def fingerprint(self, url):
        """The identity of the file the URL's path names now: one ``stat``.

        It follows symlinks as ``open`` does, so a swapped link or a replaced
        file changes it; confinement is not checked here, since a changed
        fingerprint sends the request through ``open`` and its checks again.
        """
        try:
            info = os.stat(local_path(url))
        except (OSError, ValueError, BadRequest, Forbidden):
            return None
        return ("file", *file_identity(info))

    def open(self, url, context):
        allowed = roots()
        if not allowed:
            raise FileForbidden("file sources are disabled: ISTORE_FILE_ROOTS lists no directory.")
        path = local_path(url)
        real = os.path.realpath(path)
        if not _inside(real, allowed):
            raise FileForbidden(f"{path!r} is outside the directories istore may read (ISTORE_FILE_ROOTS).")
        try:
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise FileNotFound(f"The source file {path!r} does not exist.") from None
        except PermissionError:
            raise FileForbidden(f"istore may not read the source file {path!r}.") from None
        except OSError as exc:
            # ELOOP: a symlink was swapped in after the check.
            raise FileForbidden(f"The source file {path!r} cannot be opened: {exc.strerror}.") from None
        try:
            opened = _opened_path(fd, real)
            if not _inside(opened, allowed):
                raise FileForbidden(f"{path!r} is outside the directories istore may read (ISTORE_FILE_ROOTS).")
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                raise FileNotFound(f"The source {path!r} is a directory, not a file.")
            if not stat.S_ISREG(info.st_mode):
                raise FileForbidden(f"The source {path!r} is not a regular file.")
            if info.st_size > settings.ISTORE_MAX_SOURCE_BYTES:
                raise PayloadTooLarge(
                    f"The source file {path!r} is {info.st_size} bytes; ISTORE_MAX_SOURCE_BYTES allows "
                    f"{settings.ISTORE_MAX_SOURCE_BYTES} bytes.",
                    code="source_too_large",
                )
            handle = os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise
        content_type = guess_type(opened, handle.read(SNIFF_BYTES))
        handle.seek(0)
        version = f"file:{opened}\0{info.st_mtime_ns}\0{info.st_size}\0{info.st_ino}"
        return Body(
            size=info.st_size,
            content_type=content_type,
            etag=digest(version),
            version=version,
            last_modified=datetime.fromtimestamp(info.st_mtime, tz=timezone.utc),
            handle=handle,
            path=opened,
        )
