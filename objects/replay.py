"""
Replay: repeated GETs of unchanged content answered before Django.

The commonest request an image service gets is a plain GET of a URL it has
answered before, from bytes that have not changed since. Django's request
cycle costs several times that answer (measured in ``benchmarks/README.md``:
a replayed cached derivative takes ~50 µs in-process, the same answer
through Django ~600 µs, and Django's handler with no view at all ~125 µs),
so ``ReplayLayer`` wraps the WSGI application (``istore_site/wsgi.py``) and,
per worker process, keeps the last 200 answer to each such URL (status,
headers, body) with the *fingerprint* of what it was made from, and answers
the next identical request from it while the fingerprint is unchanged:

- the item's row, read with one indexed lookup (``Item.objects.version``:
  its ``_id``, ``updated`` and content name), so a write on any host is seen
  by the next request;
- without uploaded content, the source's own token (``sources.fingerprint``:
  one ``stat`` for a ``file`` source). Sources without a token (``http``,
  ``self``) are never replayed.

It is one layer with one entry point, ``ReplayLayer.__call__``; nothing below
knows it exists. It takes the fingerprint itself, *before* handing a miss to
Django, and keeps Django's answer when it is a complete 200 of a key's
content: a change during the read costs a later miss, never a stale answer.

What a replay skips, and why that is safe: Django's middleware, URL routing
and the view. So only requests whose answer depends on nothing but the URL,
the Host and the fingerprint are replayed: GETs of a key (not a directory,
not ``?meta=``, not a reserved ``/_`` path), without ``Range``, conditional
headers, ``Authorization`` or ``Cookie``, on a store with public reads; and
only answers without ``Set-Cookie``, and without ``Vary`` unless it is
``Vary: Accept``. That one is istore's own ``format=auto``, whose choice
depends on nothing but the formats the Accept header lists
(``processing.negotiation``): the choice is part of an entry's key, so an
answer is only replayed to a request that would be given the same format.
Every header Django's middleware added is in the kept answer. A policy that
must also hold for replays (a rate limit, a signature: ``signing.replayable``)
belongs in ``_eligible``; one that only
guards expensive work needs nothing here, since a replay does no expensive
work (an uncached processed result excepted, below, which runs through the
same read pipeline and so under the same limits).

An answer handed to nginx (``X-Accel-Redirect``) is replayed while the cache
file it names exists (cache files are evicted, never rewritten). With
``ISTORE_CACHE_DERIVATIVES=false`` a processed result is not kept: its entry
holds Django's headers, and each replay reads it again through
``reading.read``, so the pixels are computed on every request as the setting
asks, and only the request cycle is skipped; if that read fails, Django
answers. Entries live in a bounded LRU (cachetools) of
``ISTORE_REPLAY_CACHE_BYTES`` per process; bodies over
``ISTORE_REPLAY_MAX_BODY_BYTES`` are not kept. Anything unexpected (the
database going away) falls through to Django, which answers as it would have.
"""
import logging
import os
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import unquote

from cachetools import LRUCache
from django.conf import settings

from processing.negotiation import negotiate

from . import capacity, keys, metrics, reading, responses, signing, sources
from .middleware import log_request
from .models import Item

logger = logging.getLogger(__name__)

# A request carrying any of these is answered by Django: 206, 304 and 412 are
# Django's to decide, and a token or a session is checked there.
_DJANGO_ONLY = ("HTTP_RANGE", "HTTP_IF_RANGE", "HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE",
                "HTTP_IF_MATCH", "HTTP_IF_UNMODIFIED_SINCE", "HTTP_AUTHORIZATION", "HTTP_COOKIE")


def enabled():
    return settings.ISTORE_REPLAY_CACHE_BYTES > 0 and settings.ISTORE_PUBLIC_READ


def fingerprint(key):
    """What the content served at ``key`` is made from (its item's
    ``Item.objects.version`` and, without uploaded content, its source's
    fingerprint), or None when there is no cheap token for it."""
    source = keys.parse_key(key).source
    token = sources.fingerprint(source) if source is not None else None
    if source is not None and token is None:
        return None  # a source without a token: no lookup needed to know
    version = Item.objects.version(key)
    if version is None:
        return None
    if version[2]:  # uploaded content
        return version
    return None if token is None else (version, token)


def _eligible(environ):
    """The key a replay of this request would serve, or None when Django must answer it."""
    if environ.get("REQUEST_METHOD") != "GET" or any(name in environ for name in _DJANGO_ONLY):
        return None
    target = environ.get("RAW_URI")
    if not target or "meta=" in environ.get("QUERY_STRING", ""):
        return None
    try:
        key = keys.key_from_request(environ, None)
    except keys.InvalidKey:
        return None
    if keys.is_reserved(key) or keys.is_directory(key) or keys.split_verb(key)[1]:
        return None
    if not signing.replayable(environ):
        return None
    return key


def _request_key(environ):
    return (environ.get("HTTP_HOST"), environ.get("wsgi.url_scheme"), environ.get("HTTP_X_FORWARDED_PROTO"),
            environ["RAW_URI"], negotiate(environ.get("HTTP_ACCEPT")))


