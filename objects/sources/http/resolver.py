"""
``HttpResolver``: an ``http``/``https`` source as a ``Body``, fresh from the
cache when CacheControl says so, else fetched once under the cache's
single-flight lock: revalidated (304), stored whole, or served while it
downloads (``_stream_response``); or, when the origin fails, the stale copy
(``stale``).

``fingerprint`` lets the replay layer answer repeated reads of a fresh cached
source (and its processed results) without Django, as it does for files: each
store or revalidation of a source writes ``FRESH + key`` = (body token, fresh
until), and the fingerprint is that token while the copy is fresh, one read of
the cache. Once it is not, replays stop and the next read comes here, where
the copy is revalidated with the origin once, under the single-flight lock.
"""
import functools
import logging
import os
import time
import uuid
from contextlib import ExitStack
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import requests
from cachecontrol.controller import CacheController
from django.conf import settings

from .. import guard
from ... import cache as shared_cache
from ... import capacity, metrics
from ...digests import digest
from ...errors import BadRequest
from ...mediatypes import SNIFF_BYTES, clean_type, guess_type
from ..base import Body, Resolver
from . import stale
from .caching import BODY, FRESH, META, SYNTHETIC_ETAG, TOKEN_TAG, _HEURISTIC, _PARSER, _SourceStore, fresh_until
from .fetch import SourceError, SourceNotFound, SourceTimeout, _SourceReader, _streamable, _too_large, deadline, get
from .fetch import session

logger = logging.getLogger("objects.sources.http")  # the package's name, for all of its modules

OK_STATUSES = (200, 203)


def _parse_date(value):
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else None


# -- the resolver -------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _cache_key(url):
    """The cache's key for the source URL ``url`` (the URL as requests sends it, normalised)."""
    return CacheController.cache_url(_request(url).url)


def _request(url):
    try:
        return session().prepare_request(requests.Request("GET", url))
    except (requests.exceptions.RequestException, ValueError) as exc:
        raise BadRequest(f"The source URL {url!r} is not a valid URL: {exc}.", code="invalid_source_url") from None


