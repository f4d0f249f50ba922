"""istore_site.sqlite3: SQLite transactions queue on a file lock beside the
database, and a commit returns once the WAL holding it is synced."""
import fcntl
import multiprocessing
import os
import threading
import time

import pytest
from django.db import OperationalError

from istore_site.sqlite3.base import DatabaseWrapper
from istore_site.sqlite3.turns import yield_to_writer


def wrapper(path, timeout=5, init_command=""):
    options = {"transaction_mode": "IMMEDIATE", "timeout": timeout, "init_command": init_command}
    settings = {"ENGINE": "istore_site.sqlite3", "NAME": str(path), "OPTIONS": options, "TIME_ZONE": None, "CONN_MAX_AGE": 0, "CONN_HEALTH_CHECKS": False,
                "AUTOCOMMIT": True, "ATOMIC_REQUESTS": False, "USER": "", "PASSWORD": "", "HOST": "", "PORT": "",
                "TEST": {}}
    return DatabaseWrapper(settings, alias="sqlite3-test")


def insert(connection, value, fail=False):
    """One write transaction, as ``transaction.atomic`` runs it."""
    connection.set_autocommit(False, force_begin_transaction_with_broken_autocommit=True)
    try:
        connection.cursor().execute("INSERT INTO t VALUES (%s)", [value])
        if fail:
            raise RuntimeError("rolled back")
        connection.commit()
    except BaseException:
        connection.rollback()
        raise
    finally:
        connection.set_autocommit(True)


@pytest.fixture
def database(tmp_path, django_db_blocker):
    path = tmp_path / "db.sqlite3"
    with django_db_blocker.unblock():
        connection = wrapper(path)
        connection.cursor().execute("CREATE TABLE t (v integer)")
        yield path, connection
        connection.close()


