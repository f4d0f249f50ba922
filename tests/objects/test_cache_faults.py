"""A cache directory that is full or read-only: istore still serves, bypassing the cache (issue 9 §3).

Tests run as root, for whom chmod 0o500 does not stop a write, so the faults
are injected where the operating system would report them:

- full: every write of bytes into a cache file fails with ENOSPC after the
  first 100 bytes of a write call landed, and SQLite refuses every write
  ("database or disk is full");
- read-only: creating anything under the cache directory (files, directories,
  renames: ``os.open``/``os.mkdir``/``os.rename``) fails with EROFS, and SQLite
  refuses every write ("attempt to write a readonly database").

In both, diskcache's reads fail too (they record an access time for LRU in
the same transaction), so what is already cached is read without it.
"""
import errno
import io
import logging
import os
import sqlite3

import diskcache
import pytest
from PIL import Image

from objects import cache as shared_cache
from objects import content as content_store
from objects import locks
from tests.objects.conftest import content
from tests.servers import unavailable

SQLITE_MESSAGES = {"full": "database or disk is full", "read_only": "attempt to write a readonly database"}
ERRNOS = {"full": errno.ENOSPC, "read_only": errno.EROFS}


def png(width=40, height=30):
    out = io.BytesIO()
    Image.effect_noise((width, height), 60).convert("RGB").save(out, "PNG")
    return out.getvalue()


def size_of(data):
    return Image.open(io.BytesIO(data)).size


class Fault:
    def __init__(self, kind, settings, monkeypatch):
        self.kind, self.settings, self.monkeypatch = kind, settings, monkeypatch

    def start(self):
        """Break the cache directory of the current settings from now on."""
        kind, patch = self.kind, self.monkeypatch
        directory = os.fspath(self.settings.ISTORE_CACHE_DIR)
        message, code = SQLITE_MESSAGES[kind], ERRNOS[kind]
        locks.reset_warnings()

        def refuse_sql(*args, **kwargs):
            raise sqlite3.OperationalError(message)

        for name in ("set", "touch", "delete", "evict", "expire", "clear", "get"):
            patch.setattr(diskcache.Cache, name, refuse_sql)
        if kind == "full":
            real_write_chunk = shared_cache.files.write_chunk

            def write_chunk(out, view):
                if not os.readlink(f"/proc/self/fd/{out.fileno()}").startswith(directory):
                    return real_write_chunk(out, view)  # the system's temporary directory has room
                landed = out.write(view[:100])
                error = OSError(code, os.strerror(code))
                error.istore_written = landed
                raise error

            patch.setattr(shared_cache.files, "write_chunk", write_chunk)
        else:
            def inside(path):
                try:
                    return os.fspath(path).startswith(directory)
                except TypeError:
                    return False

            for name in ("open", "mkdir", "rename", "replace"):
                real = getattr(os, name)

                def refused(path, *args, _real=real, **kwargs):
                    if inside(path):
                        raise OSError(code, os.strerror(code), os.fspath(path))
                    return _real(path, *args, **kwargs)

                patch.setattr(os, name, refused)
        return self


@pytest.fixture(params=["full", "read_only"])
def fault(request, settings, monkeypatch):
    return Fault(request.param, settings, monkeypatch)


def register(api, key):
    assert api.post(key, {}).status_code in (200, 201)
    return key


def warned(caplog):
    return any("serving without it" in record.getMessage() or "temporary file" in record.getMessage()
               for record in caplog.records)


@pytest.fixture(autouse=True)
def _warnings(caplog):
    caplog.set_level(logging.WARNING)


# -- each source, plain and processed -------------------------------------------------------------------


