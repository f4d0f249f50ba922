"""
The read pipeline (§4, §6, §7): from a key to the bytes served.

``read(key, query, depth)`` is the one pipeline. The view calls it (through
``serve``) for GET/HEAD of a registered item, and ``self://`` sources call it
one level deeper for their target, which need not be registered:

1. ``?apply=`` is parsed and validated first (``processing.operations``), so a
   bad parameter is 400 before anything is fetched;
2. the bytes: the key's uploaded content if it has some, else its embedded
   source (``objects.sources``: http, file, self), else 404;
3. the operation, if any, through the derivative cache: one result per
   (source version, ``op.cache_key``), computed once across threads and
   processes (``objects.cache``), unless ``ISTORE_CACHE_DERIVATIVES=false``.

Everything comes back as a ``sources.Body`` (bytes + size, type, strong ETag,
Last-Modified, Cache-Control), which ``serve`` hands to
``responses.content_response`` for 304 / Range / HEAD / safe headers. Range is
offered on unprocessed bytes only (§4). Content in remote storage (S3) is
served by streaming from storage, and copied into the local cache once before
it is processed.
"""
import dataclasses
import io
import logging
import os
from contextlib import ExitStack, contextmanager
from datetime import timezone as dt_timezone
from urllib.parse import quote

from django.conf import settings
from django.http import QueryDict

from .errors import ApiError, NotFound, translated

from . import cache as shared_cache
from . import content, keys, metrics, replay, responses, sources
from .models import Item

logger = logging.getLogger(__name__)

_LOOKUP = object()


def serve(request, item):
    """The content response for GET/HEAD of the registered ``item``.

    With ``ISTORE_ACCEL_REDIRECT`` set, bytes that live in a file of the cache
    are handed to nginx (``X-Accel-Redirect``): see ``_accel_location``.
    """
    replay.offer(request, item, processed="apply" in request.GET)
    body = read(item.key, request.GET, 0, item=item)
    try:
        if body.recipe is not None:
            replay.recompute_with(request, body.recipe)
        accel = _accel_location(request, body)
        response = responses.content_response(
            request,
            _empty if accel else body.open,
            size=body.size,
            content_type=body.content_type,
            etag=body.etag,
            last_modified=body.last_modified,
            cache_control=body.cache_control,
            # Behind nginx, Range is nginx's to answer, on the file itself.
            allow_range=not body.processed and not accel,
        )
        if accel and response.status_code == 200:
            replay.handed_to_nginx(request, body.path)
            response["X-Accel-Redirect"] = accel
            response["Content-Length"] = "0"
            if not body.processed:
                response["Accept-Ranges"] = "bytes"
        if settings.ISTORE_ACCEL_EXPIRES > 0 and settings.ISTORE_PUBLIC_READ and response.status_code in (200, 304):
            # nginx's proxy_cache may reuse it for that long (docs/deploy.md); never a private store's.
            response["X-Accel-Expires"] = str(settings.ISTORE_ACCEL_EXPIRES)
        return response
    finally:
        body.close()


def _empty():
    return io.BytesIO(b"")


def _accel_location(request, body):
    """The ``X-Accel-Redirect`` target for ``body``, or None to serve it from here.

    Only for a GET of bytes that are a file of the cache (a fetched source, a
    processed result), named by their path relative to the cache directory
    under the internal nginx location ``ISTORE_ACCEL_REDIRECT`` (an ``alias``
    of ``ISTORE_CACHE_DIR``). istore has already checked access and answered
    304 by then; the headers it sends (type, ETag, Last-Modified,
    Cache-Control, nosniff/sandbox) are those of a direct answer, with an
    empty body. A Range request for a processed result is answered here,
    whole, as without nginx (§4 offers Range on unprocessed bytes only).
    """
    location = settings.ISTORE_ACCEL_REDIRECT
    if not location or request.method != "GET" or body.path is None:
        return None
    if body.processed and request.META.get("HTTP_RANGE"):
        return None
    relative = shared_cache.get_cache().file_path(body.path, body.handle)
    if relative is None:
        return None
    return location.rstrip("/") + "/" + quote(relative.as_posix())


def read(key, query=None, depth=0, *, item=_LOOKUP, chain=None):
    """The Body that a GET of ``key`` with ``query`` returns, at ``self://`` nesting ``depth``.

    ``query`` is a QueryDict, a mapping, or a query string (``self://P?Q``).
    ``item`` may be passed when the caller already looked it up (None: not
    registered). ``chain`` is the keys read so far on this request (cycle
    detection; ``self`` resolvers extend it).
    """
    query = _as_query(query)
    operation = _parse_operation(query)
    chain = chain or (key,)
    body = _open(key, item, depth, chain)
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


def _parse_operation(query):
    try:
        from processing.operations import parse_operation
    except ImportError:  # pragma: no cover - processing ships with istore
        if query.get("apply"):
            raise ApiError("Image processing is not available in this build.", status=501,
                           code="not_implemented") from None
        return None
    with translated():
        return parse_operation(query)


def _open(key, item, depth, chain):
    if item is _LOOKUP:
        item = Item.objects.by_key(key)
    if item is not None and item.has_content:
        return _upload_body(item)
    parsed = keys.parse_key(key)
    if parsed.source is not None:
        context = sources.Context(key=key, dir=parsed.dir, depth=depth, chain=chain, read=read)
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
        content_type=item.content_type or content.FALLBACK_TYPE,
        etag=item.content_etag,
        version=f"upload:{item.content_etag}",
        last_modified=item.updated.astimezone(dt_timezone.utc) if item.updated else None,
        opener=lambda: content.open_content(name),
        to_local=to_local,
        path=path,
    )


def _apply(operation, body, owner):
    """The processed Body: from the derivative cache, or computed once and cached."""
    if not settings.ISTORE_CACHE_DERIVATIVES:
        content_type, data = _compute(operation, body, None)
        derived = _derived(body, operation, shared_cache.Derivative(content_type, data=data))
        if body.path is not None:
            derived.recipe = replay.Recipe.of(operation, body.path, body.content_type)
        return derived
    cache = shared_cache.get_cache()
    key = cache.derivative_key(body.version, operation.cache_key)
    hit = cache.get_derivative(key, owner)
    metrics.cache_lookup("derivative", hit is not None)
    if hit is None:
        with cache.lock(key):
            hit = cache.get_derivative(key, owner)
            if hit is None:
                content_type, data = _compute(operation, body, cache.tmp_dir)
                hit = cache.put_derivative(key, content_type, data, owner=owner)
    return _derived(body, operation, hit)


def _compute(operation, body, tmp_dir):
    with _local_file(body, tmp_dir) as path, metrics.processing_timer(operation.name), translated():
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
    version = "derived:" + sources.base.digest(body.version, operation.cache_key)
    handle = derivative.handle
    return sources.Body(
        size=os.fstat(handle.fileno()).st_size if handle is not None else len(derivative.data),
        content_type=derivative.content_type,
        etag=sources.base.digest(version),
        version=version,
        last_modified=body.last_modified,
        cache_control=body.cache_control,
        handle=handle,
        path=handle.name if handle is not None else None,
        data=derivative.data,
        processed=True,
    )
