"""
``http`` and ``https`` sources: fetched with requests, cached on disk with
CacheControl's HTTP caching rules.

Why CacheControl: it is the httplib2 caching algorithm ported to requests
(the one pip itself uses), so freshness from ``Cache-Control`` / ``Expires``
and ``Date``, ``Vary``, ``no-store``, and revalidation with ``If-None-Match`` /
``If-Modified-Since`` followed by a 304 merge are its code, not ours. Its
``CacheController`` is used directly, without its requests adapter, because
the adapter buffers each body in memory and hands it to the cache as one
``bytes``: here bodies stream from the socket into a file of the shared cache
(``objects.cache``) and are served from that file. ``_SourceStore`` is the
CacheControl storage (a ``SeparateBodyBaseCache``) on the shared cache: the
controller reads and writes the metadata through it, while the body is
written by ``_store_response`` and read back as an open file.

Metadata and body are two cache entries; a random token written into both
(the metadata value and the body's tag) pairs them, so a body evicted or
replaced under a metadata entry is never served with the wrong headers.

Two adjustments for a shared cache, each small and named:

- a response marked ``private`` is served once, never stored (RFC 9111
  §5.2.2.7: CacheControl is written for a private client cache);
- CacheControl keeps a stale entry for revalidation only when it has an
  ``ETag``. A source that only sends ``Last-Modified`` gets a synthetic weak
  ETag from the CacheControl heuristic hook (``_LastModifiedValidator``), so it
  is kept and revalidated with ``If-Modified-Since``; the synthetic value is
  removed from the ``If-None-Match`` we send.

Concurrent misses on one URL fetch once: the fetch runs under the cache's
single-flight lock and re-checks the cache once it holds it. A body of known
length (``STREAM_MIN_BYTES`` or more, not content-encoded) is served while it
downloads: a thread streams it into the cache (``SharedCache.put_stream_following``)
and the response reads the bytes as they land; that thread holds the lock
until the body is stored, then writes the CacheControl metadata. Redirects are
followed here one hop at a time (at most ``ISTORE_MAX_REDIRECTS``), each hop
re-checked by ``objects.sources.guard``.
"""
import logging
import os
import threading
import uuid
from contextlib import ExitStack
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import requests
from cachecontrol.cache import SeparateBodyBaseCache
from cachecontrol.controller import CacheController
from cachecontrol.heuristics import LastModified
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import ReadTimeoutError

from istore_site.errors import BadGateway, BadRequest, GatewayTimeout, NotFound, PayloadTooLarge

from .. import cache as shared_cache
from .. import metrics
from . import guard
from .base import FALLBACK_TYPE, SNIFF_BYTES, Body, Resolver, clean_type, digest, guess_type, read_head

logger = logging.getLogger(__name__)

META = "srcmeta:"
BODY = "srcbody:"
TOKEN_TAG = "t:"
SYNTHETIC_ETAG = 'W/"istore-lm-'
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
OK_STATUSES = (200, 203)
# An uncached body at least this big, of known length and not content-encoded,
# is served while it downloads into the cache (first byte at once, not after
# the whole download).
STREAM_MIN_BYTES = 1024 * 1024
USER_AGENT = "istore (source fetcher)"


class SourceTooLarge(PayloadTooLarge):
    code = "source_too_large"


class SourceNotFound(NotFound):
    code = "source_not_found"


class SourceError(BadGateway):
    code = "source_error"


class SourceTimeout(GatewayTimeout):
    code = "source_timeout"


# -- the requests session ---------------------------------------------------------

_session = None
_session_lock = threading.Lock()


def session():
    global _session
    if _session is None:
        with _session_lock:
            if _session is None:
                _session = guard.guarded_session(USER_AGENT)
    return _session


@receiver(setting_changed)
def _reset_session(setting, **kwargs):
    # Pooled connections were checked against the rules in force when they
    # opened; start afresh when the rules change (tests do that).
    global _session
    if setting.startswith("ISTORE_ALLOW") or setting == "ISTORE_ALLOWED_SOURCES":
        with _session_lock:
            old, _session = _session, None
        if old is not None:
            old.close()


# -- CacheControl storage on the shared cache -----------------------------------------