def test_http_source_is_served_without_the_cache(api, origin, fault, caplog):
    data = png()
    url = origin.add("/img.png", data, headers={"Cache-Control": "max-age=3600", "Content-Type": "image/png"})
    key = register(api, f"/f/{url}")
    fault.start()
    for _ in range(2):
        response = api.get(key)
        assert response.status_code == 200 and content(response) == data
        assert response["Content-Type"] == "image/png" and response["Content-Length"] == str(len(data))
        processed = api.get(key, "apply=resize&w=10")
        assert processed.status_code == 200 and size_of(content(processed)) == (10, 8)
    assert warned(caplog)
    tmp = shared_cache.get_cache().directory / "tmp"
    assert not tmp.exists() or not os.listdir(tmp), "no partial file is left in the cache"


def test_http_source_bigger_than_a_write_chunk(api, origin, fault):
    data = os.urandom(9 * 1024 * 1024 + 17)  # three 4 MiB chunks, the last one partial
    url = origin.add("/big.bin", data, headers={"Cache-Control": "max-age=3600"})
    key = register(api, f"/f/{url}")
    fault.start()
    assert content(api.get(key)) == data
    ranged = api.get(key, HTTP_RANGE="bytes=5000000-5000099")
    assert ranged.status_code == 206 and content(ranged) == data[5000000:5000100]


def test_file_source_is_processed_without_the_cache(api, file_root, fault, caplog):
    data = png()
    (file_root / "pic.png").write_bytes(data)
    key = register(api, f"/f/file://{file_root}/pic.png")
    fault.start()
    assert content(api.get(key)) == data
    for _ in range(2):
        processed = api.get(key, "apply=resize&w=20")
        assert processed.status_code == 200 and size_of(content(processed)) == (20, 15)
    assert warned(caplog)


def test_uploaded_content_is_processed_without_the_cache(api, fault, caplog):
    data = png()
    assert api.upload("/f/up.png", data, content_type="image/png").status_code == 201
    fault.start()
    assert content(api.get("/f/up.png")) == data
    processed = api.get("/f/up.png", "apply=resize&w=8")
    assert processed.status_code == 200 and size_of(content(processed)) == (8, 6)
    etag = processed["ETag"]
    assert api.get("/f/up.png", "apply=resize&w=8", HTTP_IF_NONE_MATCH=etag).status_code == 304
    assert warned(caplog)


def test_remote_content_is_processed_without_a_local_copy_in_the_cache(api, fault, monkeypatch, caplog):
    # As with S3: the content has no local path, processing needs a copy.
    data = png()
    assert api.upload("/f/remote.png", data, content_type="image/png").status_code == 201
    monkeypatch.setattr(content_store, "local_path", lambda name: None)
    fault.start()
    processed = api.get("/f/remote.png", "apply=resize&w=16")
    assert processed.status_code == 200 and size_of(content(processed)) == (16, 12)
    assert warned(caplog)


def test_self_source_chains_without_the_cache(api, file_root, fault):
    (file_root / "pic.png").write_bytes(png())
    register(api, f"/f/file://{file_root}/pic.png")
    key = register(api, f"/f/self://file://{file_root}/pic.png?apply=resize&w=20")
    fault.start()
    processed = api.get(key, "apply=flipH")
    assert processed.status_code == 200 and size_of(content(processed)) == (20, 15)


# -- what is already cached stays readable ----------------------------------------------------------------


def test_cached_source_and_result_are_still_served(api, origin, fault):
    data = png()
    url = origin.add("/warm.png", data, headers={"Cache-Control": "max-age=3600", "Content-Type": "image/png"})
    key = register(api, f"/f/{url}")
    first = api.get(key, "apply=resize&w=10")
    fault.start()
    assert content(api.get(key)) == data
    again = api.get(key, "apply=resize&w=10")
    assert content(again) == content(first)
    assert origin.count["/warm.png"] == 1, "the cached source is read without writing its access time"


