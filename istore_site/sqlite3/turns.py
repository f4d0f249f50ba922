"""
Which thread of this process holds SQLite's write lock, so that its siblings
can let it finish first.

Threads of one process take turns on the GIL. While one holds the write
lock (``istore_site/sqlite3/base.py``), a sibling's Python work (parsing the
next request, a ``_bulk`` body) gains nothing, since only one of them runs at
a time, and it makes the writer, and so every writer of every process
waiting for the lock, slower. So the places that start CPU-bound work call
``yield_to_writer`` first: istore's gunicorn worker before each request,
``_bulk`` between lines. Measured with two workers on two cores
(benchmarks/README.md, "Durability"): POSTs of new keys from 8 clients went
from 1,201 to 1,545/s (medians of three), ``_bulk`` of new keys from 4
clients from 18.7k to 22.9k lines/s.

Plain Python, no Django: gunicorn's worker imports it before the
application. On PostgreSQL nothing records a writer, and yielding is one
read of a global.
"""
import os
import threading

_writer = None  # the ident of the thread that holds the write lock
_released = threading.Condition()


def yield_to_writer(limit=0.02):
    """Wait, up to ``limit`` seconds, while another thread of this process holds the write lock."""
    if _writer is None or _writer == threading.get_ident():
        return
    with _released:
        _released.wait_for(lambda: _writer is None, timeout=limit)


def holding():
    """Record that the calling thread has just taken the write lock."""
    global _writer
    with _released:
        _writer = threading.get_ident()


def released():
    """Record that the write lock was just released, and wake the threads that yield to it."""
    global _writer
    with _released:
        _writer = None
        _released.notify_all()


def _forget_after_fork():
    # A thread of the parent may have held the lock, or the condition.
    global _writer, _released
    _writer, _released = None, threading.Condition()


os.register_at_fork(after_in_child=_forget_after_fork)
