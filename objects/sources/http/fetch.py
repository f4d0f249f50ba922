"""
Fetching from the origin: the guarded requests session, a GET whose redirects
are followed here one hop at a time (at most ``ISTORE_MAX_REDIRECTS``, each hop
re-checked by ``objects.sources.guard``), the errors a source answers with, and
the reader that streams a body under ``ISTORE_MAX_SOURCE_BYTES``.
"""
import threading
from urllib.parse import urljoin, urlsplit

import requests
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import ReadTimeoutError

from .. import guard
from ... import metrics
from ...errors import BadGateway, GatewayTimeout, NotFound, PayloadTooLarge

REDIRECT_STATUSES = (301, 302, 303, 307, 308)
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


# -- GET ------------------------------------------------------------------------------


def get(url, headers):
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
