"""cleanup_content removes blobs no item references, and only those."""
import os
import time
from io import StringIO

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command

from tests.conftest import body


def orphan(name, age_seconds):
    saved = default_storage.save(name, ContentFile(b"half an upload"))
    then = time.time() - age_seconds
    os.utime(default_storage.path(saved), (then, then))
    return saved


def test_orphans_are_deleted_and_referenced_blobs_kept(api):
    api.upload("/c/kept", b"real content", content_type="text/plain")
    old = orphan("content/aa/bb/orphan-old", 7200)
    young = orphan("content/aa/bb/orphan-young", 10)
    out = StringIO()
    call_command("cleanup_content", stdout=out, stderr=StringIO())
    assert not default_storage.exists(old), "an old orphan must be deleted"
    assert default_storage.exists(young), "a young blob may be an upload in flight: keep it"
    assert body(api.get("/c/kept", "meta=1"))["_content"]["size"] == 12
    assert api.get("/c/kept").status_code == 200, "referenced content must survive"
    assert "1 deleted" in out.getvalue() and "1 young" in out.getvalue() and "1 kept" in out.getvalue()


def test_dry_run_deletes_nothing(db):
    old = orphan("content/cc/dd/orphan", 7200)
    call_command("cleanup_content", "--dry-run", stdout=StringIO(), stderr=StringIO())
    assert default_storage.exists(old)


def test_empty_storage_is_fine(db):
    out = StringIO()
    call_command("cleanup_content", stdout=out, stderr=StringIO())
    assert "0 deleted" in out.getvalue()