def lock_is_free(path):
    fd = os.open(f"{path}.writelock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_lock_is_released_after_commit(database):
    path, connection = database
    insert(connection, 1)
    assert lock_is_free(path), "a committed transaction must release the write lock"


def test_lock_is_released_after_rollback(database):
    path, connection = database
    with pytest.raises(RuntimeError):
        insert(connection, 1, fail=True)
    assert lock_is_free(path), "a rolled-back transaction must release the write lock"


def _hold_lock(path, held, seconds):
    fd = os.open(f"{path}.writelock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    held.set()
    time.sleep(seconds)


def test_waiting_past_the_timeout_is_database_locked(database, django_db_blocker):
    path, _ = database
    held = multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold_lock, args=(path, held, 30))
    holder.start()
    try:
        assert held.wait(10)
        with django_db_blocker.unblock():
            impatient = wrapper(path, timeout=0.3)
            started = time.monotonic()
            with pytest.raises(OperationalError, match="database is locked"):
                insert(impatient, 1)
            assert time.monotonic() - started < 10, "the wait must end at the connection's timeout"
            impatient.close()
    finally:
        holder.terminate()
        holder.join()


def _writer(path, first, count):
    from django.conf import settings

    if not settings.configured:
        settings.configure()
    connection = wrapper(path, timeout=30)
    for value in range(first, first + count):
        insert(connection, value)
    connection.close()


def test_concurrent_writers_all_commit(database):
    path, connection = database
    writers = [multiprocessing.Process(target=_writer, args=(path, n * 1000, 200)) for n in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)
        assert writer.exitcode == 0, "a writer failed"
    assert connection.cursor().execute("SELECT count(*) FROM t").fetchone()[0] == 800


# --- durable commits ---------------------------------------------------------------------------------

@pytest.fixture
def wal_database(tmp_path, django_db_blocker):
    """A database set up as settings.py sets up istore's."""
    path = tmp_path / "wal.sqlite3"
    with django_db_blocker.unblock():
        connection = wrapper(path, init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
        connection.cursor().execute("CREATE TABLE t (v integer)")
        yield path, connection
        connection.close()


@pytest.fixture
def syncs(monkeypatch):
    """``(path synced, whether the write lock was free then)`` for every fdatasync and fsync."""
    seen = []

    def spied(real):
        def sync(fd):
            path = os.readlink(f"/proc/self/fd/{fd}")
            seen.append((path, lock_is_free(path.removesuffix("-wal")) if path.endswith("-wal") else None))
            real(fd)
        return sync

    monkeypatch.setattr(os, "fdatasync", spied(os.fdatasync))
    monkeypatch.setattr(os, "fsync", spied(os.fsync))
    return seen


def synchronous(connection):
    return connection.cursor().execute("PRAGMA synchronous").fetchone()[0]


def test_a_commit_returns_once_its_wal_is_synced_outside_the_write_lock(wal_database, syncs):
    path, connection = wal_database
    insert(connection, 1)
    wal = [free for synced, free in syncs if synced == f"{path}-wal"]
    assert wal, f"committing a write must sync the WAL before it returns: {syncs}"
    assert all(wal), "the WAL is synced after the write lock is released, so other writers go on meanwhile"


def test_statements_outside_transactions_are_synced_by_sqlite(wal_database):
    path, connection = wal_database
    assert synchronous(connection) == 2, "outside a transaction the connection runs at synchronous=FULL"
    insert(connection, 1)
    assert synchronous(connection) == 2, "a commit puts synchronous=FULL back"
    with pytest.raises(RuntimeError):
        insert(connection, 2, fail=True)
    assert synchronous(connection) == 2, "a rollback puts synchronous=FULL back"


def test_transactions_that_write_nothing_sync_nothing(wal_database, syncs):
    path, connection = wal_database
    insert(connection, 1)
    syncs.clear()
    connection.set_autocommit(False, force_begin_transaction_with_broken_autocommit=True)
    connection.cursor().execute("SELECT count(*) FROM t")
    connection.commit()
    connection.set_autocommit(True)
    with pytest.raises(RuntimeError):
        insert(connection, 2, fail=True)
    assert syncs == [], "a read-only or rolled-back transaction has nothing to make durable"


@pytest.fixture
def slow_wal_syncs(monkeypatch):
    """Spies on fdatasync: every WAL sync takes 20 ms more, and records the rows of ``t`` that were
    committed when it started, and when it ended: ``[(rows, ended)]``."""
    import sqlite3

    seen, lock = [], threading.Lock()
    real = os.fdatasync

    def sync(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        if not path.endswith("-wal"):
            return real(fd)
        reader = sqlite3.connect(path.removesuffix("-wal"))
        rows = {value for (value,) in reader.execute("SELECT v FROM t")}
        reader.close()
        time.sleep(0.02)
        real(fd)
        with lock:
            seen.append((rows, time.monotonic()))

    monkeypatch.setattr(os, "fdatasync", sync)
    return seen


def _insert_from_threads(path, threads, count):
    """``count`` inserts from each of ``threads`` threads, each with its own connection; ``{value: time the
    insert returned}``."""
    returned, errors = {}, []

    def write(first):
        connection = wrapper(path, timeout=30)
        try:
            for value in range(first, first + count):
                insert(connection, value)
                returned[value] = time.monotonic()
        except Exception as exc:  # reported below, with the thread's values
            errors.append((first, exc))
        finally:
            connection.close()

    workers = [threading.Thread(target=write, args=(n * 1000,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert not errors, f"writers failed: {errors}"
    return returned


def test_threads_of_one_process_share_wal_syncs_and_each_waits_for_its_own(wal_database, slow_wal_syncs):
    path, connection = wal_database
    returned = _insert_from_threads(path, threads=8, count=10)
    assert connection.cursor().execute("SELECT count(*) FROM t").fetchone()[0] == 80, "a write was lost"
    for value, at in returned.items():
        covering = [ended for rows, ended in slow_wal_syncs if value in rows and ended <= at]
        assert covering, f"the insert of {value} returned before a WAL sync begun after its commit had ended"
    assert len(slow_wal_syncs) <= len(returned) / 2, \
        f"{len(slow_wal_syncs)} WAL syncs for {len(returned)} concurrent commits: they are not grouped"


def test_threads_waiting_for_the_write_lock_all_commit(database):
    path, connection = database
    _insert_from_threads(path, threads=8, count=25)
    assert connection.cursor().execute("SELECT count(*) FROM t").fetchone()[0] == 200, "a write was lost"


def _hold_write_lock_in_thread(path, held, release):
    """A thread that opens a write transaction, signals ``held``, and commits once ``release`` is set."""
    def write():
        connection = wrapper(path)
        try:
            connection.set_autocommit(False, force_begin_transaction_with_broken_autocommit=True)
            connection.cursor().execute("INSERT INTO t VALUES (1)")
            held.set()
            release.wait(10)
            connection.commit()
            connection.set_autocommit(True)
        finally:
            connection.close()

    thread = threading.Thread(target=write)
    thread.start()
    assert held.wait(10), "the writer thread never took the write lock"
    return thread


def test_a_sibling_thread_yields_until_the_writer_commits(database):
    path, _ = database
    held, release = threading.Event(), threading.Event()
    writer = _hold_write_lock_in_thread(path, held, release)
    threading.Timer(0.2, release.set).start()
    started = time.monotonic()
    yield_to_writer(limit=5)
    waited = time.monotonic() - started
    writer.join(10)
    assert 0.15 < waited < 4, f"yield_to_writer returned after {waited:.3f} s, not when the writer committed (0.2 s)"


def test_yielding_to_a_writer_is_bounded_by_its_limit(database):
    path, _ = database
    held, release = threading.Event(), threading.Event()
    writer = _hold_write_lock_in_thread(path, held, release)
    try:
        started = time.monotonic()
        yield_to_writer(limit=0.05)
        waited = time.monotonic() - started
    finally:
        release.set()
        writer.join(10)
    assert waited < 1, f"yield_to_writer waited {waited:.3f} s past its limit of 0.05 s"


def test_without_a_writer_yielding_returns_at_once(database):
    path, connection = database
    insert(connection, 1)  # took and released the lock
    started = time.monotonic()
    yield_to_writer(limit=5)
    assert time.monotonic() - started < 0.01, "yield_to_writer waited with no writer"
