"""
Making a stored file survive a power cut: its bytes, then the directory
entries that lead to it, reach stable storage before anyone is told it exists.

``write`` and ``rename`` land in the kernel's page cache, which a power cut
empties: a database row committed meanwhile could name a file that comes back
short, empty or absent. ``fsync`` on the file makes its bytes and inode
durable; the entry naming it lives in its directory, and a new directory's
entry in its parent, so every level up to the storage root is synced as well
(POSIX asks for it even where a journalling file system would not need it).
Every level, not only those this write created: when two uploads race to
create the same folder, the one that finds it already there must still wait
for the entry the other made. Except where this process has already synced
the parent of a directory since that directory was made: its entry, and
every one above it, are on disk, so the walk up stops there. Each sync is a
flush of the virtual disk (~1 ms for a directory here, benchmarks/README.md),
and without that memory an upload into ``content/ab/cd`` synced five
directories, most of them holding nothing new.

A large file's final fsync would write all of it at once, after the last
byte arrived: ~200 ms for 100 MiB here, on top of the upload. ``Writeback``
starts writing it out while it is still being received, so the fsync finds
little left to do.
"""
import ctypes
import os

WRITEBACK_WINDOW = 8 * 1024 * 1024
SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>: start writing dirty pages, do not wait


def _sync_file_range():
    function = getattr(ctypes.CDLL(None, use_errno=True), "sync_file_range", None)
    if function is not None:
        function.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    return function


_start_writing = _sync_file_range()


class Writeback:
    """Starts the writing of a file being filled, every ``WRITEBACK_WINDOW`` bytes, without waiting.

    A hint to the kernel (Linux ``sync_file_range(SYNC_FILE_RANGE_WRITE)``,
    as PostgreSQL's ``*_flush_after`` and RocksDB's ``bytes_per_sync`` use
    it), not a sync: it promises nothing, and ``sync_file`` still makes the
    file durable. A no-op where the call is missing.
    """

    def __init__(self, fd):
        self.fd = fd
        self.started = 0  # bytes already handed to the kernel to write

    def wrote(self, size):
        """The file now holds ``size`` bytes."""
        if _start_writing is not None and size - self.started >= WRITEBACK_WINDOW:
            _start_writing(self.fd, self.started, size - self.started, SYNC_FILE_RANGE_WRITE)
            self.started = size


def sync_file(path):
    """fsync the file at ``path``: its bytes and its inode."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def directories_to_sync(path, root):
    """The directories whose entries lead from ``root``'s parent down to ``path``, deepest first."""
    root = os.path.abspath(root)
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.commonpath([root, directory]) != root:
        raise ValueError(f"{path} is not under {root}")
    levels = [directory]
    while directory != root:
        directory = os.path.dirname(directory)
        levels.append(directory)
    levels.append(os.path.dirname(root))  # the root's own entry
    return levels


def sync_directory(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# Directories whose own entry this process has made durable, by (path, device, inode, ctime): a
# directory removed and made again under the same path (ext4 hands it the same inode at once) has a
# new ctime, so it is synced again. A directory's ctime also moves when an entry is added to it,
# which only costs a sync more: the folders near the root settle once their subfolders exist.
_durable_entries = set()


def _identity(directory):
    status = os.stat(directory)
    return directory, status.st_dev, status.st_ino, status.st_ctime_ns


def make_durable(path, root):
    """fsync the new file at ``path``, then each directory from its folder up to ``root``'s parent,
    stopping below a directory whose entry this process already made durable."""
    sync_file(path)
    levels = directories_to_sync(path, root)
    sync_directory(levels[0])
    made_durable = []
    for directory, parent in zip(levels, levels[1:]):
        identity = _identity(directory)
        if identity in _durable_entries:
            break  # its entry, and so every one above it, reached the disk before
        sync_directory(parent)
        made_durable.append(identity)
    # Only once the whole walk is done: until then an entry above may not be on disk yet.
    _durable_entries.update(made_durable)
