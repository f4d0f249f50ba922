"""Features computed in the background (recognition/background.py, recognition/tasks.py) for every write path."""
import json

import pytest
from django.core.management import call_command
from django.db import transaction

from jobs.models import Job
from objects import writing
from recognition import tasks
from tests.conftest import body
from tests.jobs.conftest import jobs_api  # noqa: F401 - fixture
from tests.processing.conftest import timer_video, video_dir  # noqa: F401 - fixtures


@pytest.fixture
def api(jobs_api):
    """The API over a database the job worker's threads see too."""
    return jobs_api


@pytest.fixture
def features_on(settings):
    settings.ISTORE_FEATURES = True


def run_jobs():
    """Run every queued job in this process, as ``manage.py jobs_worker --batch`` does."""
    call_command("jobs_worker", "--batch", verbosity=0)


def features_of(api, key):
    return body(api.meta(key)).get("_features")


def feature_jobs():
    return Job.objects.filter(kind=tasks.KIND)


def test_an_upload_gets_its_features_from_a_job(api, features_on, pictures):
    assert api.upload("/bg/cat.jpg", pictures["cat.jpg"], content_type="image/jpeg").status_code == 201
    assert features_of(api, "/bg/cat.jpg") is None, "the write does not wait for its features"
    assert feature_jobs().count() == 1
    run_jobs()
    assert features_of(api, "/bg/cat.jpg")["labels"][0]["label"] == "cat"
    job = feature_jobs().get()
    assert (job.state, job.result) == ("done", {"computed": 1, "skipped": 0, "failed": []}), job.as_dict()


def test_new_content_is_computed_again(api, features_on, pictures):
    api.upload("/bg/pic.jpg", pictures["cat.jpg"], content_type="image/jpeg")
    run_jobs()
    api.upload("/bg/pic.jpg", pictures["cup.jpg"], content_type="image/jpeg")
    assert features_of(api, "/bg/pic.jpg") is None, "the cat's features are gone with the cat"
    run_jobs()
    assert features_of(api, "/bg/pic.jpg")["labels"][0]["label"] == "espresso"


def test_metadata_writes_queue_nothing_more(api, features_on, pictures):
    api.upload("/bg/cat.jpg", pictures["cat.jpg"], content_type="image/jpeg")
    run_jobs()
    api.post("/bg/cat.jpg", {"title": "Chelsea"})
    api.put("/bg/cat.jpg", {"title": "Chelsea"})
    assert feature_jobs().count() == 1, "features are current: no new job"


def test_a_multipart_post_with_a_file(api, features_on, pictures):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("cup.jpg", pictures["cup.jpg"], content_type="image/jpeg")
    api.client.post("/bg/cup.jpg", {"file": upload, "metadata": json.dumps({"a": 1})})
    run_jobs()
    assert features_of(api, "/bg/cup.jpg")["labels"][0]["label"] == "espresso"


def test_a_file_source(api, features_on, settings, tmp_path, pictures):
    settings.ISTORE_FILE_ROOTS = [str(tmp_path)]
    (tmp_path / "cat.jpg").write_bytes(pictures["cat.jpg"])
    key = f"/bg/file://{tmp_path}/cat.jpg"
    api.post(key, {})
    run_jobs()
    assert features_of(api, key)["labels"][0]["label"] == "cat"


def test_video_frames_registered_by_expand(api, features_on, timer_video):
    with open(timer_video, "rb") as video:
        api.upload("/bg/timer.mp4", video.read(), content_type="video/mp4")
    assert api.verb("/bg/frames/", "_expand", {"video": "/bg/timer.mp4"}).status_code == 201
    run_jobs()
    frames = [entry for entry in body(api.get("/bg/frames/")) if "apply=frame" in entry["_filepath"]]
    assert len(frames) == 4
    assert all("pdq" in features_of(api, frame["_filepath"]) for frame in frames), "every frame has features"
    assert features_of(api, "/bg/timer.mp4") is None, "a video is not a picture: its frames have features"


def test_bulk_writes(api, features_on, settings, tmp_path, pictures):
    settings.ISTORE_FILE_ROOTS = [str(tmp_path)]
    for name in ("cat.jpg", "cup.jpg"):
        (tmp_path / name).write_bytes(pictures[name])
    lines = "".join(json.dumps({"key": f"file://{tmp_path}/{name}", "metadata": {"n": 1}}) + "\n"
                    for name in ("cat.jpg", "cup.jpg"))
    response = api.client.post("/bg/_bulk", lines, content_type="application/x-ndjson")
    assert body(response)["created"] == 2, "both lines written"
    assert feature_jobs().count() == 1, "one job for the batch"
    run_jobs()
    assert feature_jobs().get().result["computed"] == 2
    assert features_of(api, f"/bg/file://{tmp_path}/cup.jpg")["labels"][0]["label"] == "espresso"


def test_features_off_queue_nothing(api, settings, pictures):
    settings.ISTORE_FEATURES = False
    api.upload("/bg/cat.jpg", pictures["cat.jpg"], content_type="image/jpeg")
    assert not feature_jobs().exists()


def test_a_rolled_back_write_leaves_no_job(transactional_db, features_on):
    with pytest.raises(RuntimeError), transaction.atomic():
        writing.write("/bg/http://example.com/cat.jpg", {})
        raise RuntimeError("the write's transaction rolls back")
    assert not feature_jobs().exists()


def test_an_item_deleted_before_its_job_runs_is_skipped(api, features_on, pictures):
    api.upload("/bg/cat.jpg", pictures["cat.jpg"], content_type="image/jpeg")
    api.delete("/bg/cat.jpg")
    run_jobs()
    assert feature_jobs().get().result == {"computed": 0, "skipped": 1, "failed": []}


def test_a_source_that_cannot_be_read_is_reported_and_the_others_go_on(api, features_on, settings, tmp_path, pictures):
    settings.ISTORE_ALLOW_LOOPBACK_SOURCES = True  # port 9 refuses: a 502, worth trying again later
    settings.ISTORE_FILE_ROOTS = [str(tmp_path)]
    (tmp_path / "cat.jpg").write_bytes(pictures["cat.jpg"])
    lines = "".join(json.dumps({"key": key}) + "\n" for key in ("http://127.0.0.1:9/gone.jpg", f"file://{tmp_path}/cat.jpg"))
    api.client.post("/bg/_bulk", lines, content_type="application/x-ndjson")
    run_jobs()
    job = feature_jobs().get()
    assert job.state == "done" and job.result["computed"] == 1, job.as_dict()
    assert [item_id for item_id, _ in job.result["failed"]] == [body(api.meta("/bg/http://127.0.0.1:9/gone.jpg"))["_id"]]
    assert features_of(api, "/bg/http://127.0.0.1:9/gone.jpg") is None, "nothing stored: the next write tries again"


def test_a_new_model_recomputes_after_migrate(api, features_on, pictures, monkeypatch):
    from processing import features

    api.upload("/bg/cat.jpg", pictures["cat.jpg"], content_type="image/jpeg")
    run_jobs()
    monkeypatch.setattr(features, "VERSION", "2/another-model@1")
    assert features_of(api, "/bg/cat.jpg") is None, "features of another model are not shown"
    call_command("migrate", verbosity=0)  # what every upgrade runs
    run_jobs()
    assert feature_jobs().count() == 2, "migrate queued the stale item"
    assert features_of(api, "/bg/cat.jpg")["labels"][0]["label"] == "cat", "recomputed by the new model"