def test_a_cache_directory_that_cannot_be_opened(api, origin, file_root, settings, monkeypatch, caplog):
    shared_cache.reset()
    locks.reset_warnings()

    def cannot_open(*args, **kwargs):
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(diskcache.Cache, "__init__", cannot_open)
    data = png()
    url = origin.add("/u.png", data, headers={"Cache-Control": "max-age=3600"})
    key = register(api, f"/f/{url}")
    (file_root / "pic.png").write_bytes(data)
    file_key = register(api, f"/f/file://{file_root}/pic.png")
    for _ in range(2):
        assert content(api.get(key)) == data
        assert size_of(content(api.get(key, "apply=resize&w=10"))) == (10, 8)
        assert size_of(content(api.get(file_key, "apply=resize&w=10"))) == (10, 8)
    assert origin.count["/u.png"] == 4, "nothing is cached: every read fetches"
    assert not shared_cache.get_cache().available
    assert any("cannot be opened" in record.getMessage() for record in caplog.records)
    monkeypatch.undo()
    shared_cache.get_cache().retry_at = 0  # as 30 s later
    assert shared_cache.get_cache().available, "the cache comes back once its directory can be opened"


# -- real faults: a small tmpfs as the cache directory (needs root and CAP_SYS_ADMIN) ---------------------


@pytest.fixture
def small_fs(tmp_path, settings):
    """ISTORE_CACHE_DIR on a 2 MiB tmpfs of its own; skipped where mounting is not allowed."""
    import subprocess

    mountpoint = tmp_path / "fs"
    mountpoint.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mountpoint)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        unavailable(f"cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN): {mounted.stderr.strip()}")
    settings.ISTORE_CACHE_DIR = mountpoint / "cache"
    settings.ISTORE_CACHE_MAX_BYTES = 100 * 1024 * 1024  # more than the disk holds: the disk fills first
    shared_cache.reset()
    locks.reset_warnings()

    def remount(*options):
        subprocess.run(["mount", "-o", ",".join(("remount",) + options), str(mountpoint)], check=True)

    yield remount
    shared_cache.reset()
    subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_really_full_cache_disk(api, origin, file_root, small_fs, caplog):
    big = os.urandom(3 * 1024 * 1024)  # more than the whole disk
    url = origin.add("/big.bin", big, headers={"Cache-Control": "max-age=3600"})
    key = register(api, f"/f/{url}")
    assert content(api.get(key)) == big
    # Fill what is left of the disk, then read and process.
    filler = shared_cache.get_cache().directory / "filler"
    with open(filler, "wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    data = png(200, 150)
    (file_root / "pic.png").write_bytes(data)
    file_key = register(api, f"/f/file://{file_root}/pic.png")
    small = origin.add("/small.png", data, headers={"Cache-Control": "max-age=3600", "Content-Type": "image/png"})
    small_key = register(api, f"/f/{small}")
    for _ in range(2):
        assert content(api.get(key)) == big
        assert size_of(content(api.get(file_key, "apply=resize&w=20"))) == (20, 15)
        assert size_of(content(api.get(small_key, "apply=resize&w=20"))) == (20, 15)
        assert content(api.get(small_key)) == data
    assert warned(caplog)


def test_really_read_only_cache_disk(api, origin, file_root, small_fs, caplog):
    data = png(200, 150)
    url = origin.add("/ro.png", data, headers={"Cache-Control": "max-age=3600", "Content-Type": "image/png"})
    key = register(api, f"/f/{url}")
    first = content(api.get(key, "apply=resize&w=20"))
    # Linux refuses to remount read-only while a file is open for writing:
    # close the cache's database as a restarting worker would, then remount.
    # The cache cannot be opened on a read-only disk (SQLite's WAL needs to
    # write), so istore serves everything without it.
    shared_cache.reset()
    small_fs("ro")
    (file_root / "pic.png").write_bytes(data)
    file_key = register(api, f"/f/file://{file_root}/pic.png")
    other = origin.add("/other.png", data, headers={"Cache-Control": "max-age=3600"})
    other_key = register(api, f"/f/{other}")
    for _ in range(2):
        assert content(api.get(key)) == data
        assert content(api.get(key, "apply=resize&w=20")) == first
        assert size_of(content(api.get(key, "apply=resize&w=30"))) == (30, 23)
        assert size_of(content(api.get(file_key, "apply=resize&w=20"))) == (20, 15)
        assert content(api.get(other_key)) == data
    assert warned(caplog)
    small_fs("rw")
