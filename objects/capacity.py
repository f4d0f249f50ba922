"""
Bounded capacity for expensive work (overload that degrades gracefully).

Each gunicorn worker runs requests in threads (``gunicorn.conf.py``, the
worker in ``objects/worker.py``). Most requests are cheap: a cached read, a
listing, ``?meta=1``, ``/_health``. A few kinds of work are not, and each
kind gets a fixed number of slots per worker:

- ``fetch``: downloading a source (the single-flight wait for someone else's
  download of the same URL included);
- ``pixels``: decoding, processing and encoding an image;
- ``ffmpeg``: running ffmpeg (video frames, video ``info``, ``_expand``).

``slot(kind)`` is the one entry point, a context manager around the
expensive step (not the request): it waits at most ``ISTORE_QUEUE_TIMEOUT``
seconds for a free slot of its kind, then raises ``Overloaded`` (503
``overloaded`` with ``Retry-After``). Threads waiting or working in slots
are also counted together: when that count reaches ``admission_limit()`` (three
quarters of the worker's threads), a new expensive step is refused at once, so
the last quarter of the threads always remains for cheap requests, however
many slow origins hold the slots.

Slots are per worker process (a ``threading.Condition`` and counters), so
a host's capacity is workers x slots. A slot may be released by another
thread than the one that took it: a download served while it arrives hands
its slot to the thread that finishes it. A thread that already holds a slot
of a kind passes through a nested ``slot`` of the same kind.
"""
import math
import threading
import time
from contextlib import contextmanager

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from .errors import ServiceUnavailable

KINDS = ("fetch", "pixels", "ffmpeg")
SETTINGS = {"fetch": "ISTORE_FETCH_SLOTS", "pixels": "ISTORE_PIXEL_SLOTS", "ffmpeg": "ISTORE_FFMPEG_SLOTS"}


class Overloaded(ServiceUnavailable):
    code = "overloaded"

    def __init__(self, detail):
        retry = max(1, math.ceil(settings.ISTORE_QUEUE_TIMEOUT))
        super().__init__(detail, headers={"Retry-After": str(retry)})


class _Limiter:
    """Slots per kind and the count of threads inside any of them, for one process."""

    def __init__(self, slots, admission):
        self.condition = threading.Condition()
        self.free = dict(slots)
        self.slots = dict(slots)
        self.admission = admission
        self.inside = 0  # threads waiting for a slot or holding one, every kind together

    def acquire(self, kind, timeout):
        """True once a slot of ``kind`` is held; False when refused or timed out."""
        deadline = time.monotonic() + timeout
        with self.condition:
            if self.inside >= self.admission:
                return False
            self.inside += 1
            while self.free[kind] <= 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.condition.wait(remaining):
                    if self.free[kind] > 0:
                        break
                    self.inside -= 1
                    return False
            self.free[kind] -= 1
            return True

    def release(self, kind):
        with self.condition:
            self.free[kind] += 1
            self.inside -= 1
            self.condition.notify_all()

    def snapshot(self):
        with self.condition:
            return {"inside": self.inside, "admission": self.admission,
                    **{kind: self.slots[kind] - self.free[kind] for kind in self.slots}}


_limiter = None
_limiter_lock = threading.Lock()
_held = threading.local()


def admission_limit():
    """Threads of a worker that may be in expensive work at once: three quarters of them,
    so a quarter always serves cheap requests (at least one either way)."""
    threads = max(1, settings.ISTORE_THREADS)
    return max(1, threads - max(1, threads // 4))


def limiter():
    global _limiter
    if _limiter is None:
        with _limiter_lock:
            if _limiter is None:
                slots = {kind: max(1, getattr(settings, SETTINGS[kind])) for kind in KINDS}
                _limiter = _Limiter(slots, admission_limit())
    return _limiter


@receiver(setting_changed)
def _reset(setting, **kwargs):
    global _limiter
    if setting in SETTINGS.values() or setting in ("ISTORE_THREADS", "ISTORE_QUEUE_TIMEOUT"):
        _limiter = None


@contextmanager
def slot(kind):
    """Hold a slot of ``kind`` for the block; ``Overloaded`` (503) when none frees up in time."""
    held = getattr(_held, "kinds", None)
    if held is None:
        held = _held.kinds = set()
    if kind in held:
        yield
        return
    current = limiter()
    if not current.acquire(kind, settings.ISTORE_QUEUE_TIMEOUT):
        raise Overloaded(
            f"istore is at capacity for {_WHAT[kind]}; try again in a moment "
            f"(no {kind} slot freed up within ISTORE_QUEUE_TIMEOUT={settings.ISTORE_QUEUE_TIMEOUT:g} s)."
        )
    held.add(kind)
    owner = threading.get_ident()
    try:
        yield
    finally:
        if threading.get_ident() == owner:
            held.discard(kind)
        current.release(kind)


def handed_over(kind):
    """Forget, in this thread, that it holds ``kind``: its slot was handed to another thread
    (which releases it), so this thread may take another one."""
    held = getattr(_held, "kinds", None)
    if held is not None:
        held.discard(kind)


_WHAT = {"fetch": "fetching sources", "pixels": "image processing", "ffmpeg": "video processing"}
