"""
The CacheControl side of an ``http`` source: its storage on the shared cache
(``objects.cache``) and the heuristic that keeps Last-Modified-only responses.

``_SourceStore`` is the CacheControl storage (a ``SeparateBodyBaseCache``):
the controller reads and writes the metadata through it, while the body is
streamed into the cache by the resolver and read back as an open file.
Metadata and body are two cache entries; a random token written into both
(the metadata value and the body's tag) pairs them, so a body evicted or
replaced under a metadata entry is never served with the wrong headers.
"""
import calendar
import os
from email.utils import parsedate_tz

from cachecontrol.cache import SeparateBodyBaseCache
from cachecontrol.controller import CacheController
from cachecontrol.heuristics import LastModified

from ...digests import digest

META = "srcmeta:"
BODY = "srcbody:"
FRESH = "srcfresh:"  # (body token, fresh until): what Resolver.fingerprint reads
TOKEN_TAG = "t:"
SYNTHETIC_ETAG = 'W/"istore-lm-'
HEURISTIC_MARK = "X-Istore-Heuristic"  # kept beside an Expires that _LastModifiedValidator wrote


class _SourceStore(SeparateBodyBaseCache):
    """CacheControl's cache API over objects.cache, for one fetch.

    ``get`` returns metadata only when the body it belongs to is present (same
    token), and opens that body; ``get_body`` hands the open file to the
    controller. Handles not taken by the resolver are closed by ``close``.

    Entries are kept ``extra_life`` seconds past their freshness, and with
    ``keep_stale`` the controller's purge of a stale entry is ignored, so that
    an entry can still stand in for an origin that fails (``stale``).
    """

    def __init__(self, shared, keep_stale=False):
        self.shared = shared
        self.keep_stale = keep_stale
        self.extra_life = 0
        self.token = None  # the body token this fetch reads or writes
        self.meta_written = False
        self.expires = None
        self._handles = []
        self._pending = None  # opened by get(), handed out by get_body()
        self.last = None  # the handle of the latest successful load
        self.last_path = None

    def get(self, key):
        self.last = None
        entry = self.shared.get_value(META + key)
        if not (isinstance(entry, tuple) and len(entry) == 2):
            return None
        token, data = entry
        handle, tag = self.shared.get_file(BODY + key)
        if handle is None:
            return None
        if tag != TOKEN_TAG + token:
            handle.close()
            return None
        self.token = token
        self._handles.append(handle)
        self._pending = self.last = handle
        return data

    def get_body(self, key):
        handle, self._pending = self._pending, None
        return handle

    def set(self, key, value, expires=None):
        expire = expires + self.extra_life if isinstance(expires, int) and expires > 0 else None
        self.shared.set_value(META + key, (self.token, value), expire=expire)
        self.meta_written = True
        self.expires = expire

    def set_body(self, key, body):  # pragma: no cover - bodies are streamed by the resolver
        raise NotImplementedError("source bodies are streamed into the cache by HttpResolver")

    def delete(self, key):
        if self.keep_stale:
            return
        self.shared.delete(META + key)
        self.shared.delete(BODY + key)

    def take(self):
        """A handle on the body of the latest load, owned by the caller.

        A duplicate descriptor: the controller's urllib3 response closes the
        one it wraps when it is garbage-collected.
        """
        handle = self.last
        if handle is None:
            return None
        self.last = None
        duplicate = os.fdopen(os.dup(handle.fileno()), "rb")
        self.last_path = handle.name
        return duplicate

    def close(self):
        for handle in self._handles:
            handle.close()
        self._handles = []


class _LastModifiedValidator(LastModified):
    """RFC 9111's heuristic freshness for responses without Cache-Control or
    Expires (a tenth of their age since Last-Modified, at most a day, as
    browsers and CacheControl's ``LastModified`` do: without it every read of
    a plain static file would revalidate with the origin), and a weak ETag for
    Last-Modified-only responses so CacheControl keeps them for revalidation."""

    def update_headers(self, response):
        headers = response.headers
        updated = super().update_headers(response)
        if updated:
            updated[HEURISTIC_MARK] = "1"
        if "etag" not in headers and "last-modified" in headers:
            tag = digest(headers["last-modified"], headers.get("content-length", ""))
            updated["ETag"] = f'{SYNTHETIC_ETAG}{tag}"'
        return updated

    def renew(self, cached, answer):
        """Count the heuristic freshness of ``cached`` again from the Date of ``answer``, the
        304 just merged into it (an Expires the heuristic wrote would otherwise stay in the
        past, and the copy be revalidated on every read). True when ``cached`` changed."""
        headers = cached.headers
        ours = headers.pop(HEURISTIC_MARK, None) is not None
        if ours and "expires" not in answer.headers:
            headers.pop("expires", None)
        self.apply(cached)
        return ours or HEURISTIC_MARK in headers

    def warning(self, response):
        return None


_HEURISTIC = _LastModifiedValidator()
_PARSER = CacheController()  # only for parse_cache_control


def fresh_until(headers):
    """When a response with ``headers`` stops being fresh (a Unix time), as CacheControl
    counts: ``Date`` plus ``max-age``, else ``Expires`` (which the Last-Modified heuristic
    writes); None without a ``Date``."""
    date = _timestamp(headers.get("date"))
    if date is None:
        return None
    max_age = _PARSER.parse_cache_control(headers).get("max-age")
    if max_age is not None:
        return date + max_age
    expires = _timestamp(headers.get("expires"))
    return max(date, expires) if expires is not None else date


def _timestamp(value):
    parsed = parsedate_tz(value) if value else None
    return calendar.timegm(parsed[:6]) if parsed is not None else None
