"""
The read pipeline: from a key to the bytes it serves, and nothing above that.

``read(key, query, depth)`` is the one pipeline. The view calls it for
GET/HEAD of a registered item, ``self://`` sources call it one level deeper
for their target (which need not be registered), and ``_expand`` and the
admin's previews call it as well:

1. ``?apply=`` is parsed and validated first (``processing.operations``), so a
   bad parameter is 400 before anything is fetched;
2. the bytes: the key's uploaded content if it has some, else its embedded
   source (``objects.sources``: http, file, self), else 404;
3. the operation, if any, through the derivative cache: one result per
   (source version, ``op.cache_key``), computed once across threads and
   processes (``objects.cache``), unless ``ISTORE_CACHE_DERIVATIVES=false``.
   Computing takes a capacity slot (``objects.capacity``: ``pixels``, or
   ``ffmpeg`` for video), as fetching a source does (in ``sources.http``).

Everything comes back as a ``sources.Body``: the bytes with their validators
(size, type, strong ETag, Last-Modified, Cache-Control) and ``version``, the
identity of the bytes that keys derived results. Turning it into HTTP (304,
Range, HEAD, X-Accel) is ``objects.serving``'s; replaying an answer later is
``objects.replay``'s, which wraps the whole application and never reaches in
here. Content in remote storage (S3) is served by streaming from storage,
and copied into the local cache once before it is processed.
"""
import dataclasses
import logging
import os
from contextlib import ExitStack, contextmanager
from datetime import timezone as dt_timezone
from functools import partial

from django.conf import settings
from django.http import QueryDict

from processing import operations

from . import cache as shared_cache
from . import capacity, content, keys, metrics, sources
from .digests import digest
from .errors import NotFound, translated
from .mediatypes import FALLBACK_TYPE
from .models import Item

logger = logging.getLogger(__name__)

_LOOKUP = object()


def read(key, query=None, depth=0, *, item=_LOOKUP, chain=None, accept=None):
    """The Body that a GET of ``key`` with ``query`` returns, at ``self://`` nesting ``depth``.

    ``query`` is a QueryDict, a mapping, or a query string (``self://P?Q``).
    ``item`` may be passed when the caller already looked it up (None: not
    registered). ``chain`` is the keys read so far on this request (cycle
    detection; ``self`` resolvers extend it). ``accept`` is the request's
    Accept header ("" when it sent none), which ``format=auto`` negotiates
    with at every level; None for a read made by istore itself, which
    ``ISTORE_AUTO_FORMAT`` does not concern.
    """
    query = _as_query(query)
    operation = _parse_operation(query, accept, depth)
    chain = chain or (key,)
    body = _open(key, item, depth, chain, accept)
    if operation is None:
        return body
    try:
        return _apply(operation, body, owner=chain[0])
    finally:
        body.close()


def _as_query(query):
    if query is None:
        return QueryDict("")
    if isinstance(query, str):
        return QueryDict(query)
    return query


def _parse_operation(query, accept, depth):
    # ISTORE_AUTO_FORMAT concerns the request's own operation, not those of the self:// sources it reads.
    auto = accept is not None and depth == 0 and settings.ISTORE_AUTO_FORMAT
    with translated():
        return operations.parse_operation(query, accept=accept, default_format="auto" if auto else None)


def _open(key, item, depth, chain, accept):
    if item is _LOOKUP:
        item = Item.objects.by_key(key)
    if item is not None and item.has_content:
        return _upload_body(item)
    parsed = keys.parse_key(key)
    if parsed.source is not None:
        context = sources.Context(key=key, dir=parsed.dir, depth=depth, chain=chain,
                                  read=read if accept is None else partial(read, accept=accept))
        return sources.open_source(parsed.source, context)
    if item is None:
        raise NotFound(f"Nothing is at {key!r}: it is not registered, has no uploaded content and embeds "
                       "no source URL.", code="no_such_key")
    raise NotFound(f"{key!r} is registered but has no content: it holds metadata only (see ?meta=1).",
                   code="no_content")


def _upload_body(item):
    name = item.content_name
    path = content.local_path(name)
    to_local = None
    if path is None:
        # Remote storage: processing needs a local file, copied once into the cache.
        def to_local():
            handle = shared_cache.get_cache().local_copy(
                "upload:" + name, lambda: content.open_content(name), tag="c:" + name
            )
            handle.close()  # the copy stays on disk while it is in the cache
            return handle.name

    return sources.Body(
        size=item.content_size,
        content_type=item.content_type or FALLBACK_TYPE,
        etag=item.content_etag,
        version=f"upload:{item.content_etag}",
        last_modified=item.updated.astimezone(dt_timezone.utc) if item.updated else None,
        opener=lambda: content.open_content(name),
        to_local=to_local,
        path=path,
    )


def _apply(operation, body, owner):
    """The processed Body: from the derivative cache, or computed once and cached.

    A miss waits for its capacity slot (``objects.capacity``) before the
    single-flight lock, so requests waiting for the same result are bounded
    like the computation itself; the source is local before either.
    """
    if not settings.ISTORE_CACHE_DERIVATIVES:
        with _local_file(body, None) as path:
            content_type, data = _compute(operation, body, path)
        return _derived(body, operation, shared_cache.Derivative(content_type, data=data))
    cache = shared_cache.get_cache()
    key = cache.derivative_key(body.version, operation.cache_key)
    hit = cache.get_derivative(key, owner)
    metrics.cache_lookup("derivative", hit is not None)
    if hit is None:
        with _local_file(body, cache.tmp_dir) as path, capacity.slot(_kind(operation, body)), cache.lock(key):
            hit = cache.get_derivative(key, owner)
            if hit is None:
                content_type, data = _compute(operation, body, path)
                hit = cache.put_derivative(key, content_type, data, owner=owner)
    return _derived(body, operation, hit)


def _kind(operation, body):
    """The capacity an operation runs in: ffmpeg for video frames and video ``info``, else pixels."""
    video = operation.needs_video or (operation.name == "info" and body.content_type.startswith("video/"))
    return "ffmpeg" if video else "pixels"


def _compute(operation, body, path):
    """Run ``operation`` on the local copy ``path`` of ``body``, in a capacity slot of its kind."""
    with capacity.slot(_kind(operation, body)), metrics.processing_timer(operation.name), translated():
        result = operation.run(path, body.content_type)
    return result.content_type, result.data


@contextmanager
def _local_file(body, tmp_dir):
    """``body.local_file(tmp_dir)``; when the cache cannot hold the copy (full,
    read-only), a copy in the system's temporary directory instead."""
    stack = ExitStack()
    try:
        path = stack.enter_context(body.local_file(tmp_dir))
    except shared_cache.CACHE_ERRORS as exc:
        logger.warning("the cache could not hold a local copy for processing (%s); using a temporary file", exc)
        path = stack.enter_context(dataclasses.replace(body, to_local=None).local_file(None))
    with stack:
        yield path


def _derived(body, operation, derivative):
    """The Body of a processed result (a ``cache.Derivative``): its cached file, or its bytes."""
    version = "derived:" + digest(body.version, operation.cache_key)
    handle = derivative.handle
    return sources.Body(
        size=os.fstat(handle.fileno()).st_size if handle is not None else len(derivative.data),
        content_type=derivative.content_type,
        etag=digest(version),
        version=version,
        last_modified=body.last_modified,
        cache_control=body.cache_control,
        handle=handle,
        path=handle.name if handle is not None else None,
        data=derivative.data,
        processed=True,
        vary="Accept" if operation.negotiated else body.vary,
        cache_status=body.cache_status,
    )
