"""Every write path that stores a file the database will name (content,
search indexes) makes it durable before the commit that makes it visible:
the file's fsync, then each directory's from the file's folder up to the
storage root's parent, then the commit.

The steps are observed from outside: ``os.fsync``/``os.fdatasync`` are
spied (with the path each descriptor names), statements through Django's
``execute_wrapper``, and ``connection.commit``.
"""
import base64
import hashlib
import io
import json
import os
import time

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import connection

from objects import durable
from objects.models import Item
from search.models import VectorIndex

from ..admin.conftest import ADMIN
from ..conftest import url

DATA = os.urandom(5000)


class Steps(list):
    """What happened, in order: ``("sync", path)``, ``("statement", {str params})``, ``("commit", None)``.
    (On PostgreSQL a new item's row travels as one JSON text parameter: a name is looked for inside
    the parameters, not only as one.)"""

    def index_of(self, kind, match, after=-1):
        for index in range(after + 1, len(self)):
            step_kind, value = self[index]
            if step_kind == kind and match(value):
                return index
        return None


@pytest.fixture
def steps(monkeypatch, transactional_db):
    recorded = Steps()

    def spied(real):
        def sync(fd):
            path = os.readlink(f"/proc/self/fd/{fd}")
            real(fd)
            recorded.append(("sync", path))
        return sync

    monkeypatch.setattr(os, "fsync", spied(os.fsync))
    monkeypatch.setattr(os, "fdatasync", spied(os.fdatasync))

    def statement(execute, sql, params, many, context):
        rows = params if many else [params]
        recorded.append(("statement", {value for row in rows or () for value in row or () if isinstance(value, str)}))
        return execute(sql, params, many, context)

    real_commit = connection.commit
    monkeypatch.setattr(connection, "commit", lambda: recorded.append(("commit", None)) or real_commit())
    with connection.execute_wrapper(statement):
        yield recorded


def assert_durable_before_visible(steps, name):
    path = os.path.realpath(default_storage.path(name))
    root = os.path.realpath(default_storage.location)
    written = steps.index_of("statement", lambda params: any(name in param for param in params))
    assert written is not None, f"no statement named {name}"
    commit = steps.index_of("commit", lambda _: True, after=written)
    assert commit is not None, "the statement that names the content was never committed"
    synced = steps.index_of("sync", lambda synced_path: synced_path == path)
    assert synced is not None and synced < commit, \
        f"the content file must be fsynced before the commit that makes it visible: {steps}"
    directory = os.path.dirname(path)
    while True:
        level = steps.index_of("sync", lambda synced_path: synced_path == directory, after=synced)
        assert level is not None and level < commit, \
            f"{directory} must be fsynced after the file and before the commit: {steps}"
        if directory == os.path.dirname(root):
            break
        directory = os.path.dirname(directory)


def content_of(key):
    return Item.objects.get(key=key).content_name


def raw_put(api, **_):
    assert api.upload("/durable/raw.bin", DATA).status_code == 201
    return content_of("/durable/raw.bin")


def multipart_post(api, **_):
    response = api.client.post(url("/durable/form.bin"), {"file": SimpleUploadedFile("form.bin", DATA)})
    assert response.status_code == 201
    return content_of("/durable/form.bin")


def multipart_post_spooled(api, settings, **_):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024  # Django spools it to a temporary file, moved into storage
    return multipart_post(api)


def admin_add(admin_client, **_):
    response = admin_client.post(ADMIN + "add/", {
        "key": "/durable/admin.bin", "metadata": "{}", "file": SimpleUploadedFile("admin.bin", DATA)})
    assert response.status_code == 302
    return content_of("/durable/admin.bin")


def import_files(tmp_path, **_):
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "file.bin").write_bytes(DATA)
    call_command("import_files", str(tmp_path / "tree"), prefix="/durable/", stdout=io.StringIO(),
                 stderr=io.StringIO())
    return content_of("/durable/file.bin")