@dataclass(frozen=True)
class Entry:
    key: str
    fingerprint: tuple
    path: str  # the request's path, for the request log
    status: str
    headers: list
    body: bytes
    file: str = None  # the cache file nginx sends, for X-Accel-Redirect answers
    query: str = None  # set when the body is read again on each replay (uncached processed results)
    accept: str = None  # the Accept header it is read again with (one of the same choice of format)

    @property
    def size(self):
        """Bytes held, Python's object headers included (measured with
        tracemalloc, rounded up: benchmarks/replay_entry_size.py): what the
        LRU bounds by ISTORE_REPLAY_CACHE_BYTES."""
        per_header = 160  # a (name, value) tuple and its two strings
        overhead = 500  # the entry, its fingerprint and request key
        return (len(self.body) + sum(len(name) + len(value) + per_header for name, value in self.headers)
                + 2 * len(self.key) + len(self.query or "") + len(self.accept or "") + overhead)


class ReplayLayer:
    """WSGI middleware: answer from ``Entry``s while their fingerprint holds."""

    def __init__(self, application):
        self.application = application
        self.entries = LRUCache(maxsize=max(settings.ISTORE_REPLAY_CACHE_BYTES, 1),
                                getsizeof=lambda entry: entry.size)
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        key = _eligible(environ) if enabled() else None
        if key is None:
            return self.application(environ, start_response)
        request_key = _request_key(environ)
        with self.lock:
            entry = self.entries.get(request_key)
        if entry is not None:
            started = time.perf_counter()
            try:
                answer = self._answer(entry)
            except capacity.Overloaded as exc:  # answered here: Django would wait for a slot again
                return _refused(exc, environ, start_response)
            if answer is not None:
                headers, body = answer
                start_response(entry.status, headers)
                metrics.cache_lookup("replay", True)
                log_request(environ, entry.path, 200, time.perf_counter() - started, str(len(body)))
                return [body]
            with self.lock:
                self.entries.pop(request_key, None)
        return self._record(key, request_key, environ, start_response)

    def _answer(self, entry):
        """(headers, body) of the replay of ``entry``, or None when it is stale."""
        try:
            if entry.file is not None and not os.path.exists(entry.file):
                return None
            if fingerprint(entry.key) != entry.fingerprint:
                return None
            if entry.query is None:
                return entry.headers, entry.body
            body = reading.read(entry.key, entry.query, accept=entry.accept)
            try:
                with body.open() as handle:
                    data = handle.read()
            finally:
                body.close()
            return [(name, str(len(data)) if name.lower() == "content-length" else value)
                    for name, value in entry.headers], data
        except capacity.Overloaded:
            raise
        except Exception:  # noqa: BLE001 - Django answers, and reports, whatever this was
            logger.debug("replay failed for %r; Django answers", entry.key, exc_info=True)
            return None

    def _record(self, key, request_key, environ, start_response):
        try:
            token = fingerprint(key)
        except Exception:  # noqa: BLE001 - no replay then; Django answers and reports
            logger.debug("no fingerprint for %r", key, exc_info=True)
            token = None
        if token is None:
            return self.application(environ, start_response)
        answer = {}

        def capture(status, headers, exc_info=None):
            answer.update(status=status, headers=headers)
            return start_response(status, headers, exc_info)

        result = self.application(environ, capture)
        if not answer.get("status", "").startswith("200"):
            return result
        names = {name.lower(): value for name, value in answer["headers"]}
        length = names.get("content-length", "")
        if names.get("vary", "accept").lower() != "accept" or "set-cookie" in names or not length.isdigit():
            return result
        entry = Entry(key, token, environ.get("PATH_INFO", ""), answer["status"], list(answer["headers"]), b"",
                      file=_accel_file(names.get("x-accel-redirect")))
        if "apply=" in environ.get("QUERY_STRING", "") and not settings.ISTORE_CACHE_DERIVATIVES:
            self._store(request_key, replace(entry, query=environ.get("QUERY_STRING", ""),
                                             accept=environ.get("HTTP_ACCEPT", "")))
            return result
        if int(length) > settings.ISTORE_REPLAY_MAX_BODY_BYTES:
            return result
        return _Recording(result, lambda body: self._store(request_key, replace(entry, body=body)), int(length))

    def _store(self, request_key, entry):
        with self.lock:
            try:
                self.entries[request_key] = entry
            except ValueError:  # larger than the whole cache
                pass


def _refused(error, environ, start_response):
    """Answer ``error`` (an ApiError) as the JSON Django would have sent."""
    response = responses.error_response(error)
    response["X-Content-Type-Options"] = "nosniff"
    start_response(f"{response.status_code} {response.reason_phrase}", list(response.items()))
    log_request(environ, environ.get("PATH_INFO", ""), response.status_code, 0.0, response["Content-Length"])
    return [response.content]


def _accel_file(location):
    """The cache file an ``X-Accel-Redirect`` target names (``serving._accel_location``), or None."""
    prefix = settings.ISTORE_ACCEL_REDIRECT.rstrip("/") + "/"
    if not location or not location.startswith(prefix):
        return None
    return str(Path(settings.ISTORE_CACHE_DIR) / unquote(location[len(prefix):]))


class _Recording:
    """The response iterable, passed through while its bytes are kept; they
    are stored once the whole body, and exactly ``length`` bytes, went out."""

    def __init__(self, result, store, length):
        self.result, self.store, self.length = result, store, length
        self.chunks, self.complete = [], False

    def __iter__(self):
        for chunk in self.result:
            self.chunks.append(chunk)
            yield chunk
        self.complete = True

    def close(self):
        try:
            if self.complete:
                body = b"".join(self.chunks)
                if len(body) == self.length:
                    self.store(body)
        finally:
            if hasattr(self.result, "close"):
                self.result.close()
