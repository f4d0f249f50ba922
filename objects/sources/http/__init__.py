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

One module per part:

- ``resolver``: ``HttpResolver``, the cache lookups and the fetch that fills them;
- ``fetch``: the requests session, the GET and its redirects, the source
  errors, and the reader that streams a body under the size limit;
- ``caching``: the CacheControl storage on the shared cache and the
  Last-Modified heuristic.
"""
from .caching import BODY, META, SYNTHETIC_ETAG, TOKEN_TAG, _LastModifiedValidator, _SourceStore
from .fetch import (REDIRECT_STATUSES, STREAM_MIN_BYTES, USER_AGENT, SourceError, SourceNotFound,
                    SourceTimeout, SourceTooLarge, _SourceReader, session)
from .resolver import OK_STATUSES, HttpResolver

__all__ = [
    "BODY", "META", "OK_STATUSES", "REDIRECT_STATUSES", "STREAM_MIN_BYTES", "SYNTHETIC_ETAG", "TOKEN_TAG",
    "USER_AGENT", "HttpResolver", "SourceError", "SourceNotFound", "SourceTimeout", "SourceTooLarge",
    "session",
]
