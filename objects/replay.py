"""
Replay of unchanged content responses: the hot path of a cached image.

The commonest request an image service gets is a plain GET of a URL it has
answered before, from bytes that have not changed since. Django's request
cycle costs more than that answer, so ``ReplayMiddleware`` (wrapped around
the WSGI application in ``istore_site/wsgi.py``) keeps, per worker process,
the last 200 response to each such URL (status, headers, body) with the
*fingerprint* of what it was made from, and answers the next identical
request from it while the fingerprint is unchanged:

- the item's row, read with one indexed lookup (its ``_id``, ``updated`` and
  content name, ``Item.objects.version``), so a write on any host is seen on
  the next request;
- the source's own fingerprint (``Resolver.fingerprint``: one ``stat`` for a
  ``file`` source). ``http`` and ``self`` sources have none, so their
  responses always go through Django.

``reading.serve`` offers a response for replay and takes the fingerprint
*before* reading, so a change during the read costs a later miss, never a
stale answer. Only what Django would answer the same way is replayed: plain
GETs (Range and conditional requests go to Django), public reads, the same
Host, scheme and raw request target, no ``Vary``. An ``X-Accel-Redirect``
answer is replayed while the cache file it names exists. Entries live in a bounded LRU
(cachetools) of ``ISTORE_REPLAY_CACHE_BYTES`` per process; bodies over
``ISTORE_REPLAY_MAX_BODY_BYTES`` are not kept. Anything unexpected (the
database going away) falls through to Django, which answers as it would have.

With ``ISTORE_CACHE_DERIVATIVES=false`` a processed result is not kept but
made again: the entry holds Django's headers and a ``Recipe`` (the operation
and the source file it ran on), and each replay runs the operation anew.
"""
import logging
import os
import threading
import time
from dataclasses import dataclass, replace

from cachetools import LRUCache
from django.conf import settings

from . import keys, metrics, sources
from .sources.base import file_identity
from .middleware import log_request

logger = logging.getLogger(__name__)

OFFER = "istore.replay"
# A request carrying any of these is answered by Django (206, 304, 412).
_DJANGO_ONLY = ("HTTP_RANGE", "HTTP_IF_RANGE", "HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE",
                "HTTP_IF_MATCH", "HTTP_IF_UNMODIFIED_SINCE")


def enabled():
    return settings.ISTORE_REPLAY_CACHE_BYTES > 0 and settings.ISTORE_PUBLIC_READ


def fingerprint(key, has_content=None):
    """What the content served at ``key`` is made from (its item's
    ``Item.objects.version`` and, without uploaded content, its source's
    fingerprint), or None when there is no cheap token for it: then its
    responses are not replayed.

    A caller holding the item passes ``has_content``: an item without
    content whose source gives no token (an http source, say) then costs no
    lookup.
    """
    from .models import Item

    source = keys.parse_key(key).source
    token = sources.fingerprint(source) if source is not None else None
    if has_content is False and token is None:
        return None
    version = Item.objects.version(key)
    if version is None:
        return None
    if version[2]:  # uploaded content
        return version
    return None if token is None else (version, token)


@dataclass
class Offer:
    """A response being made that may be replayed (``request.META[OFFER]``)."""

    key: str
    fingerprint: tuple
    path: str
    recomputed: bool  # a processed result that is not cached: replayable with a recipe only
    file: str = None
    recipe: "Recipe" = None


def offer(request, item, processed):
    """Mark the response ``reading.serve`` is making for ``item`` as replayable
    when the request allows it; call before reading its bytes."""
    if not enabled() or not _replayable(request.META):
        return
    token = fingerprint(item.key, item.has_content)
    if token is not None:
        recomputed = processed and not settings.ISTORE_CACHE_DERIVATIVES
        request.META[OFFER] = Offer(item.key, token, request.path, recomputed)


def handed_to_nginx(request, path):
    """Note that the response offered for replay hands the cache file ``path``
    to nginx (X-Accel-Redirect): a replay then also needs the file to exist.
    Cache files are never rewritten in place, only evicted, so existing is
    enough."""
    offered = request.META.get(OFFER)
    if offered is not None:
        offered.file = path


def recompute_with(request, recipe):
    """Note how the uncached processed result being offered is made again."""
    offered = request.META.get(OFFER)
    if offered is not None:
        offered.recipe = recipe


