"""
New connections go to the gunicorn worker process that holds the fewest.

Every worker process watches the listening socket and the first to call
``accept()`` wins, however many requests it is already running. With
threaded workers that keep their connections (keep-alive), this leaves them
unevenly loaded for as long as the connections last: eight clients measured
7/1, 6/2 and 1/7 on two workers, and since one process runs Python on one
core at a time, the host served about half of what it could, and a different
share on every run (``benchmarks/README.md``, "Overload and worker model").
Sync workers do not suffer this because a busy one is not in ``accept()``.

So the workers share a small board in memory: each one writes how many
connections it holds (in requests or idle between them) and when it last
looked. A worker woken by a new connection that sees a live worker holding
fewer waits, for at most ``YIELD_SECONDS``, for that one (woken by the same
connection) to take it, and accepts the connection itself if it is still
there: on a quiet host the other takes it within a millisecond, on a loaded
one its process may wait longer for the CPU. A worker that has not written
for ``STALE_SECONDS`` (stuck, or killed) is ignored and its place reused.

The board is made when gunicorn's master imports the worker class, before
it forks the workers, which inherit it. It uses ``multiprocessing`` shared
memory and a lock, and no Django.
"""
import ctypes
import multiprocessing
import os
import time

YIELD_SECONDS = 0.02
POLL_SECONDS = 0.0005  # how often a waiting worker looks whether the connection was taken
STALE_SECONDS = 5.0
_FIELDS = 3  # pid, time of the last write (monotonic: the same clock in every process), connections


class Board:
    """How many connections each worker process holds, shared by the processes forked after it was made."""

    def __init__(self, places=64):
        self.places = places
        self._values = multiprocessing.RawArray(ctypes.c_double, places * _FIELDS)
        self._lock = multiprocessing.Lock()

    def claim(self, pid):
        """The index of a free place for the process ``pid``, or None when every place is in use."""
        now = time.monotonic()
        with self._lock:
            for index in range(self.places):
                owner, seen = self._values[index * _FIELDS], self._values[index * _FIELDS + 1]
                if owner == 0 or now - seen > STALE_SECONDS * 2 or not _alive(int(owner)):
                    self._values[index * _FIELDS: (index + 1) * _FIELDS] = [pid, now, 0]
                    return index
        return None

    def release(self, index):
        with self._lock:
            self._values[index * _FIELDS] = 0

    def publish(self, index, connections):
        """Record that the worker at ``index`` holds ``connections``, as of now."""
        start = index * _FIELDS
        self._values[start + 2] = connections
        self._values[start + 1] = time.monotonic()

    def fewer_elsewhere(self, index, connections):
        """True when another live worker holds fewer connections than ``connections``."""
        now = time.monotonic()
        values = self._values
        for other in range(self.places):
            start = other * _FIELDS
            if other != index and values[start] and now - values[start + 1] < STALE_SECONDS \
                    and values[start + 2] < connections:
                return True
        return False


def _alive(pid):
    try:
        os.kill(pid, 0)  # PermissionError: alive, under another user
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True
