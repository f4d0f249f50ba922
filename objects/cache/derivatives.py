"""
Processed results (derivatives): stored in the cache under ``drv:<digest>``
of (source version, operation), given back as a ``Derivative``.

With ``ISTORE_REDIS_URL`` set, a processed result of at most
``SHARED_DERIVATIVE_MAX_BYTES`` is also kept in Redis for
``SHARED_DERIVATIVE_SECONDS``: hosts share it, so concurrent identical
requests on several hosts compute once (the holder of the Redis lock puts it
there before releasing the lock, a waiter on another host reads it there).
Those entries are content-addressed (source version + operation), so they
need no forgetting: they expire.
"""
import io
from dataclasses import dataclass

from django.conf import settings

from .. import locks
from ..digests import sha256_hex
from .base import CacheUnavailable

SHARED_DERIVATIVE_SECONDS = 600
SHARED_DERIVATIVE_MAX_BYTES = 8 * 1024 * 1024
SHARED_PREFIX = "istore:drv:"


@dataclass
class Derivative:
    """A processed result: its type and an open file of the cache, or its bytes when not cached."""

    content_type: str
    handle: object = None
    data: bytes | None = None


class DerivativesMixin:
    """Finding and storing processed results, here and (with Redis) for the other hosts."""

    @staticmethod
    def derivative_key(version, op_key):
        return "drv:" + sha256_hex(f"{version}\0{op_key}")

    # -- derivatives shared through Redis ----------------------------------------------------------

    @staticmethod
    def _shared_get(key):
        client = locks.redis_client()
        if client is None:
            return None
        from redis.exceptions import RedisError

        try:
            value = client.get(SHARED_PREFIX + key)
        except RedisError as exc:
            locks.redis_failed(settings.ISTORE_REDIS_URL, exc, "reading a shared result")
            return None
        if not value or b"\0" not in value:
            return None
        content_type, _, data = value.partition(b"\0")
        return content_type.decode("utf-8", "replace"), data

    @staticmethod
    def _shared_put(key, content_type, data):
        if len(data) > SHARED_DERIVATIVE_MAX_BYTES:
            return
        client = locks.redis_client()
        if client is None:
            return
        from redis.exceptions import RedisError

        try:
            client.set(SHARED_PREFIX + key, content_type.encode("utf-8") + b"\0" + data,
                       ex=SHARED_DERIVATIVE_SECONDS)
        except RedisError as exc:
            locks.redis_failed(settings.ISTORE_REDIS_URL, exc, "sharing a result")

    def get_derivative(self, key, owner=None):
        """The cached result ``key`` as a ``Derivative``, or None."""
        handle, tag = self.get_file(key)
        if handle is not None:
            if isinstance(tag, str) and tag.startswith("k:") and "\0" in tag:
                return Derivative(tag.rpartition("\0")[2], handle=handle)
            handle.close()  # not a derivative of this format
        shared = self._shared_get(key)
        if shared is None:
            return None
        content_type, data = shared
        handle = self._put_derivative_file(key, content_type, data, owner)
        return Derivative(content_type, handle=handle, data=None if handle is not None else data)

    def put_derivative(self, key, content_type, data, *, owner=None):
        """Store a computed result (here and, with Redis, for the other hosts); returns a ``Derivative``."""
        handle = self._put_derivative_file(key, content_type, data, owner)
        self._shared_put(key, content_type, data)
        return Derivative(content_type, handle=handle, data=None if handle is not None else data)

    def _put_derivative_file(self, key, content_type, data, owner):
        tag = f"k:{owner or ''}\0{content_type}"
        try:
            return self.put_stream(key, io.BytesIO(data), tag=tag, bypass=False)
        except CacheUnavailable:
            return None
