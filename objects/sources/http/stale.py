"""
Stale if error (RFC 5861): when revalidating a cached source fails (the origin
cannot be reached, times out, or answers 5xx), the cached copy is served for up
to ``ISTORE_STALE_IF_ERROR`` seconds past its freshness, marked
``Cache-Status: istore; hit; detail=stale`` (RFC 9211).

- The window is the origin's own ``stale-if-error=N`` when it sent one (it wins
  over the setting, and over its own ``must-revalidate``: it asked for both);
  otherwise ``ISTORE_STALE_IF_ERROR`` (0 turns it off), and none for a response
  marked ``must-revalidate`` or ``proxy-revalidate`` (istore is a shared
  cache). ``no-store`` responses are never kept, so never served stale.
- Freshness is CacheControl's: ``max-age``, else ``Expires`` (the heuristic
  for ``Last-Modified``-only sources writes one), from the response's ``Date``.
- An entry must outlive its freshness to be served stale: its metadata entry
  is kept ``window`` seconds longer (``_SourceStore.extra_life``), and
  CacheControl's purge of a stale entry without validators is not done
  (``_SourceStore(keep_stale=True)``); a stale entry is never served fresh.
- While an origin is failing, each failure is remembered for
  ``RETRY_AFTER_SECONDS`` (``srcfail:<url>`` in the cache): requests in
  between are served the stale copy at once instead of each waiting for the
  origin's timeout again, one after the other, under the single-flight lock.
"""
import re
import time

from django.conf import settings

from .caching import _PARSER, fresh_until

CACHE_STATUS = "istore; hit; detail=stale"
FAILED = "srcfail:"
RETRY_AFTER_SECONDS = 10
_STALE_IF_ERROR = re.compile(r"(?:^|,)\s*stale-if-error\s*=\s*\"?(\d{1,10})\"?\s*(?:,|$)", re.IGNORECASE)


def window(headers):
    """Seconds past its freshness a response with ``headers`` may be served on an origin error."""
    own = _STALE_IF_ERROR.search(headers.get("cache-control", "") or "")
    if own is not None:
        return int(own.group(1))
    directives = _PARSER.parse_cache_control(headers)
    if "no-store" in directives or "must-revalidate" in directives or "proxy-revalidate" in directives:
        return 0
    return max(0, settings.ISTORE_STALE_IF_ERROR)


def staleness(headers, now=None):
    """Seconds the response with ``headers`` has been stale (negative while fresh), or None
    when it has no ``Date`` to count from."""
    end = fresh_until(headers)
    return None if end is None else (time.time() if now is None else now) - end


def servable(headers, now=None):
    """True when a cached response with ``headers`` may stand in for a failed revalidation."""
    past = staleness(headers, now)
    return past is not None and past <= window(headers)


def note_failure(cache, cache_key):
    """Remember that the origin just failed, so requests in the next seconds use the stale copy."""
    cache.set_value(FAILED + cache_key, True, expire=RETRY_AFTER_SECONDS)


def recently_failed(cache, cache_key):
    return cache.peek_value(FAILED + cache_key) is True