def import_items(tmp_path, **_):
    line = {"_id": 4242, "_filepath": "/durable/restored.bin", "metadata": {},
            "_content": {"size": len(DATA), "type": "application/octet-stream",
                         "etag": hashlib.sha256(DATA).hexdigest()},
            "_data": base64.b64encode(DATA).decode()}
    (tmp_path / "backup.jsonl").write_text(json.dumps(line) + "\n")
    call_command("import_items", str(tmp_path / "backup.jsonl"), stdout=io.StringIO(), stderr=io.StringIO())
    return content_of("/durable/restored.bin")


def search_index(api, **_):
    for number, vector in enumerate([[1, 0], [0, 1], [0.5, 0.8]]):
        assert api.post(f"/durable/vec/{number}", {"vec": vector}).status_code == 201
    assert api.verb("/durable/vec/", "_create_index", {"similar": {"by": "vec"}}).status_code == 201
    return VectorIndex.objects.get().storage_name


@pytest.mark.parametrize("write_path", [raw_put, multipart_post, multipart_post_spooled, admin_add,
                                        import_files, import_items, search_index])
def test_a_stored_file_is_durable_before_the_commit_that_makes_it_visible(write_path, steps, api, admin_client,
                                                                          settings, tmp_path):
    name = write_path(api=api, admin_client=admin_client, settings=settings, tmp_path=tmp_path)
    assert_durable_before_visible(steps, name)


def test_a_failed_sync_stores_nothing_and_acknowledges_nothing(api, monkeypatch, tmp_path):
    def broken_disk(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_disk)
    with pytest.raises(OSError):
        api.upload("/durable/lost.bin", DATA)
    assert not Item.objects.filter(key="/durable/lost.bin").exists(), "nothing may be written"
    assert not [p for p in (tmp_path / "content").rglob("*") if p.is_file()], "the unsynced blob is deleted"


@pytest.mark.parametrize("multipart", [False, True], ids=["raw", "multipart"])
def test_a_large_upload_is_handed_to_the_disk_while_it_arrives(multipart, api, monkeypatch):
    started = []
    monkeypatch.setattr(durable, "WRITEBACK_WINDOW", 64 * 1024)
    monkeypatch.setattr(durable, "_start_writing", lambda fd, offset, length, flags: started.append((offset, length)))
    data = bytes(3 * 1024 * 1024)  # past FILE_UPLOAD_MAX_MEMORY_SIZE: a multipart file is spooled
    if multipart:
        response = api.client.post(url("/durable/large.bin"), {"file": SimpleUploadedFile("large.bin", data)})
    else:
        response = api.upload("/durable/large.bin", data)
    assert response.status_code == 201
    assert started and started[0][0] == 0, "writing starts with the first window, not after the last byte"
    assert all(offset == previous + length for (previous, length), (offset, _) in zip(started, started[1:])), \
        f"each window follows the last: {started}"
    assert sum(length for _, length in started) >= len(data) - 64 * 1024, f"the file is written early: {started}"


def test_a_later_upload_stops_syncing_at_the_entries_already_on_disk(steps, api):
    first = raw_put(api)
    root_parent = os.path.dirname(os.path.realpath(default_storage.location))
    synced_after_first = len(steps)
    assert api.upload("/durable/second.bin", DATA).status_code == 201
    second = os.path.realpath(default_storage.path(content_of("/durable/second.bin")))
    later = steps[synced_after_first:]
    synced = [path for kind, path in later if kind == "sync"]
    assert second in synced and os.path.dirname(second) in synced, \
        f"the second file and its folder must still be synced: {later}"
    assert root_parent not in synced, \
        f"the storage root's entry was made durable by the first upload ({first}) and need not be synced again: {later}"


def test_a_directory_made_again_is_synced_again(steps, api):
    name = raw_put(api)
    folder = os.path.dirname(os.path.realpath(default_storage.path(name)))
    os.remove(default_storage.path(name))
    os.rmdir(folder)
    time.sleep(0.02)  # past the file system's timestamp granularity
    os.mkdir(folder)  # the same path, and on ext4 the same inode: a new directory all the same
    synced_before = len(steps)
    with open(os.path.join(folder, "again.bin"), "wb") as handle:
        handle.write(DATA)
    durable.make_durable(os.path.join(folder, "again.bin"), default_storage.location)
    synced = [path for kind, path in steps[synced_before:] if kind == "sync"]
    assert os.path.dirname(folder) in synced, f"the new folder's entry in its parent must be synced: {synced}"
