"""
Fetching from the origin: the guarded requests session, a GET whose redirects
are followed here one hop at a time (at most ``ISTORE_MAX_REDIRECTS``, each hop
re-checked by ``objects.sources.guard``), the errors a source answers with, and
the reader that streams a body under ``ISTORE_MAX_SOURCE_BYTES``.
"""
import threading
import time
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
    """Reads the origin's body for diskcache, enforcing the size limit and the total deadline.

    Never raises: a failure ends the stream and is kept in ``error`` so the
    caller can drop the partial entry and raise it. Before each read the
    socket's timeout is the smaller of ``ISTORE_READ_TIMEOUT`` and what is
    left of the fetch's ``deadline`` (``time.monotonic()``), so an origin that
    drips a byte now and then is cut at the deadline, not one read later.
    """

    def __init__(self, raw, limit, url, deadline):
        self.raw, self.limit, self.url, self.deadline = raw, limit, url, deadline
        self.size = 0
        self.error = None

    def read(self, amount=-1):
        """At most ``amount`` bytes, as soon as some have arrived: a read that waited to fill
        ``amount`` would let an origin that drips bytes run past the deadline."""
        return self._read(self.raw.read1, amount)

    read1 = read  # for serving while downloading

    def _read(self, method, amount):
        if self.error is not None:
            return b""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            self.error = _past_deadline(self.url, self.size)
            return b""
        _set_read_timeout(self.raw, min(settings.ISTORE_READ_TIMEOUT, remaining))
        try:
            chunk = method(None if amount is None or amount < 0 else amount, decode_content=True)
        except ReadTimeoutError:
            if time.monotonic() >= self.deadline:
                self.error = _past_deadline(self.url, self.size)
            else:
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


def _set_read_timeout(raw, seconds):
    """Make the next socket read of the urllib3 response ``raw`` wait at most ``seconds``."""
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 0.001))


def _past_deadline(url, size):
    return SourceTimeout(
        f"The source {url} was not fetched within {settings.ISTORE_SOURCE_TIMEOUT:g} s "
        f"(ISTORE_SOURCE_TIMEOUT; {size} bytes had arrived)."
    )


def deadline():
    """The ``time.monotonic()`` by which a fetch starting now must have its last byte."""
    return time.monotonic() + settings.ISTORE_SOURCE_TIMEOUT


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


def get(url, headers, until):
    """GET with the redirects followed by hand; returns the final streamed response.

    ``until`` is the fetch's total deadline (``time.monotonic()``): every
    connect and read waits at most until then.
    """
    current = url
    for hop in range(settings.ISTORE_MAX_REDIRECTS + 1):
        if hop:
            guard.check_url(current)
        remaining = until - time.monotonic()
        if remaining <= 0:
            raise _past_deadline(current, 0)
        timeout = (min(settings.ISTORE_CONNECT_TIMEOUT, remaining), min(settings.ISTORE_READ_TIMEOUT, remaining))
        try:
            response = session().get(current, headers=headers, stream=True, allow_redirects=False,
                                     timeout=timeout)
        except requests.exceptions.ConnectTimeout:
            if time.monotonic() >= until:
                raise _past_deadline(current, 0) from None
            raise SourceTimeout(
                f"The source {_host(current)} did not accept a connection within "
                f"{settings.ISTORE_CONNECT_TIMEOUT} s (ISTORE_CONNECT_TIMEOUT): {current}."
            ) from None
        except requests.exceptions.ReadTimeout:
            if time.monotonic() >= until:
                raise _past_deadline(current, 0) from None
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