class HttpResolver(Resolver):
    schemes = ("http", "https")

    def check(self, url):
        reason = guard.ambiguity(url)
        if reason:
            raise BadRequest(f"The source URL {url[:200]!r} is refused: {reason}.", code="ambiguous_source_url")

    def fingerprint(self, url):
        """``("http", token)`` of the cached copy of ``url`` while it is fresh (the bytes
        ``open`` gives until then), else None: missing, or due for revalidation."""
        try:
            entry = shared_cache.get_cache().peek_value(FRESH + _cache_key(url))
        except BadRequest:
            return None
        if not (isinstance(entry, tuple) and len(entry) == 2) or time.time() >= entry[1]:
            return None
        return ("http", entry[0])

    def open(self, url, context):
        guard.check_url(url)
        request = _request(url)
        cache = shared_cache.get_cache()
        cache_key = CacheController.cache_url(request.url)
        body = self._fresh(cache, request, url)
        metrics.cache_lookup("source", body is not None)
        if body is not None:
            return body
        # A fetch slot (objects.capacity) and the single-flight lock; a download served
        # while it goes on takes both along. Waiting for another request's download of
        # the same URL holds a slot too, so those waits are bounded like downloads.
        held = ExitStack()
        with held:
            held.enter_context(capacity.slot("fetch"))
            held.enter_context(cache.lock("src:" + cache_key, wait=settings.ISTORE_SOURCE_TIMEOUT))
            body = self._fresh(cache, request, url)
            if body is None and stale.recently_failed(cache, cache_key):
                body = self._stale(cache, request, cache_key, url)
            if body is not None:
                return body
            return self._fetch(cache, request, cache_key, url, deadline(), held=held)

    def _fresh(self, cache, request, url):
        """The cached body if CacheControl says it is fresh, else None."""
        store = _SourceStore(cache, keep_stale=True)
        try:
            response = CacheController(store).cached_request(request)
            if not response:
                return None
            handle = store.take()
            if handle is None:
                return None
            cache_key = CacheController.cache_url(request.url)
            if cache.peek_value(FRESH + cache_key) is None:  # evicted, or stored before istore noted it
                _remember(cache, cache_key, store.token, response.headers)
            return self._body(url, response.headers, handle, store.last_path, store.token)
        finally:
            store.close()

    def _fetch(self, cache, request, cache_key, url, until, conditional=True, held=None):
        store = _SourceStore(cache)
        controller = CacheController(store)
        try:
            headers = controller.conditional_headers(request) if conditional else {}
            if headers.get("If-None-Match", "").startswith(SYNTHETIC_ETAG):
                del headers["If-None-Match"]
            try:
                response = get(url, headers, until)
            except (SourceError, SourceTimeout) as failure:  # unreachable, timed out
                return self._stale_or_raise(cache, request, cache_key, url, failure)
            try:
                status = response.status_code
                if status >= 500:
                    return self._stale_or_raise(cache, request, cache_key, url, SourceError(
                        f"The source answered {status} {response.reason}: {url}."))
                if status == 304 and headers:
                    updated = controller.update_cached_response(request, response.raw)
                    if _HEURISTIC.renew(updated, response.raw):
                        store.extra_life = stale.window(updated.headers)
                        controller.cache_response(request, updated, body=None)
                    handle = store.take()
                    if handle is None:  # evicted meanwhile: fetch the whole body
                        return self._fetch(cache, request, cache_key, url, until, conditional=False, held=held)
                    _remember(cache, cache_key, store.token, updated.headers)
                    return self._body(url, updated.headers, handle, store.last_path, store.token)
                if status in (404, 410):
                    raise SourceNotFound(f"The source answered {status} {response.reason}: {url}.")
                if status not in OK_STATUSES:
                    raise SourceError(f"The source answered {status} {response.reason}: {url}.")
                if held is not None and _streamable(response):
                    body = self._stream_response(cache, store, controller, request, response, cache_key, url,
                                                 until, held)
                    if body is not None:
                        response = store = None  # the download thread closes them
                        return body
                return self._store_response(cache, store, controller, request, response, cache_key, url, until)
            finally:
                if response is not None:
                    response.close()
        finally:
            if store is not None:
                store.close()

    def _stale_or_raise(self, cache, request, cache_key, url, failure):
        """The stale copy standing in for the origin's ``failure``, or ``failure`` raised."""
        body = self._stale(cache, request, cache_key, url)
        if body is None:
            raise failure
        stale.note_failure(cache, cache_key)
        logger.warning("serving a stale copy of %s: %s", url, failure.detail)
        return body

    def _stale(self, cache, request, cache_key, url):
        """The cached body, marked stale, when it may stand in for a failed revalidation; else None."""
        store = _SourceStore(cache, keep_stale=True)
        try:
            data = store.get(cache_key)
            if data is None:
                return None
            response = CacheController(store).serializer.loads(request, data, store.get_body(cache_key))
            if response is None or not stale.servable(response.headers):
                return None
            handle = store.take()
            if handle is None:
                return None
            body = self._body(url, response.headers, handle, store.last_path, store.token)
            body.cache_status = stale.CACHE_STATUS
            return body
        finally:
            store.close()

    def _stream_response(self, cache, store, controller, request, response, cache_key, url, until, held):
        """Start storing the body from a background thread and serve it as it arrives; None if the
        cache cannot take it now (nothing read: ``_store_response`` then stores or bypasses it)."""
        raw = response.raw
        size = int(response.headers["content-length"])
        token = uuid.uuid4().hex
        reader = _SourceReader(raw, settings.ISTORE_MAX_SOURCE_BYTES, url, until)
        lock = held.pop_all()  # the slot and the lock, released by done() when the body is stored (or failed)

        def done(error):
            try:
                if error is None and reader.error is None:
                    if "private" not in controller.parse_cache_control(raw.headers):
                        controller.cache_response(request, raw, body=None)
                    if store.meta_written:
                        _remember(cache, cache_key, token, raw.headers)
                    else:
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
        store.extra_life = stale.window(raw.headers)
        following = cache.put_stream_following(BODY + cache_key, reader, size=size, tag=TOKEN_TAG + token,
                                               on_done=done)
        if following is None:
            held.enter_context(lock)
            return None
        capacity.handed_over("fetch")

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

    def _store_response(self, cache, store, controller, request, response, cache_key, url, until):
        raw = response.raw
        limit = settings.ISTORE_MAX_SOURCE_BYTES
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise _too_large(url, int(length))
        _HEURISTIC.apply(raw)
        token = uuid.uuid4().hex
        store.token = token
        store.extra_life = stale.window(raw.headers)
        reader = _SourceReader(raw, limit, url, until)
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
        if store.meta_written:
            _remember(cache, cache_key, token, raw.headers)
        else:
            # Not storable (no-store, private, no validator and no freshness):
            # served from this file once, then gone.
            cache.delete(META + cache_key)
            cache.touch(BODY + cache_key, expire=shared_cache.TRANSIENT_SECONDS)
        return self._body(url, raw.headers, handle, handle.name, token)

    def _body(self, url, headers, handle, path, token):
        size = os.fstat(handle.fileno()).st_size
        return Body(**self._describe(url, headers, size, token, lambda: _read_head(path)), handle=handle, path=path)

    def _describe(self, url, headers, size, token, head):
        """What a Body of these bytes says about them; ``head()`` gives their first bytes, for sniffing."""
        etag = headers.get("etag")
        version = f"http:{url}\0{etag}\0{size}" if etag else f"http-body:{token}"
        content_type = clean_type(headers.get("content-type"))
        if content_type is None:
            content_type = guess_type(urlsplit(url).path, head())
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



def _read_head(path):
    """The first bytes of the file at ``path``, for sniffing its type."""
    try:
        with open(path, "rb") as handle:
            return handle.read(SNIFF_BYTES)
    except OSError:
        return b""


def _remember(cache, cache_key, token, headers):
    """Note until when the copy ``token`` of a source is fresh, for ``HttpResolver.fingerprint``."""
    end = fresh_until(headers)
    now = time.time()
    if end is not None and end > now:
        cache.set_value(FRESH + cache_key, (token, end), expire=end - now + 1)
    else:
        cache.delete(FRESH + cache_key)