@dataclass(frozen=True)
class Recipe:
    """An operation on a local source file, and the identity of that file
    (device, inode, mtime, size) when the result was made.

    With ``ISTORE_CACHE_DERIVATIVES=false`` a replay of a processed result
    keeps Django's headers and runs the operation again: the pixels are
    computed on every request, as the setting asks; only the request cycle
    (routing, lookup, access, validation, headers) is skipped.
    """

    operation: object
    path: str
    content_type: str
    identity: tuple

    @classmethod
    def of(cls, operation, path, content_type):
        """The recipe of ``operation`` run on the file ``path`` as it is now; None when it is gone."""
        try:
            return cls(operation, path, content_type, file_identity(os.stat(path)))
        except OSError:
            return None

    def run(self):
        """The result's bytes, or None when the file is no longer the one recorded."""
        if file_identity(os.stat(self.path)) != self.identity:
            return None
        with metrics.processing_timer(self.operation.name):
            return self.operation.run(self.path, self.content_type).data


def _replayable(environ):
    return environ.get("REQUEST_METHOD") == "GET" and not any(name in environ for name in _DJANGO_ONLY)


def _request_key(environ):
    target = environ.get("RAW_URI") or environ.get("PATH_INFO", "") + "?" + environ.get("QUERY_STRING", "")
    return (environ.get("HTTP_HOST"), environ.get("wsgi.url_scheme"), environ.get("HTTP_X_FORWARDED_PROTO"),
            target)


@dataclass(frozen=True)
class Entry:
    key: str
    fingerprint: tuple
    path: str
    status: str
    headers: list
    body: bytes
    file: str = None  # the cache file nginx sends, for X-Accel-Redirect answers
    recipe: Recipe = None  # makes the body again, which is then not kept

    @property
    def size(self):
        """Bytes held, Python's object headers included (measured with
        tracemalloc, rounded up): what the LRU bounds by ISTORE_REPLAY_CACHE_BYTES."""
        per_header = 160  # a (name, value) tuple and its two strings
        overhead = 500 + (600 if self.recipe is not None else 0)  # entry, fingerprint, request key; operation
        return (len(self.body) + sum(len(name) + len(value) + per_header for name, value in self.headers)
                + 2 * len(self.key) + overhead)


class ReplayMiddleware:
    """WSGI middleware: answer from ``Entry``s while their fingerprint holds."""

    def __init__(self, application):
        self.application = application
        self.entries = LRUCache(maxsize=max(settings.ISTORE_REPLAY_CACHE_BYTES, 1),
                                getsizeof=lambda entry: entry.size)
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if not enabled() or not _replayable(environ):
            return self.application(environ, start_response)
        request_key = _request_key(environ)
        with self.lock:
            entry = self.entries.get(request_key)
        if entry is not None:
            started = time.perf_counter()
            answer = self._answer(entry)
            if answer is not None:
                headers, body = answer
                start_response(entry.status, headers)
                metrics.cache_lookup("replay", True)
                log_request(environ, entry.path, 200, time.perf_counter() - started, str(len(body)))
                return [body]
            with self.lock:
                self.entries.pop(request_key, None)
        return self._record(request_key, environ, start_response)

    def _answer(self, entry):
        """(headers, body) of the replay of ``entry``, or None when it is stale."""
        try:
            if entry.file is not None and not os.path.exists(entry.file):
                return None
            if fingerprint(entry.key) != entry.fingerprint:
                return None
            if entry.recipe is None:
                return entry.headers, entry.body
            body = entry.recipe.run()
            if body is None:
                return None
            return [(name, str(len(body)) if name.lower() == "content-length" else value)
                    for name, value in entry.headers], body
        except Exception:  # noqa: BLE001 - Django answers, and reports, whatever this was
            logger.debug("replay failed for %r; Django answers", entry.key, exc_info=True)
            return None

    def _record(self, request_key, environ, start_response):
        answer = {}

        def capture(status, headers, exc_info=None):
            answer.update(status=status, headers=headers)
            return start_response(status, headers, exc_info)

        result = self.application(environ, capture)
        offered = environ.pop(OFFER, None)
        if offered is None or not answer.get("status", "").startswith("200"):
            return result
        names = {name.lower(): value for name, value in answer["headers"]}
        length = names.get("content-length", "")
        if ("vary" in names or "set-cookie" in names or ("x-accel-redirect" in names and offered.file is None)
                or not length.isdigit()):
            return result
        entry = Entry(offered.key, offered.fingerprint, offered.path, answer["status"], list(answer["headers"]),
                      b"", offered.file, offered.recipe)
        if offered.recomputed:
            if offered.recipe is not None:
                self._store(request_key, entry)
            return result
        if int(length) > settings.ISTORE_REPLAY_MAX_BODY_BYTES:
            return result
        return _Recording(result, lambda body: self._store(request_key, replace(entry, body=body)),
                          int(length))

    def _store(self, request_key, entry):
        with self.lock:
            try:
                self.entries[request_key] = entry
            except ValueError:  # larger than the whole cache
                pass


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