class _SourceStore(SeparateBodyBaseCache):
    """CacheControl's cache API over objects.cache, for one fetch.

    ``get`` returns metadata only when the body it belongs to is present (same
    token), and opens that body; ``get_body`` hands the open file to the
    controller. Handles not taken by the resolver are closed by ``close``.
    """

    def __init__(self, shared):
        self.shared = shared
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
        expire = expires if isinstance(expires, int) and expires > 0 else None
        self.shared.set_value(META + key, (self.token, value), expire=expire)
        self.meta_written = True
        self.expires = expire

    def set_body(self, key, body):  # pragma: no cover - bodies are streamed by the resolver
        raise NotImplementedError("source bodies are streamed into the cache by HttpResolver")

    def delete(self, key):
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
        if "etag" not in headers and "last-modified" in headers:
            tag = digest(headers["last-modified"], headers.get("content-length", ""))
            updated["ETag"] = f'{SYNTHETIC_ETAG}{tag}"'
        return updated

    def warning(self, response):
        return None


_HEURISTIC = _LastModifiedValidator()
_PARSER = CacheController()  # only for parse_cache_control


# -- reading the body into the cache ------------------------------------------------------


class _SourceReader:
    """Reads the origin's body for diskcache, enforcing the size limit.

    Never raises: a failure ends the stream and is kept in ``error`` so the
    caller can drop the partial entry and raise it.
    """

    def __init__(self, raw, limit, url):
        self.raw, self.limit, self.url = raw, limit, url
        self.size = 0
        self.error = None

    def read(self, amount=-1):
        return self._read(self.raw.read, amount)

    def read1(self, amount=-1):
        """At most ``amount`` bytes, as soon as some have arrived (for serving while downloading)."""
        return self._read(self.raw.read1, amount)

    def _read(self, method, amount):
        if self.error is not None:
            return b""
        try:
            chunk = method(None if amount is None or amount < 0 else amount, decode_content=True)
        except ReadTimeoutError:
            self.error = SourceTimeout(
                f"The source {self.url} stopped sending for more than {settings.ISTORE_READ_TIMEOUT} s "
                f"after {self.size} bytes (ISTORE_READ_TIMEOUT)."
            )
            return b""
        except (Urllib3Error, OSError) as exc:
            self.error = SourceError(
                f"The source {self.url} broke off after {self.size} bytes: {exc.__class__.__name__}."
            )
            return b""
        self.size += len(chunk)
        metrics.fetched_bytes("http", len(chunk))
        if self.size > self.limit:
            self.error = _too_large(self.url, self.size, at_least=True)
            return b""
        return chunk


def _streamable(response):
    """True when the body can be served while it downloads: its length is known (and within
    ``ISTORE_MAX_SOURCE_BYTES``, big enough to matter) and the bytes on the wire are the bytes served."""
    length = response.headers.get("content-length", "")
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    return (length.isdigit() and STREAM_MIN_BYTES <= int(length) <= settings.ISTORE_MAX_SOURCE_BYTES
            and encoding in ("", "identity"))


def _too_large(url, size, at_least=False):
    more = " or more" if at_least else ""
    return SourceTooLarge(
        f"The source {url} is {size} bytes{more}; ISTORE_MAX_SOURCE_BYTES allows "
        f"{settings.ISTORE_MAX_SOURCE_BYTES} bytes."
    )


def _parse_date(value):
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else None


# -- the resolver -------------------------------------------------------------------


