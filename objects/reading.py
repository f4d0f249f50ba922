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
from datetime import timezone as dt_timezone

from django.conf import settings
from django.http import QueryDict

from istore_site.errors import ApiError, NotFound

from . import cache as shared_cache
from . import content, keys, responses, sources
from .models import Item

_LOOKUP = object()


def serve(request, item):
    """The content response for GET/HEAD of the registered ``item``."""
    body = read(item.key, request.GET, 0, item=item)
    try:
        return responses.content_response(
            request,
            body.open,
            size=body.size,
            content_type=body.content_type,
            etag=body.etag,
            last_modified=body.last_modified,
            cache_control=body.cache_control,
            allow_range=not body.processed,
        )
    finally:
        body.close()


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
        return _derived(body, operation, content_type, data)
    cache = shared_cache.get_cache()
    key = cache.derivative_key(body.version, operation.cache_key)
    hit = cache.get_derivative(key)
    if hit is None:
        with cache.lock(key):
            hit = cache.get_derivative(key)
            if hit is None:
                hit = _compute(operation, body, cache.tmp_dir)
                cache.put_derivative(key, *hit, owner=owner)
    return _derived(body, operation, *hit)


def _compute(operation, body, tmp_dir):
    with body.local_file(tmp_dir) as path:
        result = operation.run(path, body.content_type)
    return result.content_type, result.data


def _derived(body, operation, content_type, data):
    version = "derived:" + sources.base.digest(body.version, operation.cache_key)
    return sources.Body(
        size=len(data),
        content_type=content_type,
        etag=sources.base.digest(version),
        version=version,
        last_modified=body.last_modified,
        cache_control=body.cache_control,
        data=data,
        processed=True,
    )
