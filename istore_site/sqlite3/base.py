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

Durability with grouped syncs. A commit is acknowledged only once it is on
stable storage, which in WAL mode means once the WAL is synced. SQLite's own
``synchronous=FULL`` syncs inside COMMIT, while the writer still holds the
lock, so writers queue behind each other's fsync (~4 ms here: at most ~250
commits/s, whatever the number of workers). So the connection runs at FULL
(settings) for anything outside a transaction, and each transaction this
wrapper opens runs at NORMAL (SQLite writes the WAL but does not sync it) and
syncs the WAL itself after COMMIT, once the lock is released and before the
commit returns to Django, so before on_commit hooks and any response. Writers
that committed meanwhile wait in their own fdatasync, and the kernel serves
them with the same device flush: the group commit PostgreSQL does with its
WAL flush, without the lock held. What a commit leaves behind is the same as
FULL: its frames, and every earlier one, are on disk before it returns. One
difference: another connection may read the commit during the millisecond
its sync takes, and a power cut then could still take back what it read; no
one was told the write had succeeded.

Within a process (gunicorn's threads), two things keep the threads from
getting in each other's way, since each wake-up of a Python thread costs the
GIL: writers queue for the file lock on a plain thread lock first, so only
one thread per process polls ``flock`` (polling threads woke up by the
thousand a second, taking the GIL from the one that held the database); and
the syncs after commit are grouped (``_WalSyncs``): a committed thread finds
either no sync running and syncs the WAL for every commit made so far, or one
running and waits for it and, if that one started before its own commit
returned, for nothing more. So a process runs one ``fdatasync`` at a time,
each serving every commit before it (benchmarks/README.md, "Durability").
The thread holding the lock is recorded (``turns``), for its siblings to
let it finish before they start CPU-bound work.
"""
import fcntl
import os
import threading
import time

from django.db import OperationalError
from django.db.backends.sqlite3 import base

from objects.durable import sync_directory

from . import turns

FIRST_WAIT, LONGEST_WAIT = 0.00005, 0.001


class _WalSyncs:
    """The WAL syncs of one database in this process: each commit waits until a ``fdatasync`` that
    started after it returned has finished, and one sync serves every commit that waits for it."""

    def __init__(self):
        self.condition = threading.Condition()
        self.committed = 0  # commits of this process that returned from COMMIT
        self.synced = 0  # the first ``synced`` of them are on disk
        self.syncing = False

    def committed_one(self):
        """Count a commit that has just returned; its ticket for ``wait_synced``."""
        with self.condition:
            self.committed += 1
            return self.committed

    def wait_synced(self, ticket, fd):
        """Return once commit ``ticket`` is on disk, syncing ``fd`` (the WAL) if no sync running covers it."""
        with self.condition:
            while self.synced < ticket:
                if self.syncing:
                    self.condition.wait()
                    continue
                self.syncing = True
                covered = self.committed  # each of these returned from COMMIT before the sync starts
                self.condition.release()
                try:
                    os.fdatasync(fd)
                finally:
                    self.condition.acquire()
                    self.syncing = False
                    self.condition.notify_all()
                self.synced = max(self.synced, covered)


# Per database file, for this process: the thread lock writers queue on before the file lock, and
# the grouped WAL syncs. Made anew in a forked child (a thread of the parent may have held them).
_gates, _wal_syncs, _registry_lock = {}, {}, threading.Lock()


def _for_database(registry, name, make):
    with _registry_lock:
        if name not in registry:
            registry[name] = make()
        return registry[name]


def _forget_after_fork():
    global _registry_lock
    _gates.clear()
    _wal_syncs.clear()
    _registry_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


class DatabaseWrapper(base.DatabaseWrapper):
    _write_lock_fd = None
    _write_lock_held = False
    _gate = None  # the thread lock of this process taken with the file lock
    _wal_fd = None
    _in_wal_mode = False  # only the WAL can be synced apart from COMMIT
    _changes_at_begin = None  # total_changes when this wrapper's transaction began

    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        self._in_wal_mode = connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        return connection

    def _start_transaction_under_autocommit(self):
        if self._in_wal_mode:  # before the lock: it sets this connection only
            self.connection.execute("PRAGMA synchronous=NORMAL")
        try:
            self._take_write_lock()
            super()._start_transaction_under_autocommit()
        except BaseException:
            self._release_write_lock()
            if self._in_wal_mode:
                self.connection.execute("PRAGMA synchronous=FULL")
            raise
        if self._in_wal_mode:
            self._changes_at_begin = self.connection.total_changes

    def _commit(self):
        try:
            super()._commit()
        finally:
            self._release_write_lock()
        if self._changes_at_begin is not None:
            self._end_transaction(sync=self.connection.total_changes != self._changes_at_begin)

    def _rollback(self):
        try:
            super()._rollback()
        finally:
            self._release_write_lock()
        if self._changes_at_begin is not None:
            self._end_transaction(sync=False)

    def _close(self):
        try:
            return super()._close()
        finally:
            self._release_write_lock()
            self._changes_at_begin = None
            for attribute in ("_write_lock_fd", "_wal_fd"):
                fd = getattr(self, attribute)
                if fd is not None:
                    os.close(fd)
                    setattr(self, attribute, None)

    def _end_transaction(self, sync):
        """Back to FULL for statements outside transactions; sync the WAL if the transaction wrote."""
        self._changes_at_begin = None
        if sync:
            syncs = _for_database(_wal_syncs, self.settings_dict["NAME"], _WalSyncs)
            ticket = syncs.committed_one()
        self.connection.execute("PRAGMA synchronous=FULL")
        if sync:
            syncs.wait_synced(ticket, self._wal())

    def _wal(self):
        """The WAL file, open for syncing while this connection is (SQLite deletes it only once all are closed)."""
        if self._wal_fd is None:
            name = self.settings_dict["NAME"]
            self._wal_fd = os.open(f"{name}-wal", os.O_RDONLY)
            # SQLite syncs a new WAL's directory entry at the WAL's first sync,
            # which at NORMAL is the first checkpoint: do it now.
            sync_directory(os.path.dirname(os.path.abspath(name)))
        return self._wal_fd

    def _take_write_lock(self):
        if self._write_lock_held or self.is_in_memory_db():
            return
        if self._write_lock_fd is None:
            self._write_lock_fd = os.open(f"{self.settings_dict['NAME']}.writelock", os.O_RDWR | os.O_CREAT, 0o600)
        timeout = float(self.settings_dict.get("OPTIONS", {}).get("timeout", 5))
        deadline = time.monotonic() + timeout
        gate = _for_database(_gates, self.settings_dict["NAME"], threading.Lock)
        if not gate.acquire(timeout=timeout):
            raise OperationalError("database is locked")
        try:
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
        except BaseException:
            gate.release()
            raise
        self._gate = gate
        self._write_lock_held = True
        turns.holding()

    def _release_write_lock(self):
        if self._write_lock_held:
            fcntl.flock(self._write_lock_fd, fcntl.LOCK_UN)
            turns.released()
            self._write_lock_held = False
            self._gate.release()
            self._gate = None
