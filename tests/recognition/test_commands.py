"""manage.py compute_features: features for an existing store, resumable."""
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from processing import features
from recognition.models import Features
from tests.conftest import body


def run(*args):
    out = io.StringIO()
    call_command("compute_features", *args, "--no-progress", stdout=out)
    return out.getvalue().strip()


def test_computes_the_pictures_and_reports_the_rest(api, pictures):
    api.upload("/lib/cat.jpg", pictures["cat.jpg"], content_type="image/jpeg")
    api.upload("/lib/notes.txt", b"words", content_type="text/plain")
    api.post("/lib/meta-only", {"a": 1})
    api.post("/lib/", {"folder": True})
    assert run("/lib/") == "/lib/: 1 computed, 0 not pictures, 0 failed"
    assert Features.objects.count() == 1, "only the picture is a candidate"


def test_resumes_where_it_stopped(api, pictures):
    api.upload("/lib/a.jpg", pictures["cat.jpg"], content_type="image/jpeg")
    run("/lib/")
    api.upload("/lib/b.jpg", pictures["cup.jpg"], content_type="image/jpeg")
    assert run("/lib/") == "/lib/: 1 computed, 0 not pictures, 0 failed", "a.jpg is done already"
    assert run("/lib/", "--again") == "/lib/: 2 computed, 0 not pictures, 0 failed"


def test_a_new_model_version_recomputes(api, pictures, monkeypatch):
    api.upload("/lib/a.jpg", pictures["cat.jpg"], content_type="image/jpeg")
    run("/lib/")
    monkeypatch.setattr(features, "VERSION", "2/another-model@1")
    assert run("/lib/") == "/lib/: 1 computed, 0 not pictures, 0 failed"
    assert Features.objects.get().version == "2/another-model@1"


def test_a_source_that_is_not_a_picture_is_recorded(api, settings, tmp_path):
    settings.ISTORE_FILE_ROOTS = [str(tmp_path)]
    (tmp_path / "doc.txt").write_bytes(b"just text")
    api.post(f"/lib/file://{tmp_path}/doc.txt", {})
    assert run("/lib/") == "/lib/: 0 computed, 1 not pictures, 0 failed"
    assert run("/lib/") == "/lib/: 0 computed, 0 not pictures, 0 failed", "not tried again"


def test_a_failing_source_is_reported_and_left_for_later(api, capsys, settings):
    settings.ISTORE_ALLOW_LOOPBACK_SOURCES = True  # port 9 refuses: 502, worth trying again later
    api.post("/lib/http://127.0.0.1:9/gone.jpg", {})
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 items failed"):
        call_command("compute_features", "/lib/", "--no-progress", stdout=out)
    assert out.getvalue().strip() == "/lib/: 0 computed, 0 not pictures, 1 failed"
    assert "/lib/http://127.0.0.1:9/gone.jpg" in capsys.readouterr().err, "the failing key is named"


def test_deleting_a_folder_takes_the_features_with_it(api, pictures):
    api.upload("/lib/a.jpg", pictures["cat.jpg"], content_type="image/jpeg")
    run("/lib/")
    assert body(api.delete("/lib/")) == {"deleted": 1}
    assert Features.objects.count() == 0


def test_a_bad_directory_is_refused(db):
    with pytest.raises(CommandError, match="directory"):
        run("no-slash")
