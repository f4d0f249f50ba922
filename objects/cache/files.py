"""
Values as files: diskcache adopting a finished file, and writing one.

A value is written into a temporary file of ``<cache>/tmp`` and then moved
into diskcache's store by ``rename``: ``Disk`` is a diskcache ``Disk`` that
adopts such a finished file (``Adopt``), and ``adopted.path`` says where it
went (objects.cache.store and objects.cache.following both write this way).
"""
import os
import threading

import diskcache
import diskcache.core


class Adopt:
    """A finished file for ``Disk.store`` to move into the store."""

    def __init__(self, path, size):
        self.path, self.size = path, size


adopted = threading.local()


class Disk(diskcache.Disk):
    """diskcache's Disk, plus: a value ``Adopt(path, size)`` is moved into the store by rename."""

    def store(self, value, read, key=diskcache.core.UNKNOWN):
        if not isinstance(value, Adopt):
            return super().store(value, read, key=key)
        for attempt in range(10):
            filename, full_path = self.filename(key, value)
            os.makedirs(os.path.dirname(full_path), exist_ok=True)
            try:
                os.rename(value.path, full_path)
            except FileNotFoundError:
                # diskcache removes emptied directories: another process may
                # have removed ours between makedirs and rename.
                if attempt == 9 or not os.path.exists(value.path):
                    raise
                continue
            adopted.path = full_path
            return value.size, diskcache.core.MODE_BINARY, filename, None


def _file_mode():
    """The mode ``open()`` gives a new file (0o666 less the umask): cache files stay readable by
    nginx's user (``X-Accel-Redirect``) as diskcache's own files are, not 0o600 as ``mkstemp``'s."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()


def write_chunk(out, view):
    """Write ``view`` to the unbuffered file ``out``; returns how many bytes landed before an OSError."""
    done = 0
    try:
        while done < len(view):
            done += out.write(view[done:])
    except OSError as exc:
        exc.istore_written = done
        raise
    return done


def unlink_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass
