"""
Django's SQLite backend, with writers queued on a file lock instead of
SQLite's busy handler.

SQLite admits one writer at a time. A second one gets SQLITE_BUSY and its busy
handler sleeps 1, 2, 5, 10 ms... before trying again, however soon the first
writer finishes (a POST holds the lock for ~0.3 ms here); with two gunicorn
workers writing, those sleeps and not the work bounded writes to ~1,000/s,
the same as with one worker. So every transaction (they are all ``BEGIN
IMMEDIATE``, see settings) first takes an exclusive ``flock`` on a file beside
the database, polled every 50 µs to 1 ms, and SQLite's own lock is then
uncontended. Past the connection's ``timeout`` the waiter gets SQLite's own
"database is locked" error, as before. The lock is released on commit,
rollback and close.
"""
import fcntl
import os
import time

from django.db import OperationalError
from django.db.backends.sqlite3 import base

FIRST_WAIT, LONGEST_WAIT = 0.00005, 0.001


class DatabaseWrapper(base.DatabaseWrapper):
    _write_lock_fd = None
    _write_lock_held = False

    def _start_transaction_under_autocommit(self):
        self._take_write_lock()
        try:
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._release_write_lock()
            raise

    def _commit(self):
        try:
            return super()._commit()
        finally:
            self._release_write_lock()

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._release_write_lock()

    def _close(self):
        try:
            return super()._close()
        finally:
            self._release_write_lock()
            if self._write_lock_fd is not None:
                os.close(self._write_lock_fd)
                self._write_lock_fd = None

    def _take_write_lock(self):
        if self._write_lock_held or self.is_in_memory_db():
            return
        if self._write_lock_fd is None:
            self._write_lock_fd = os.open(f"{self.settings_dict['NAME']}.writelock", os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + float(self.settings_dict.get("OPTIONS", {}).get("timeout", 5))
        wait = FIRST_WAIT
        while True:
            try:
                fcntl.flock(self._write_lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise OperationalError("database is locked") from None
                time.sleep(wait)
                wait = min(wait * 2, LONGEST_WAIT)
        self._write_lock_held = True

    def _release_write_lock(self):
        if self._write_lock_held:
            fcntl.flock(self._write_lock_fd, fcntl.LOCK_UN)
            self._write_lock_held = False
