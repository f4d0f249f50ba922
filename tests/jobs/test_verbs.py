"""The long verbs as jobs: each job's result is the body the verb answers in a request."""
import json

import pytest
from django.core.management import call_command

from objects.models import Item
from tests.objects.test_expand import clip_bytes  # noqa: F401 - fixture
from tests.recognition.conftest import pictures  # noqa: F401 - fixture

from .conftest import job_of, read_job, start

VIDEO = "/videos/clip.mp4"


@pytest.fixture
def clip(jobs_api, clip_bytes):  # noqa: F811
    assert jobs_api.upload(VIDEO, clip_bytes, content_type="video/mp4").status_code == 201
    return VIDEO


def test_expand_as_a_job_registers_the_frames(jobs_api, clip, run_jobs):
    job = job_of(start(jobs_api, "/frames/", "_expand", {"video": clip}))
    assert not Item.objects.filter(key__startswith="/frames/").exists(), "nothing is written before a worker runs"
    run_jobs()
    data = read_job(jobs_api, job)
    assert data["state"] == "done" and data["result"] == {"created": 11, "updated": 0}, data
    assert data["progress"] == {"done": 11, "total": 11}, "progress counts the frames written"
    assert Item.objects.filter(key__startswith="/frames/").count() == 11


def test_expand_checks_the_video_before_making_a_job(jobs_api):
    assert jobs_api.upload("/videos/not.txt", b"hello", content_type="text/plain").status_code == 201
    response = start(jobs_api, "/frames/", "_expand", {"video": "/videos/not.txt"})
    assert response.status_code == 415, f"not a video is answered at once: {response.status_code}"
    response = start(jobs_api, "/frames/", "_expand", {"video": "/videos/none.mp4"})
    assert response.status_code == 404, f"no video is answered at once: {response.status_code}"


def test_duplicates_as_a_job_groups_as_the_verb_does(jobs_api, pictures, run_jobs):  # noqa: F811
    for name, data in pictures.items():
        assert jobs_api.upload(f"/album/{name}", data, content_type="image/jpeg").status_code == 201
    call_command("compute_features", "/album/", "--no-progress")
    synchronous = jobs_api.verb("/album/", "_duplicates", {})
    assert synchronous.status_code == 200
    job = job_of(start(jobs_api, "/album/", "_duplicates", {}))
    run_jobs()
    data = read_job(jobs_api, job)
    assert data["state"] == "done" and data["result"] == json.loads(synchronous.content), data
    assert data["result"]["groups"], "the album holds copies: some group is found"


def test_duplicates_checks_its_body_before_making_a_job(jobs_api):
    response = start(jobs_api, "/album/", "_duplicates", {"by": "_nope"})
    assert response.status_code == 400 and json.loads(response.content)["error"] == "invalid_duplicates"


def test_search_runs_as_a_job_when_asked(jobs_api, run_jobs):
    for name, vector in {"a": [1, 0], "b": [0, 1], "c": [-0.1, -0.1]}.items():
        assert jobs_api.post(f"/s/{name}", {"vec": vector}).status_code == 201
    query = {"similar": {"vector": [0.5, 0.8], "by": "vec"}}
    synchronous = jobs_api.verb("/s/", "_search", query)
    assert synchronous.status_code == 200, "without the header a search answers at once"
    job = job_of(start(jobs_api, "/s/", "_search", query))
    run_jobs()
    data = read_job(jobs_api, job)
    assert data["state"] == "done" and data["result"] == json.loads(synchronous.content), data


def test_search_checks_its_body_before_making_a_job(jobs_api):
    response = start(jobs_api, "/s/", "_search", {"similar": {"to": "/s/none", "by": "vec"}})
    assert response.status_code == 400 and json.loads(response.content)["error"] == "unknown_to"
