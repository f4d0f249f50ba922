"""istore_site.sqlite3: SQLite transactions queue on a file lock beside the database."""
import fcntl
import multiprocessing
import os
import time

import pytest
from django.db import OperationalError

from istore_site.sqlite3.base import DatabaseWrapper


def wrapper(path, timeout=5):
    settings = {"ENGINE": "istore_site.sqlite3", "NAME": str(path), "OPTIONS": {"transaction_mode": "IMMEDIATE",
                "timeout": timeout}, "TIME_ZONE": None, "CONN_MAX_AGE": 0, "CONN_HEALTH_CHECKS": False,
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