class HttpResolver(Resolver):
    schemes = ("http", "https")

    def open(self, url, context):
        guard.check_url(url)
        try:
            request = session().prepare_request(requests.Request("GET", url))
        except (requests.exceptions.RequestException, ValueError) as exc:
            raise BadRequest(f"The source URL {url!r} is not a valid URL: {exc}.",
                             code="invalid_source_url") from None
        cache = shared_cache.get_cache()
        cache_key = CacheController.cache_url(request.url)
        body = self._fresh(cache, request, url)
        metrics.cache_lookup("source", body is not None)
        if body is not None:
            return body
        held = ExitStack()  # the lock; a download served while it goes on takes it along
        with held:
            held.enter_context(cache.lock("src:" + cache_key))
            body = self._fresh(cache, request, url)
            if body is not None:
                return body
            return self._fetch(cache, request, cache_key, url, held=held)

    def _fresh(self, cache, request, url):
        """The cached body if CacheControl says it is fresh, else None."""
        store = _SourceStore(cache)
        try:
            response = CacheController(store).cached_request(request)
            if not response:
                return None
            handle = store.take()
            if handle is None:
                return None
            return self._body(url, response.headers, handle, store.last_path, store.token)
        finally:
            store.close()

    def _fetch(self, cache, request, cache_key, url, conditional=True, held=None):
        store = _SourceStore(cache)
        controller = CacheController(store)
        try:
            headers = controller.conditional_headers(request) if conditional else {}
            if headers.get("If-None-Match", "").startswith(SYNTHETIC_ETAG):
                del headers["If-None-Match"]
            response = self._get(url, headers)
            try:
                status = response.status_code
                if status == 304 and headers:
                    updated = controller.update_cached_response(request, response.raw)
                    handle = store.take()
                    if handle is None:  # evicted meanwhile: fetch the whole body
                        return self._fetch(cache, request, cache_key, url, conditional=False, held=held)
                    return self._body(url, updated.headers, handle, store.last_path, store.token)
                if status in (404, 410):
                    raise SourceNotFound(f"The source answered {status} {response.reason}: {url}.")
                if status not in OK_STATUSES:
                    raise SourceError(f"The source answered {status} {response.reason}: {url}.")
                if held is not None and _streamable(response):
                    body = self._stream_response(cache, store, controller, request, response, cache_key, url, held)
                    if body is not None:
                        response = store = None  # the download thread closes them
                        return body
                return self._store_response(cache, store, controller, request, response, cache_key, url)
            finally:
                if response is not None:
                    response.close()
        finally:
            if store is not None:
                store.close()

    def _stream_response(self, cache, store, controller, request, response, cache_key, url, held):
        """Start storing the body from a background thread and serve it as it arrives; None if the
        cache cannot take it now (nothing read: ``_store_response`` then stores or bypasses it)."""
        raw = response.raw
        size = int(response.headers["content-length"])
        token = uuid.uuid4().hex
        reader = _SourceReader(raw, settings.ISTORE_MAX_SOURCE_BYTES, url)
        lock = held.pop_all()  # released by done(), when the body is stored (or failed)

        def done(error):
            try:
                if error is None and reader.error is None:
                    if "private" not in controller.parse_cache_control(raw.headers):
                        controller.cache_response(request, raw, body=None)
                    if not store.meta_written:
                        cache.delete(META + cache_key)
                        cache.touch(BODY + cache_key, expire=shared_cache.TRANSIENT_SECONDS)
                else:
                    cache.delete(BODY + cache_key)
                    if reader.error is not None or not isinstance(error, shared_cache.CacheUnavailable):
                        logger.warning("%s was served while it downloaded but broke off: %s", url,
                                       reader.error.detail if reader.error is not None else error)
            finally:
                response.close()
                store.close()
                lock.close()

        _HEURISTIC.apply(raw)
        store.token = token
        following = cache.put_stream_following(BODY + cache_key, reader, size=size, tag=TOKEN_TAG + token,
                                               on_done=done)
        if following is None:
            held.enter_context(lock)
            return None

        def to_local():
            try:
                return following.wait_path()
            except shared_cache.CacheUnavailable:
                raise
            except OSError:
                raise reader.error or SourceError(f"The source {url} broke off: {following.error}.") from None

        return Body(
            **self._describe(url, raw.headers, size, token, lambda: following.head(SNIFF_BYTES)),
            handle=following.open(),
            opener=following.open,
            to_local=to_local,
        )

    def _store_response(self, cache, store, controller, request, response, cache_key, url):
        raw = response.raw
        limit = settings.ISTORE_MAX_SOURCE_BYTES
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise _too_large(url, int(length))
        _HEURISTIC.apply(raw)
        token = uuid.uuid4().hex
        store.token = token
        reader = _SourceReader(raw, limit, url)
        handle = cache.put_stream(BODY + cache_key, reader, tag=TOKEN_TAG + token)
        if reader.error is not None:
            if handle is not None:
                handle.close()
            cache.delete(BODY + cache_key)
            raise reader.error
        if handle is None:
            raise SourceError(f"The body of {url} could not be read back from the cache.")
        if "private" not in controller.parse_cache_control(raw.headers):
            controller.cache_response(request, raw, body=None)
        if not store.meta_written:
            # Not storable (no-store, private, no validator and no freshness):
            # served from this file once, then gone.
            cache.delete(META + cache_key)
            cache.touch(BODY + cache_key, expire=shared_cache.TRANSIENT_SECONDS)
        return self._body(url, raw.headers, handle, handle.name, token)

    def _get(self, url, headers):
        """GET with the redirects followed by hand; returns the final streamed response."""
        timeout = (settings.ISTORE_CONNECT_TIMEOUT, settings.ISTORE_READ_TIMEOUT)
        current = url
        for hop in range(settings.ISTORE_MAX_REDIRECTS + 1):
            if hop:
                guard.check_url(current)
            try:
                response = session().get(current, headers=headers, stream=True, allow_redirects=False,
                                         timeout=timeout)
            except requests.exceptions.ConnectTimeout:
                raise SourceTimeout(
                    f"The source {_host(current)} did not accept a connection within "
                    f"{settings.ISTORE_CONNECT_TIMEOUT} s (ISTORE_CONNECT_TIMEOUT): {current}."
                ) from None
            except requests.exceptions.ReadTimeout:
                raise SourceTimeout(
                    f"The source {_host(current)} sent no answer within {settings.ISTORE_READ_TIMEOUT} s "
                    f"(ISTORE_READ_TIMEOUT): {current}."
                ) from None
            except requests.exceptions.SSLError as exc:
                raise SourceError(f"TLS with the source {_host(current)} failed: {_reason(exc)}.") from None
            except requests.exceptions.ConnectionError as exc:
                raise SourceError(
                    f"The source {_host(current)} is unreachable: {_reason(exc)} ({current})."
                ) from None
            except requests.exceptions.RequestException as exc:
                raise SourceError(f"Fetching the source {current} failed: {_reason(exc)}.") from None
            location = response.headers.get("location")
            if response.status_code in REDIRECT_STATUSES and location:
                response.close()
                current = urljoin(current, location)
                continue
            return response
        raise SourceError(
            f"The source {url} redirected more than {settings.ISTORE_MAX_REDIRECTS} times "
            "(ISTORE_MAX_REDIRECTS).",
            code="too_many_redirects",
        )

    def _body(self, url, headers, handle, path, token):
        size = os.fstat(handle.fileno()).st_size
        return Body(**self._describe(url, headers, size, token, lambda: read_head(path)), handle=handle, path=path)

    def _describe(self, url, headers, size, token, head):
        """What a Body of these bytes says about them; ``head()`` gives their first bytes, for sniffing."""
        etag = headers.get("etag")
        version = f"http:{url}\0{etag}\0{size}" if etag else f"http-body:{token}"
        content_type = clean_type(headers.get("content-type"))
        if content_type is None:
            content_type = guess_type(urlsplit(url).path)
            if content_type == FALLBACK_TYPE:
                content_type = guess_type("", head())
        directives = _PARSER.parse_cache_control(headers)
        if "no-store" in directives:
            cache_control = "no-store"
        elif "private" in directives:
            cache_control = "private, no-cache"
        else:
            cache_control = "public, no-cache"
        return dict(
            size=size,
            content_type=content_type,
            etag=digest(version),
            version=version,
            last_modified=_parse_date(headers.get("last-modified")),
            cache_control=cache_control,
        )


def _host(url):
    try:
        return urlsplit(url).netloc or url
    except ValueError:
        return url


def _reason(exc):
    """The innermost useful reason of a requests/urllib3 exception."""
    seen = exc
    while True:
        inner = getattr(seen, "reason", None) or (seen.args[0] if seen.args else None)
        if isinstance(inner, BaseException) and inner is not seen:
            seen = inner
            continue
        break
    text = str(seen)
    if "Name or service not known" in text or "nodename nor servname" in text or "NameResolution" in repr(seen):
        return "its host name does not resolve"
    if "Connection refused" in text:
        return "connection refused"
    return text[:200] or seen.__class__.__name__
